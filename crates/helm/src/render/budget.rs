//! What one render may spend: wall-clock time and output. A chart that loops
//! (almost) forever, recurses exponentially through `include`, or builds an
//! enormous document is stopped with an error that names where it was,
//! instead of holding a saga, a replica's thread or its memory.
//!
//! The render checks the budget at every step it controls: each function
//! call, field access, printed value, `range` and iteration of a `range`
//! body. An iteration also counts the literal text of its body, so that a
//! loop that prints only text is bounded too. A single function result
//! larger than the whole output budget (`repeat`, `cat` doubling a string)
//! is refused as soon as it is made.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The limits of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderBudget {
    /// Wall-clock time for the whole chart. Helm renders large public charts
    /// in tens of milliseconds; a chart that needs seconds is looping.
    pub timeout: Duration,
    /// Bytes of template output (and of any one value a template builds).
    /// A Helm release record, the whole manifest gzipped in one Secret, must
    /// fit in 1 MiB, so a real chart's output is far below this.
    pub max_output_bytes: usize,
}

impl Default for RenderBudget {
    /// 10 seconds and 16 MiB.
    fn default() -> Self {
        RenderBudget {
            timeout: Duration::from_secs(10),
            max_output_bytes: 16 << 20,
        }
    }
}

/// A running render's account against its [`RenderBudget`].
pub(crate) struct Spending {
    budget: RenderBudget,
    deadline: Instant,
    output: AtomicUsize,
}

impl Spending {
    pub(crate) fn start(budget: RenderBudget) -> Self {
        Spending {
            budget,
            deadline: Instant::now() + budget.timeout,
            output: AtomicUsize::new(0),
        }
    }

    /// `Err` with the reason once the time is spent.
    pub(crate) fn check_time(&self) -> Result<(), String> {
        if Instant::now() > self.deadline {
            return Err(format!(
                "rendering stopped: the chart took longer than the render budget of {:?} (a template that loops or recurses without end?)",
                self.budget.timeout
            ));
        }
        Ok(())
    }

    /// Counts `bytes` more output; `Err` once over the budget.
    pub(crate) fn spend_output(&self, bytes: usize) -> Result<(), String> {
        let total = self
            .output
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total > self.budget.max_output_bytes {
            return Err(self.too_large("the chart's output"));
        }
        Ok(())
    }

    /// `Err` when one value of `bytes` is larger than the whole output budget.
    pub(crate) fn check_value(&self, bytes: usize) -> Result<(), String> {
        if bytes > self.budget.max_output_bytes {
            return Err(self.too_large("a value the template built"));
        }
        Ok(())
    }

    fn too_large(&self, what: &str) -> String {
        format!(
            "rendering stopped: {what} grew past the render budget of {} MiB",
            self.budget.max_output_bytes >> 20
        )
    }
}
