//! Per-tenant order by stream sequence: which events must wait for an older
//! one of their tenant (which are stale is [`tenant_core::rules::superseded`]).

use super::engine::Engine;
use crate::contract::{InboundEvent, decode_inbound};
use crate::error::Error;
use crate::record::TenantRecord;

impl Engine {
    /// Keeps per-tenant stream order: fails with [`Error::SagaPending`] when
    /// an older event of the tenant must be applied before `event` (at
    /// `sequence`). That one is delivered too, possibly to another replica,
    /// possibly after a nak.
    ///
    /// # Errors
    /// [`Error::SagaPending`]; a NATS error reading the stream.
    pub(super) async fn wait_for_older(
        &self,
        record: &TenantRecord,
        event: &InboundEvent,
        sequence: u64,
    ) -> Result<(), Error> {
        match self.older_unapplied(record, event, sequence).await? {
            Some((sequence, event_id)) => Err(Error::SagaPending {
                tenant: record.tenant_id.clone(),
                event_id,
                sequence,
            }),
            None => Ok(()),
        }
    }

    /// The oldest event for the tenant on `TENANT_LIFECYCLE` that precedes
    /// `sequence`, follows the last applied one, and is not applied: a valid
    /// intent that the consumer delivered out of order (concurrency, another
    /// replica, a nak). Messages that do not decode are poison (they are
    /// dead-lettered) and do not count; nor does the same event published twice.
    async fn older_unapplied(
        &self,
        record: &TenantRecord,
        event: &InboundEvent,
        sequence: u64,
    ) -> Result<Option<(u64, uuid::Uuid)>, Error> {
        // A replayed event stands for its tenant's whole history up to the
        // sequence the replay read: nothing before that is left to wait for
        // (a record that was lost would otherwise wait for events long done).
        let mut from = record.last_sequence.max(event.replay_as_of.unwrap_or(0)) + 1;
        while from < sequence {
            let Some((seq, subject, payload)) = self
                .bus
                .next_lifecycle_message(&event.tenant_id, from)
                .await?
            else {
                return Ok(None);
            };
            if seq >= sequence {
                return Ok(None);
            }
            if let Ok(older) = decode_inbound(&subject, &payload, self.settings.max_event_bytes)
                && older.id != event.id
                && older.tenant_id == event.tenant_id
                && !record.has_applied(&older.id)
            {
                return Ok(Some((seq, older.id)));
            }
            from = seq + 1;
        }
        Ok(None)
    }
}
