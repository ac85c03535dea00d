//! Tenant records in KV `tenant_state`, written with compare-and-set on the
//! entry revision so that two writers can never silently overwrite each other.

use async_nats::jetstream::kv;
use bytes::Bytes;

use crate::contract::TenantId;
use crate::error::Error;
use crate::record::TenantRecord;

/// A record and the KV revision it was read at (`None`: no entry yet).
#[derive(Debug, Clone)]
pub struct Versioned {
    pub record: TenantRecord,
    pub revision: Option<u64>,
}

/// Reads and writes tenant records.
#[derive(Clone)]
pub struct StateStore {
    kv: kv::Store,
}

impl StateStore {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    /// The record of `tenant`, if any.
    ///
    /// # Errors
    /// [`Error::Nats`] when KV cannot be read; [`Error::CorruptRecord`] when the
    /// stored value is not a record.
    pub async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>, Error> {
        let entry = self
            .kv
            .entry(tenant.as_str())
            .await
            .map_err(|e| Error::nats("read tenant_state", e))?;
        let Some(entry) = entry else { return Ok(None) };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let record = serde_json::from_slice(&entry.value).map_err(|e| Error::CorruptRecord {
            tenant: tenant.clone(),
            message: e.to_string(),
        })?;
        Ok(Some(Versioned {
            record,
            revision: Some(entry.revision),
        }))
    }

    /// Writes `v.record` if the entry is still at `v.revision`, and moves
    /// `v.revision` to the new one.
    ///
    /// # Errors
    /// [`Error::StateConflict`] when someone else wrote the entry in between
    /// (transient: the message is redelivered and re-read); [`Error::Nats`] otherwise.
    pub async fn save(&self, v: &mut Versioned) -> Result<(), Error> {
        let key = v.record.tenant_id.as_str().to_owned();
        let value = Bytes::from(serde_json::to_vec(&v.record).expect("records serialize"));
        let result = match v.revision {
            None => self.kv.create(&key, value).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    Error::StateConflict {
                        tenant: v.record.tenant_id.clone(),
                    }
                } else {
                    Error::nats("create tenant_state entry", e)
                }
            }),
            Some(rev) => self.kv.update(&key, value, rev).await.map_err(|e| {
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    Error::StateConflict {
                        tenant: v.record.tenant_id.clone(),
                    }
                } else {
                    Error::nats("update tenant_state entry", e)
                }
            }),
        };
        v.revision = Some(result?);
        Ok(())
    }

    /// Every record, sorted by tenant, for `status`: one pass over the
    /// bucket's latest entries (a watch with `LastPerSubject`), not one read
    /// per key, so that it stays fast with tens of thousands of tenants.
    /// Entries that do not parse are skipped with a warning.
    ///
    /// # Errors
    /// [`Error::Nats`] when KV cannot be read.
    pub async fn all(&self) -> Result<Vec<TenantRecord>, Error> {
        use futures::StreamExt;
        // Fresh stream info (`kv::Store::status` returns what was cached when
        // the bucket was opened): an empty bucket's watch would never end.
        let info = self
            .kv
            .stream
            .get_info()
            .await
            .map_err(|e| Error::nats("read tenant_state status", e))?;
        if info.state.messages == 0 {
            return Ok(Vec::new());
        }
        let mut latest = self
            .kv
            .watch_with_history(">")
            .await
            .map_err(|e| Error::nats("list tenant_state", e))?;
        let mut records = Vec::new();
        while let Some(entry) = latest.next().await {
            let entry = entry.map_err(|e| Error::nats("list tenant_state", e))?;
            if entry.operation == kv::Operation::Put {
                match serde_json::from_slice::<TenantRecord>(&entry.value) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        tracing::warn!(key = entry.key, error = %e, "unreadable tenant record; skipped");
                    }
                }
            }
            // The last of the latest entries: the watch would now wait for changes.
            if entry.delta == 0 {
                break;
            }
        }
        records.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        Ok(records)
    }
}
