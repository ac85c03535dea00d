//! The consumer loop: fetch from the durable consumer, decode, run the saga
//! engine with bounded concurrency, and turn each result into exactly one
//! acknowledgement ([`disposition`] is the only place that decides which).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::bus::{Bus, DeadLetterHistory, ensure_topology};
use crate::contract::{TenantId, decode_inbound};
use crate::error::Error;
use crate::failpoint::crash_point;
use crate::saga::reconcile::{PassMode, TenantReport};
use crate::saga::{Delivery, Engine, Handled};
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
        // Another replica should pick the saga up at once.
        Err(Error::Interrupted) if delivered < settings.max_deliver() => {
            Disposition::Nak(Duration::ZERO)
        }
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
/// them waits (see [`Slot`]) instead of running beside it.
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
                format!(
                    "cannot reach NATS at {} ({e})",
                    crate::settings::redacted_url(&settings.nats.url)
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    let engine = settings.engine(kube, bus.clone());
    info!(
        nats = %crate::settings::redacted_url(&settings.nats.url),
        replica = %settings.engine.replica_id,
        concurrency = settings.concurrency,
        plans = ?settings.plans.names().collect::<Vec<_>>(),
        "tenant-worker consuming tenant.lifecycle.>"
    );
    let endpoints = match settings.metrics_listen {
        Some(addr) => {
            let listener = crate::health::bind(addr).await?;
            info!(
                listen = %listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string()),
                "serving /metrics, /healthz and /readyz"
            );
            let probes = crate::health::Probes {
                nats: nats.clone(),
                js: js.clone(),
                kube: engine.cluster.client().clone(),
            };
            Some(tokio::spawn(crate::health::serve(listener, probes)))
        }
        None => None,
    };
    let gauges = tokio::spawn(watch_consumer(consumer.clone()));
    let reconciler = settings
        .reconcile_interval
        .map(|every| tokio::spawn(reconcile_periodically(engine.clone(), every)));
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let busy = Busy::default();
    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    'consume: loop {
        // (Re)start the pull subscription: after a NATS restart the old one may end.
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(settings.concurrency)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                warn!(error = %e, "cannot start consuming; retrying in 1 s");
                tokio::select! {
                    () = &mut shutdown => break 'consume,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue 'consume,
                }
            }
        };
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break 'consume,
                p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let next = tokio::select! {
                () = &mut shutdown => break 'consume,
                m = messages.next() => m,
            };
            match next {
                None => {
                    warn!("consumer stream ended; resubscribing");
                    continue 'consume;
                }
                Some(Err(e)) => {
                    // Missed heartbeats and the like: the stream recovers by itself.
                    warn!(error = %e, "consumer stream error");
                }
                Some(Ok(msg)) => {
                    let (engine, bus, settings, busy) =
                        (engine.clone(), bus.clone(), settings.clone(), busy.clone());
                    let slot = Slot {
                        slots: slots.clone(),
                        permit: Some(permit),
                    };
                    in_flight.spawn(async move {
                        handle_message(&engine, &bus, &settings, &busy, slot, msg).await;
                    });
                }
            }
            while in_flight.try_join_next().is_some() {}
        }
    }
    if let Some(reconciler) = reconciler {
        // A repair cut short leaves its lease to expire; the next pass redoes it.
        reconciler.abort();
    }
    gauges.abort();
    drain(&engine, &mut in_flight, settings.shutdown_grace).await;
    if let Some(endpoints) = endpoints {
        endpoints.abort();
    }
    info!("tenant-worker stopped");
    Ok(())
}

/// Checks every tenant for drift every `every` (the first pass after one
/// interval, each started at a random point of its first tenth so that
/// replicas drift apart) and repairs what drifted. Replicas doing this at once
/// are safe: a repair takes the tenant's lease with compare-and-set.
async fn reconcile_periodically(engine: Engine, every: Duration) {
    loop {
        let jitter = every.mul_f64(fastrand::f64() / 10.0);
        tokio::time::sleep(every + jitter).await;
        let records = match engine.bus.state().all().await {
            Ok(records) => records,
            Err(e) => {
                warn!(error = %e, "reconcile: cannot read tenant_state; next pass later");
                continue;
            }
        };
        let report = |r: &TenantReport| info!(target: "tenant_worker::reconcile", "{r}");
        match engine
            .reconcile_pass(&records, PassMode::Repair, report)
            .await
        {
            Ok(s) => info!(
                checked = s.checked,
                in_sync = s.in_sync,
                drifted = s.drifted,
                repaired = s.repaired,
                skipped = s.skipped,
                "reconcile pass done"
            ),
            Err(e) => warn!(error = %e, "reconcile pass stopped; next pass later"),
        }
    }
}

/// Keeps the consumer gauges (pending, ack pending) current.
async fn watch_consumer(mut consumer: jetstream::consumer::PullConsumer) {
    let m = crate::metrics::metrics();
    loop {
        match consumer.info().await {
            Ok(info) => {
                m.consumer_pending
                    .set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                m.consumer_ack_pending
                    .set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
            }
            Err(e) => debug!(error = %e, "cannot read the consumer's state for metrics"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// After a shutdown signal: sagas get the first half of `grace` to finish;
/// then the rest are asked to stop at their next step boundary, where they
/// write their log, release their lease and give their message back; whatever
/// still runs when `grace` is over is dropped (its lease expires and its
/// message is redelivered).
async fn drain(engine: &Engine, in_flight: &mut JoinSet<()>, grace: Duration) {
    info!(
        in_flight = in_flight.len(),
        ?grace,
        "shutting down: no more fetching"
    );
    let deadline = tokio::time::Instant::now() + grace;
    let join_all = async |set: &mut JoinSet<()>| while set.join_next().await.is_some() {};
    if tokio::time::timeout(grace / 2, join_all(in_flight))
        .await
        .is_ok()
    {
        return;
    }
    info!(
        left = in_flight.len(),
        "asking the remaining sagas to checkpoint"
    );
    engine.stop();
    if tokio::time::timeout_at(deadline, join_all(in_flight))
        .await
        .is_err()
    {
        warn!(
            left = in_flight.len(),
            "grace period over; unfinished messages will be redelivered"
        );
        in_flight.abort_all();
    }
}

/// One of the `concurrency` saga slots, held by a message while its saga runs
/// and given up while the message waits for its tenant.
struct Slot {
    slots: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Lets another message run while this one waits.
    fn release(&mut self) {
        self.permit = None;
    }

    async fn reacquire(&mut self) {
        if self.permit.is_none() {
            self.permit = Some(
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed"),
            );
        }
    }
}

/// The first pause of a message waiting for its tenant; each next one is
/// twice as long, up to [`WAIT_PAUSE_MAX`]. A saga takes tens of
/// milliseconds against a fast API, so most waits end after a few pauses.
const WAIT_PAUSE_MIN: Duration = Duration::from_millis(10);
const WAIT_PAUSE_MAX: Duration = Duration::from_millis(250);

/// Runs `event`'s saga; when its tenant is taken (a saga of this or another
/// replica holds it, or an older event of the tenant must go first), waits in
/// this process, re-checking at growing intervals without holding a saga
/// slot, for up to a third of the ack wait (so the message is not
/// redelivered meanwhile). Only a longer wait gives the message back to
/// JetStream, with the redelivery backoff: a nak costs at least half a
/// second, while the tenant is usually free again in tens of milliseconds.
async fn run_when_free(
    engine: &Engine,
    settings: &WorkerSettings,
    busy: &Busy,
    slot: &mut Slot,
    msg: &jetstream::Message,
    event: &crate::contract::InboundEvent,
    delivery: Delivery,
) -> Result<Handled, Error> {
    let limit = settings.topology.ack_wait / 3;
    let started = tokio::time::Instant::now();
    let mut pause = WAIT_PAUSE_MIN;
    loop {
        let result = match busy.try_take(&event.tenant_id) {
            Some(_guard) => run_saga(engine, settings, msg, event, delivery).await,
            None => Err(Error::TenantBusy {
                tenant: event.tenant_id.clone(),
                holder: settings.engine.replica_id.clone(),
                until: jiff::Timestamp::now(),
            }),
        };
        let waiting = matches!(
            result,
            Err(Error::TenantBusy { .. } | Error::SagaPending { .. })
        );
        if !waiting || engine.is_stopping() || started.elapsed() + pause > limit {
            return result;
        }
        if let Err(e) = &result {
            debug!(reason = %e, ?pause, "tenant taken; waiting");
        }
        slot.release();
        tokio::time::sleep(pause.mul_f64(0.5 + fastrand::f64())).await;
        pause = (pause * 2).min(WAIT_PAUSE_MAX);
        slot.reacquire().await;
    }
}

async fn handle_message(
    engine: &Engine,
    bus: &Bus,
    settings: &WorkerSettings,
    busy: &Busy,
    mut slot: Slot,
    msg: jetstream::Message,
) {
    let delivery = match msg.info() {
        Ok(info) => Delivery {
            sequence: info.stream_sequence,
            delivered: u64::try_from(info.delivered).unwrap_or(1),
        },
        Err(e) => {
            error!(error = %e, subject = %msg.subject, "message without JetStream metadata; ignored");
            return;
        }
    };
    let sequence = delivery.sequence;
    let mut history = DeadLetterHistory {
        deliveries: delivery.delivered,
        attempts: Vec::new(),
    };
    let disposition = match decode_inbound(
        &msg.subject,
        &msg.payload,
        settings.engine.max_event_bytes,
    ) {
        Err(e) => {
            warn!(subject = %msg.subject, sequence, reason = %e, "dead-lettering malformed event");
            Disposition::DeadLetter {
                code: e.kind.as_str(),
                reason: e.to_string(),
            }
        }
        Ok(event) => {
            // The messaging semantic conventions, for traces.
            let span = info_span!(
                "event",
                otel.name = %format!("process {}", msg.subject),
                otel.kind = "consumer",
                messaging.system = "nats",
                messaging.destination.name = %msg.subject,
                messaging.operation.type = "process",
                messaging.operation.name = "process",
                messaging.consumer.group.name = crate::contract::CONSUMER_NAME,
                messaging.message.id = %event.id,
                tenant_id = %event.tenant_id,
                event_id = %event.id,
                r#type = %event.intent.event_type(),
                sequence,
                delivered = delivery.delivered
            );
            crate::telemetry::continue_trace(&span, msg.headers.as_ref());
            async {
                let result =
                    run_when_free(engine, settings, busy, &mut slot, &msg, &event, delivery).await;
                if let Err(e) = &result {
                    crate::metrics::count_error(e);
                }
                match &result {
                    Err(e) if e.is_wait() => debug!(reason = %e, "not now; redelivering later"),
                    Err(e) => warn!(error = %e, transient = e.is_transient(), "event not finished"),
                    Ok(_) => crash_point("worker.before_ack"),
                }
                let disposition = disposition(&result, delivery.delivered, settings);
                if let (Disposition::DeadLetter { .. }, Err(e)) = (&disposition, &result)
                    && e.is_transient()
                {
                    // The last delivery: unwind, report the tenant failed, and
                    // hand the history to the dead letter.
                    match engine.give_up(&event, delivery, e).await {
                        Ok(attempts) => history.attempts = attempts,
                        Err(give_up) => {
                            error!(error = %give_up, "could not conclude the event before dead-lettering it");
                        }
                    }
                }
                disposition
            }
            .instrument(span)
            .await
        }
    };
    settle(bus, &msg, sequence, disposition, &history).await;
}

/// Runs the engine on one event, keeping the message with progress acks while
/// the saga runs longer than a third of the ack wait.
async fn run_saga(
    engine: &Engine,
    settings: &WorkerSettings,
    msg: &jetstream::Message,
    event: &crate::contract::InboundEvent,
    delivery: Delivery,
) -> Result<Handled, Error> {
    let _running = crate::metrics::GaugeGuard::hold(&crate::metrics::metrics().sagas_in_flight);
    let work = engine.handle(event, delivery);
    tokio::pin!(work);
    let mut progress = tokio::time::interval(settings.topology.ack_wait / 3);
    progress.tick().await;
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = progress.tick() => {
                if let Err(e) = msg.ack_with(AckKind::Progress).await {
                    warn!(error = %e, "progress ack failed");
                }
            }
        }
    }
}

async fn settle(
    bus: &Bus,
    msg: &jetstream::Message,
    sequence: u64,
    disposition: Disposition,
    history: &DeadLetterHistory,
) {
    let ack = match disposition {
        Disposition::Ack => msg.double_ack().await,
        Disposition::Nak(delay) => msg.ack_with(AckKind::Nak(Some(delay))).await,
        Disposition::DeadLetter { code, reason } => {
            match bus
                .deadletter(&msg.message, sequence, code, &reason, history)
                .await
            {
                Ok(()) => {
                    crate::metrics::metrics()
                        .deadlettered
                        .get_or_create(&crate::metrics::ReasonLabels {
                            reason: code.to_owned(),
                        })
                        .inc();
                    msg.double_ack().await
                }
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
