//! The tenant lease: taken with compare-and-set before a saga changes
//! anything, renewed while it runs, released when it ends or stops. Every
//! record write of a saga goes through [`Engine::save`], which renews it.

use jiff::Timestamp;
use tracing::{debug, info, warn};

use super::engine::{Delivery, Engine};
use crate::bus::state::Versioned;
use crate::contract::InboundEvent;
use crate::error::Error;
use crate::record::{Attempt, Lease, SagaLog};

impl Engine {
    /// Takes the tenant's lease for `event` and opens (or resumes) its saga log,
    /// in one compare-and-set write.
    pub(super) async fn acquire(
        &self,
        v: &mut Versioned,
        event: &InboundEvent,
        sequence: u64,
    ) -> Result<(), Error> {
        let record = &mut v.record;
        match &record.saga {
            Some(saga) if saga.event_id == event.id => {
                info!(
                    phase = ?saga.phase,
                    done = saga.steps.len(),
                    "resuming the saga of this event"
                );
            }
            _ => {
                record.saga = Some(SagaLog::new(event.id, sequence, event.intent.kind()));
                crate::metrics::metrics()
                    .sagas_started
                    .get_or_create(&crate::metrics::IntentLabels {
                        intent: event.intent.kind().as_str(),
                    })
                    .inc();
            }
        }
        record.lease = Some(Lease::new(
            &self.settings.replica_id,
            event.id,
            Timestamp::now(),
            self.settings.lease_ttl,
        ));
        self.save(v).await?;
        debug!(replica = %self.settings.replica_id, "lease taken");
        Ok(())
    }

    /// Writes the record, renewing the lease when this replica holds it.
    pub(super) async fn save(&self, v: &mut Versioned) -> Result<(), Error> {
        if let Some(lease) = &mut v.record.lease
            && lease.holder == self.settings.replica_id
        {
            lease.renew(Timestamp::now(), self.settings.lease_ttl);
        }
        v.record.updated_at = Timestamp::now();
        self.bus.state().save(v).await
    }

    /// Runs `work` while renewing the lease every third of its lifetime.
    ///
    /// # Errors
    /// When a renewal fails (another replica took the tenant, or KV is down),
    /// `work` is dropped and the error returned.
    pub(super) async fn leased<T>(
        &self,
        v: &mut Versioned,
        work: impl Future<Output = T>,
    ) -> Result<T, Error> {
        tokio::pin!(work);
        let every = self.settings.lease_ttl / 3;
        let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = renew.tick() => self.save(v).await?,
            }
        }
    }

    /// After a transient failure: notes the attempt in the saga log and
    /// releases the lease, so the next delivery (on any replica) resumes at
    /// once. Best effort: if KV is unreachable the lease simply expires.
    pub(super) async fn checkpoint_failure(
        &self,
        v: &mut Versioned,
        delivery: Delivery,
        error: &Error,
    ) {
        let ours = v
            .record
            .lease
            .as_ref()
            .is_some_and(|l| l.holder == self.settings.replica_id);
        if !ours || matches!(error, Error::StateConflict { .. }) {
            return;
        }
        if let Some(saga) = &mut v.record.saga
            && !matches!(error, Error::Interrupted)
        {
            saga.record_attempt(Attempt {
                delivery: delivery.delivered,
                replica: self.settings.replica_id.clone(),
                error: error.to_string(),
                at: Timestamp::now(),
            });
        }
        v.record.lease = None;
        debug!(replica = %self.settings.replica_id, "lease released");
        if let Err(e) = self.save(v).await {
            warn!(error = %e, "could not release the lease; it will expire");
        }
    }
}
