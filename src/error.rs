//! The crate error, and the one place that decides what an error means for the
//! inbound message: [`Error::is_transient`] (retry later) or not (finish the
//! event with a failure). Step code never acknowledges anything itself.

use crate::cluster::ClusterError;
use crate::contract::TenantId;

/// Anything that can go wrong while handling an event or starting the worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A NATS operation failed; `source` is the client's error.
    #[error("nats: {op}: {source}")]
    Nats {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("tenant record of {tenant} was changed concurrently; will re-read and retry")]
    StateConflict { tenant: TenantId },
    #[error("tenant {tenant} is held by replica {holder} until {until}; will retry")]
    TenantBusy {
        tenant: TenantId,
        holder: String,
        until: jiff::Timestamp,
    },
    #[error(
        "tenant {tenant} has the saga of event {event_id} (stream sequence {sequence}) in flight; will retry after it"
    )]
    SagaPending {
        tenant: TenantId,
        event_id: uuid::Uuid,
        sequence: u64,
    },
    #[error("the worker is shutting down; the saga stopped at a step boundary")]
    Interrupted,
    #[error("tenant record of {tenant} in tenant_state is unreadable: {message}")]
    CorruptRecord { tenant: TenantId, message: String },
    #[error(transparent)]
    Plans(#[from] crate::plans::PlanError),
    #[error("{0}")]
    Setup(String),
    /// Drift repair cannot put a tenant back as its record says (the record
    /// names no plan, or one the catalogue no longer has; the release no
    /// longer renders).
    #[error("tenant {tenant} cannot be repaired: {reason}")]
    Unrepairable { tenant: TenantId, reason: String },
    /// A check (`reconcile`, `replay`) found what it reports, or could not fix it.
    #[error("{0}")]
    Found(String),
    /// A command could not write its output; see [`Error::is_stdout_closed`].
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
}

/// `Result` with the crate error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps the error of NATS operation `op` (an async-nats error, kept as
    /// the source, or a message).
    pub fn nats(
        op: &'static str,
        err: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Nats {
            op,
            source: err.into(),
        }
    }

    /// Whether a command stopped because its reader went away (`| head`
    /// closed the pipe): not a failure, so `main` ends quietly with status 0.
    pub fn is_stdout_closed(&self) -> bool {
        matches!(self, Self::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether the event simply has to wait for the tenant (another saga holds
    /// it, or the worker is stopping): not a failure of this event.
    pub fn is_wait(&self) -> bool {
        matches!(
            self,
            Self::TenantBusy { .. } | Self::SagaPending { .. } | Self::Interrupted
        )
    }

    /// Whether retrying the same event later can succeed. NATS and KV errors,
    /// record conflicts and transient cluster errors are; a corrupt record, a
    /// bad plan file or a permanent cluster refusal are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Cluster(e) => e.is_transient(),
            Self::Nats { .. }
            | Self::StateConflict { .. }
            | Self::TenantBusy { .. }
            | Self::SagaPending { .. }
            | Self::Interrupted => true,
            Self::CorruptRecord { .. }
            | Self::Plans(_)
            | Self::Setup(_)
            | Self::Unrepairable { .. }
            | Self::Found(_)
            | Self::Stdout(_) => false,
        }
    }

    /// A short, stable label for the `saga_errors_total{error}` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Cluster(ClusterError::Api(_)) => "kube_api",
            Self::Cluster(ClusterError::NotOwned { .. } | ClusterError::NamespaceNotOwned(_)) => {
                "not_owned"
            }
            Self::Cluster(ClusterError::NamespaceTerminating(_)) => "namespace_terminating",
            Self::Cluster(ClusterError::Config(_)) => "kube_config",
            Self::Cluster(ClusterError::UnknownKind { .. }) => "unknown_kind",
            Self::Cluster(ClusterError::Invalid(_)) => "invalid_object",
            Self::Cluster(ClusterError::NotReady(_)) => "not_ready",
            Self::Cluster(ClusterError::Discovery { .. }) => "kube_discovery",
            Self::Nats { .. } => "nats",
            Self::StateConflict { .. } => "state_conflict",
            Self::TenantBusy { .. } => "tenant_busy",
            Self::SagaPending { .. } => "saga_pending",
            Self::Interrupted => "interrupted",
            Self::CorruptRecord { .. } => "corrupt_record",
            Self::Plans(_) => "plans",
            Self::Setup(_) => "setup",
            Self::Unrepairable { .. } => "unrepairable",
            Self::Found(_) => "found",
            Self::Stdout(_) => "stdout",
        }
    }
}
