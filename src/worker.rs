//! The consumer loop: fetch from the durable consumer, decode, run the saga
//! engine with bounded concurrency, and turn each result into exactly one
//! acknowledgement ([`disposition`] is the only place that decides which).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::bus::{Bus, ensure_topology};
use crate::cluster::Cluster;
use crate::contract::{TenantId, decode_inbound};
use crate::error::Error;
use crate::saga::{Engine, Handled};
use crate::settings::WorkerSettings;

/// What to tell JetStream about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (applied, rejected, duplicate, or dead-lettered): never redeliver.
    Ack,
    /// Try again after this delay.
    Nak(Duration),
    /// Give up: copy to `TENANT_DEADLETTER` with this reason code and message, then ack.
    DeadLetter { code: &'static str, reason: String },
}

/// Maps the engine's result for delivery number `delivered` (1-based) to a
/// disposition. Transient errors are retried with growing delays until the
/// last allowed delivery, then dead-lettered so the tenant never blocks others.
pub fn disposition(
    result: &Result<Handled, Error>,
    delivered: u64,
    settings: &WorkerSettings,
) -> Disposition {
    match result {
        Ok(_) => Disposition::Ack,
        Err(e) if e.is_transient() && delivered < settings.max_deliver() => {
            Disposition::Nak(settings.engine.retry.redelivery_delay(delivered))
        }
        Err(e) if e.is_transient() => Disposition::DeadLetter {
            code: "max_deliver",
            reason: format!("gave up after {delivered} deliveries; last error: {e}"),
        },
        Err(e) => Disposition::DeadLetter {
            code: "unprocessable",
            reason: e.to_string(),
        },
    }
}

/// Tenants with a saga running in this process; a second message for one of
/// them is given back with a short delay instead of waiting for a slot.
#[derive(Clone, Default)]
struct Busy(Arc<Mutex<HashSet<TenantId>>>);

struct BusyGuard(Busy, TenantId);

impl Busy {
    fn try_take(&self, tenant: &TenantId) -> Option<BusyGuard> {
        let mut set = self.0.lock().expect("busy set lock");
        set.insert(tenant.clone())
            .then(|| BusyGuard(self.clone(), tenant.clone()))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.0.lock().expect("busy set lock").remove(&self.1);
    }
}

/// Delay before a message for a tenant busy in this process is redelivered.
const BUSY_TENANT_DELAY: Duration = Duration::from_millis(250);

/// Connects to NATS and the cluster, ensures the topology, and consumes until
/// `shutdown` resolves; then stops fetching and lets in-flight sagas finish for
/// up to `settings.shutdown_grace` (what is left is redelivered later).
///
/// # Errors
/// [`Error`] when NATS cannot be reached or the topology cannot be created.
pub async fn run(
    settings: WorkerSettings,
    kube: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let nats = settings.nats.connect().await?;
    let js = jetstream::new(nats.clone());
    let (bus, consumer) = match ensure_topology(&js, &settings.topology).await {
        Ok(topology) => topology,
        // Say what is wrong, not only which request timed out.
        Err(e) if nats.connection_state() != async_nats::connection::State::Connected => {
            return Err(Error::nats(
                "connect",
                format!("cannot reach NATS at {} ({e})", settings.nats.url),
            ));
        }
        Err(e) => return Err(e),
    };
    let engine = Engine {
        cluster: Cluster::new(kube, settings.namespace_prefix.clone()),
        plans: Arc::new(settings.plans.clone()),
        bus: bus.clone(),
        settings: settings.engine.clone(),
    };
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(settings.concurrency)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| Error::nats("start consuming", e))?;
    info!(
        nats = %settings.nats.url,
        concurrency = settings.concurrency,
        plans = ?settings.plans.names().collect::<Vec<_>>(),
        "tenant-worker consuming tenant.lifecycle.>"
    );
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let busy = Busy::default();
    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let next = tokio::select! {
            () = &mut shutdown => break,
            m = messages.next() => m,
        };
        match next {
            None => {
                warn!("consumer stream ended");
                break;
            }
            Some(Err(e)) => {
                // Missed heartbeats and the like: the stream reconnects by itself.
                warn!(error = %e, "consumer stream error");
            }
            Some(Ok(msg)) => {
                let (engine, bus, settings, busy) =
                    (engine.clone(), bus.clone(), settings.clone(), busy.clone());
                in_flight.spawn(async move {
                    handle_message(&engine, &bus, &settings, &busy, msg).await;
                    drop(permit);
                });
            }
        }
        while in_flight.try_join_next().is_some() {}
    }
    drop(messages);
    info!(in_flight = in_flight.len(), grace = ?settings.shutdown_grace, "shutting down: no more fetching");
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = in_flight.len(),
            "grace period over; unfinished messages will be redelivered"
        );
        in_flight.abort_all();
    }
    info!("tenant-worker stopped");
    Ok(())
}

async fn handle_message(
    engine: &Engine,
    bus: &Bus,
    settings: &WorkerSettings,
    busy: &Busy,
    msg: jetstream::Message,
) {
    let (sequence, delivered) = match msg.info() {
        Ok(info) => (
            info.stream_sequence,
            u64::try_from(info.delivered).unwrap_or(1),
        ),
        Err(e) => {
            error!(error = %e, subject = %msg.subject, "message without JetStream metadata; ignored");
            return;
        }
    };
    let disposition = match decode_inbound(&msg.subject, &msg.payload, settings.max_event_bytes) {
        Err(e) => {
            warn!(subject = %msg.subject, sequence, reason = %e, "dead-lettering malformed event");
            Disposition::DeadLetter {
                code: e.kind.as_str(),
                reason: e.to_string(),
            }
        }
        Ok(event) => {
            let span = info_span!("event", tenant_id = %event.tenant_id, event_id = %event.id, r#type = %event.intent.event_type(), sequence, delivered);
            async {
                let Some(_guard) = busy.try_take(&event.tenant_id) else {
                    debug!("tenant busy in this replica; redelivering shortly");
                    return Disposition::Nak(BUSY_TENANT_DELAY);
                };
                let work = engine.handle(&event, sequence);
                tokio::pin!(work);
                // Keep the message while a long saga runs.
                let mut progress = tokio::time::interval(settings.topology.ack_wait / 3);
                progress.tick().await;
                let result = loop {
                    tokio::select! {
                        r = &mut work => break r,
                        _ = progress.tick() => {
                            if let Err(e) = msg.ack_with(AckKind::Progress).await {
                                warn!(error = %e, "progress ack failed");
                            }
                        }
                    }
                };
                if let Err(e) = &result {
                    warn!(error = %e, transient = e.is_transient(), "event not finished");
                }
                disposition(&result, delivered, settings)
            }
            .instrument(span)
            .await
        }
    };
    settle(bus, &msg, sequence, disposition).await;
}

async fn settle(bus: &Bus, msg: &jetstream::Message, sequence: u64, disposition: Disposition) {
    let ack = match disposition {
        Disposition::Ack => msg.double_ack().await,
        Disposition::Nak(delay) => msg.ack_with(AckKind::Nak(Some(delay))).await,
        Disposition::DeadLetter { code, reason } => {
            match bus.deadletter(&msg.message, sequence, code, &reason).await {
                Ok(()) => msg.double_ack().await,
                Err(e) => {
                    error!(error = %e, sequence, "cannot dead-letter; redelivering");
                    msg.ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                        .await
                }
            }
        }
    };
    if let Err(e) = ack {
        // The server redelivers after ack_wait; every step is idempotent.
        warn!(error = %e, sequence, "acknowledgement failed; the message will be redelivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterError;

    fn settings() -> WorkerSettings {
        WorkerSettings::for_tests("nats://127.0.0.1:1")
    }

    #[test]
    fn success_acks() {
        assert_eq!(
            disposition(&Ok(Handled::Duplicate), 1, &settings()),
            Disposition::Ack
        );
    }

    #[test]
    fn transient_naks_until_the_last_delivery_then_dead_letters() {
        let s = settings();
        let err = || Err(Error::nats("publish", "timed out"));
        assert!(matches!(disposition(&err(), 1, &s), Disposition::Nak(_)));
        assert!(matches!(
            disposition(&err(), s.max_deliver(), &s),
            Disposition::DeadLetter {
                code: "max_deliver",
                ..
            }
        ));
    }

    #[test]
    fn permanent_dead_letters_at_once() {
        let err = Err(Error::Cluster(ClusterError::Config("x".into())));
        assert!(matches!(
            disposition(&err, 1, &settings()),
            Disposition::DeadLetter {
                code: "unprocessable",
                ..
            }
        ));
    }
}
