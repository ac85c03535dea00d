//! `tenant-worker routes watch`: a reference gateway-side consumer of KV
//! `tenant_routes`. It keeps a tenant → endpoint table exactly as a routing
//! gateway's cache should: it starts from the latest value of every key, then
//! applies each change, ignoring a route whose `generation` is older than the
//! one it holds (a stale write can never roll a gateway back).

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde_json::json;

use super::output;
use crate::bus::Route;
use crate::bus::state::StateStore;
use crate::cluster::release_records::deployed;
use crate::cluster::{Cluster, NamespaceState};
use crate::config::{RoutesRebuildArgs, RoutesWatchArgs};
use crate::contract::{ROUTES_BUCKET, STATE_BUCKET};
use crate::error::Error;
use crate::record::{TenantRecord, TenantStatus};
use crate::retry::RetryPolicy;

/// A gateway's view of the routes: what it applies, what it ignores.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: BTreeMap<String, Route>,
}

/// What one KV entry did to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(String, Route),
    Delete(String),
    /// Older than the route held (or unreadable): not applied.
    Ignored(String, String),
}

impl RouteTable {
    /// Applies one entry of the bucket: the value (or delete marker) of `key`.
    pub fn apply(&mut self, key: &str, operation: kv::Operation, value: &[u8]) -> Change {
        let tenant = key.to_owned();
        if operation != kv::Operation::Put {
            return match self.routes.remove(&tenant) {
                Some(_) => Change::Delete(tenant),
                None => Change::Ignored(tenant, "withdrawn, and not held".into()),
            };
        }
        let route: Route = match serde_json::from_slice(value) {
            Ok(route) => route,
            Err(e) => return Change::Ignored(tenant, format!("unreadable route: {e}")),
        };
        if let Some(held) = self.routes.get(&tenant)
            && held.generation > route.generation
        {
            return Change::Ignored(
                tenant,
                format!(
                    "generation {} is older than the {} held",
                    route.generation, held.generation
                ),
            );
        }
        self.routes.insert(tenant.clone(), route.clone());
        Change::Put(tenant, route)
    }

    pub fn routes(&self) -> &BTreeMap<String, Route> {
        &self.routes
    }
}

fn line(change: &Change, json: bool) -> Option<String> {
    Some(match (change, json) {
        (Change::Put(t, r), true) => json!({"op": "put", "tenant": t, "route": r}).to_string(),
        (Change::Delete(t), true) => json!({"op": "delete", "tenant": t}).to_string(),
        (Change::Put(t, r), false) => format!(
            "+ {t}  {}:{}  plan={} version={} generation={}",
            r.host, r.port, r.plan, r.app_version, r.generation
        ),
        (Change::Delete(t), false) => format!("- {t}"),
        (Change::Ignored(t, why), _) => {
            tracing::warn!(tenant = %t, why, "route change ignored");
            return None;
        }
    })
}

/// Runs `tenant-worker routes watch` until `shutdown` (or, with `--once`, after
/// printing the current table).
///
/// # Errors
/// An unreachable NATS or no `tenant_routes` bucket (no worker has run yet).
pub async fn watch(
    args: &RoutesWatchArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let client = args.nats.connect("tenant-worker-routes").await?;
    let js = jetstream::new(client);
    let bucket = js.get_key_value(ROUTES_BUCKET).await.map_err(|e| {
        Error::nats(
            "open tenant_routes",
            format!("{e} (has a worker run against this NATS? it creates the bucket)"),
        )
    })?;
    // Nothing stored: the watch would print nothing until a change.
    let stored = bucket
        .status()
        .await
        .map_err(|e| Error::nats("read tenant_routes status", e))?
        .values();
    let mut entries = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| Error::nats("watch tenant_routes", e))?;
    let mut table = RouteTable::default();
    let mut caught_up = stored == 0;
    if caught_up && args.once {
        return Ok(());
    }
    tokio::pin!(shutdown);
    loop {
        let entry = tokio::select! {
            () = &mut shutdown => return Ok(()),
            e = entries.next() => e,
        };
        let Some(entry) = entry else { return Ok(()) };
        let entry = entry.map_err(|e| Error::nats("watch tenant_routes", e))?;
        let change = table.apply(&entry.key, entry.operation, &entry.value);
        if let Some(text) = line(&change, args.json) {
            // A consumer reads line by line: each is flushed. A consumer
            // that goes away ends the watch.
            output::line(text)?;
        }
        if !caught_up && entry.delta == 0 {
            caught_up = true;
            if args.once {
                return Ok(());
            }
        }
    }
}

/// The routes stored now, by tenant (the latest value of every key).
async fn stored_routes(bucket: &kv::Store) -> Result<BTreeMap<String, Route>, Error> {
    let mut table = RouteTable::default();
    let stored = bucket
        .status()
        .await
        .map_err(|e| Error::nats("read tenant_routes status", e))?
        .values();
    if stored > 0 {
        let mut entries = bucket
            .watch_with_history(">")
            .await
            .map_err(|e| Error::nats("read tenant_routes", e))?;
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| Error::nats("read tenant_routes", e))?;
            table.apply(&entry.key, entry.operation, &entry.value);
            if entry.delta == 0 {
                break;
            }
        }
    }
    Ok(table.routes)
}

/// The route `record` calls for now: one when the tenant is ready, its
/// namespace is there (not terminating) and its release is deployed.
async fn desired_route(
    cluster: &Cluster,
    record: &TenantRecord,
    args: &RoutesRebuildArgs,
) -> Result<Option<Route>, Error> {
    if record.status != TenantStatus::Ready || record.plan.is_none() {
        return Ok(None);
    }
    if cluster.namespace_state(&record.tenant_id).await?
        != (NamespaceState::Owned { terminating: false })
    {
        return Ok(None);
    }
    let history = cluster
        .release_history(&record.namespace, record.tenant_id.as_str())
        .await?;
    let deployed = deployed(&history).is_some();
    Ok(deployed.then(|| {
        Route::for_record(
            record,
            &args.app_service,
            args.app_port,
            record.last_sequence,
        )
    }))
}

/// Runs `tenant-worker routes rebuild`.
///
/// # Errors
/// An unreachable NATS or cluster, or missing buckets.
pub async fn rebuild(args: &RoutesRebuildArgs) -> Result<(), Error> {
    let client = args.nats.connect("tenant-worker-routes").await?;
    let js = jetstream::new(client);
    let open = async |name: &'static str| {
        js.get_key_value(name).await.map_err(|e| {
            Error::nats(
                "open bucket",
                format!("{name}: {e} (has a worker run against this NATS? it creates the buckets)"),
            )
        })
    };
    let routes = open(ROUTES_BUCKET).await?;
    let records = StateStore::new(open(STATE_BUCKET).await?).all().await?;
    let kube = crate::cluster::connect(args.kubeconfig.as_deref()).await?;
    let cluster = Cluster::new(kube, args.namespace_prefix.clone(), RetryPolicy::default());
    let mut stored = stored_routes(&routes).await?;
    let (mut set, mut withdrawn, mut unchanged) = (0, 0, 0);
    for record in &records {
        let tenant = record.tenant_id.as_str();
        let want = desired_route(&cluster, record, args).await?;
        let have = stored.remove(tenant);
        match (want, have) {
            (Some(want), Some(have)) if want == have => unchanged += 1,
            (Some(want), have) => {
                if have
                    .as_ref()
                    .is_some_and(|h| h.generation > want.generation)
                {
                    // Written by a worker after the record was read: newer.
                    unchanged += 1;
                    continue;
                }
                output::line(
                    line(&Change::Put(tenant.to_owned(), want.clone()), false).expect("puts print"),
                )?;
                if !args.dry_run {
                    let value = serde_json::to_vec(&want).expect("routes serialize");
                    routes
                        .put(tenant, value.into())
                        .await
                        .map_err(|e| Error::nats("write tenant_routes", e))?;
                }
                set += 1;
            }
            (None, Some(_)) => {
                withdraw(&routes, tenant, args.dry_run).await?;
                withdrawn += 1;
            }
            (None, None) => unchanged += 1,
        }
    }
    // Routes of tenants the worker has no record of.
    for tenant in stored.keys() {
        withdraw(&routes, tenant, args.dry_run).await?;
        withdrawn += 1;
    }
    output::line(format_args!(
        "routes {}: {set} set, {withdrawn} withdrawn, {unchanged} unchanged ({} tenant records)",
        if args.dry_run {
            "that a rebuild would change"
        } else {
            "rebuilt"
        },
        records.len()
    ))
}

async fn withdraw(routes: &kv::Store, tenant: &str, dry_run: bool) -> Result<(), Error> {
    output::line(format_args!("- {tenant}"))?;
    if !dry_run {
        routes
            .delete(tenant)
            .await
            .map_err(|e| Error::nats("delete from tenant_routes", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &Route) -> Vec<u8> {
        serde_json::to_vec(r).unwrap()
    }

    fn route(generation: u64, plan: &str) -> Route {
        Route {
            namespace: "tenant-acme".into(),
            host: "app.tenant-acme.svc.cluster.local".into(),
            port: 8080,
            app_version: "1.0.0".into(),
            plan: plan.into(),
            status: "ready".into(),
            generation,
        }
    }

    #[test]
    fn a_gateway_table_never_goes_back_a_generation() {
        let mut t = RouteTable::default();
        assert!(matches!(
            t.apply("acme", kv::Operation::Put, &json(&route(5, "free"))),
            Change::Put(..)
        ));
        assert!(matches!(
            t.apply("acme", kv::Operation::Put, &json(&route(9, "premium"))),
            Change::Put(..)
        ));
        assert!(matches!(
            t.apply("acme", kv::Operation::Put, &json(&route(7, "standard"))),
            Change::Ignored(..)
        ));
        assert_eq!(t.routes()["acme"].plan, "premium");
        assert_eq!(
            t.apply("acme", kv::Operation::Delete, b""),
            Change::Delete("acme".into())
        );
        assert!(t.routes().is_empty());
        assert!(matches!(
            t.apply("ghost", kv::Operation::Delete, b""),
            Change::Ignored(..)
        ));
    }
}
