//! Giving up on an event whose last allowed delivery failed: the saga is
//! unwound (or its decided completion published), the tenant is reported with
//! `tenant.failed`, and the history of failed deliveries goes with the dead
//! letter. Other tenants never wait on this one.

use jiff::Timestamp;
use tracing::{info, warn};

use super::engine::{DELETE_NAMESPACE_STEP, Delivery, Engine, log_outcome};
use crate::contract::{Failed, InboundEvent, IntentKind, Outcome, completion_event};
use crate::error::Error;
use crate::record::{Attempt, SagaStage, StepFailure, TenantStatus};
use crate::steps::{StepContext, TenantObjects};
use tenant_core::rules::{self, GiveUp};

/// The pseudo-step named in `tenant.failed` when the saga never got the tenant
/// (another saga held it, or its record could not be written).
pub const ACQUIRE_STEP: &str = "acquire_lease";

impl Engine {
    /// Ends `event` for good after delivery `delivery` failed with `error` and
    /// no further delivery will come.
    ///
    /// - Its saga already decided a completion event: that event is published.
    /// - Its saga ran steps: they are undone (best effort; a compensation that
    ///   fails is reported) and `tenant.failed` is published.
    /// - It never got the tenant: `tenant.failed` with `failed_step`
    ///   `acquire_lease` and nothing undone, since nothing was done.
    /// - Another replica holds the tenant for this very event: nothing is
    ///   published here; that replica publishes the completion.
    ///
    /// Returns the failed deliveries, oldest first, for the dead letter.
    ///
    /// # Errors
    /// [`Error`] when NATS or the record cannot be reached; the caller
    /// dead-letters the event anyway.
    pub async fn give_up(
        &self,
        event: &InboundEvent,
        delivery: Delivery,
        error: &Error,
    ) -> Result<Vec<Attempt>, Error> {
        let mut v = self.load(&event.tenant_id).await?;
        let last = Attempt {
            delivery: delivery.delivered,
            replica: self.settings.replica_id.clone(),
            error: error.to_string(),
            at: Timestamp::now(),
        };
        let decision = rules::give_up(
            &v.record,
            event,
            &self.settings.replica_id,
            Timestamp::now(),
        );
        if decision == GiveUp::Applied {
            return Ok(vec![last]);
        }
        let own_saga = v.record.saga.as_ref().filter(|s| s.event_id == event.id);
        let mut history: Vec<Attempt> = own_saga.map(|s| s.attempts.clone()).unwrap_or_default();
        // The engine may have logged this delivery's failure already.
        if history.last().is_none_or(|a| a.delivery != last.delivery) {
            history.push(last);
        }
        let reason = format!(
            "gave up after {} deliveries; last error: {error}",
            delivery.delivered
        );
        match decision {
            GiveUp::Applied | GiveUp::Unwind => {}
            GiveUp::LeftToHolder(lease) => {
                warn!(holder = %lease.holder, "another replica is still running this event's saga; leaving it the completion");
                return Ok(history);
            }
            GiveUp::NotStarted => {
                let outcome = Self::not_started(event, reason);
                log_outcome(&outcome, &v.record);
                let completion = completion_event(event, &outcome);
                self.bus.publish_completion(&completion).await?;
                self.remember_concluded(event, delivery.sequence).await?;
                return Ok(history);
            }
        }
        self.acquire(&mut v, event, delivery.sequence).await?;
        let saga = v.record.saga.clone().expect("own saga");
        let completion = match saga.stage() {
            SagaStage::Decided(completion) => completion.clone(),
            SagaStage::Forward | SagaStage::Compensating(_) => {
                let failed = self.unwind(&mut v, event, reason).await?;
                let outcome = Outcome::Failed(failed);
                log_outcome(&outcome, &v.record);
                self.decide(&mut v, completion_event(event, &outcome))
                    .await?
            }
        };
        let _ = self
            .conclude(&mut v, event, delivery.sequence, completion)
            .await?;
        info!("event given up and concluded");
        Ok(history)
    }

    /// Marks `event` applied in the tenant's record without touching another
    /// saga's log or lease, retrying on concurrent writes (the holder of the
    /// tenant may write in between).
    async fn remember_concluded(&self, event: &InboundEvent, sequence: u64) -> Result<(), Error> {
        let mut conflicts = 0;
        loop {
            let mut v = self.load(&event.tenant_id).await?;
            if v.record.has_applied(&event.id) {
                return Ok(());
            }
            v.record.finish(
                event.id,
                event.intent.event_type(),
                sequence,
                crate::contract::EventType::Failed,
            );
            match self.bus.state().save(&mut v).await {
                Err(Error::StateConflict { .. }) if conflicts < 5 => conflicts += 1,
                other => return other,
            }
        }
    }

    fn not_started(event: &InboundEvent, error: String) -> Outcome {
        Outcome::Failed(Failed {
            intent: event.intent.kind(),
            failed_step: ACQUIRE_STEP.into(),
            error,
            compensated: true,
            compensation: Vec::new(),
            compensation_failed: Vec::new(),
        })
    }

    /// Undoes what the event's saga did, as far as the cluster lets it now.
    async fn unwind(
        &self,
        v: &mut crate::bus::state::Versioned,
        event: &InboundEvent,
        reason: String,
    ) -> Result<Failed, Error> {
        let intent = event.intent.kind();
        let saga = v.record.saga.as_mut().expect("own saga");
        if intent == IntentKind::Deleted {
            // A namespace deletion cannot be taken back; the tenant may be half
            // gone, and its route is already withdrawn.
            v.record.status = TenantStatus::Failed;
            return Ok(Failed {
                intent,
                failed_step: DELETE_NAMESPACE_STEP.into(),
                error: reason,
                compensated: false,
                compensation: Vec::new(),
                compensation_failed: Vec::new(),
            });
        }
        let failure = match &saga.failure {
            Some(failure) => failure.clone(),
            None => {
                let failure = StepFailure {
                    step: rules::next_step(saga),
                    error: reason,
                };
                saga.fail(failure.clone());
                failure
            }
        };
        let rollback = saga
            .rollback_plan
            .as_deref()
            .and_then(|p| self.plans.get(p));
        let Some(plan) = saga
            .plan
            .as_deref()
            .and_then(|p| self.plans.get(p))
            .or(rollback)
        else {
            // The saga stopped before choosing a plan: nothing was applied.
            return Ok(Failed {
                intent,
                failed_step: failure.step.as_str().to_owned(),
                error: failure.error,
                compensated: true,
                compensation: Vec::new(),
                compensation_failed: Vec::new(),
            });
        };
        self.save(v).await?;
        let tenant = v.record.tenant_id.clone();
        let namespace = v.record.namespace.clone();
        let ctx = StepContext {
            cluster: &self.cluster,
            tenant: TenantObjects {
                tenant: &tenant,
                namespace: &namespace,
                plan,
                gateway_namespace: &self.settings.gateway_namespace,
            },
        };
        let failed = self.compensate(v, &ctx, intent, failure, rollback).await?;
        Self::settle_failure(&mut v.record, rollback.is_some(), &failed);
        Ok(failed)
    }
}
