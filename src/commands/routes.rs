//! `tenant-worker routes watch`: a reference gateway-side consumer of KV
//! `tenant_routes`. It keeps a tenant → endpoint table exactly as a routing
//! gateway's cache should: it starts from the latest value of every key, then
//! applies each change, ignoring a route whose `generation` is older than the
//! one it holds (a stale write can never roll a gateway back).

use std::collections::BTreeMap;
use std::io::Write as _;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde_json::json;

use crate::bus::Route;
use crate::config::RoutesWatchArgs;
use crate::contract::ROUTES_BUCKET;
use crate::error::Error;

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
    let mut out = std::io::stdout().lock();
    loop {
        let entry = tokio::select! {
            () = &mut shutdown => return Ok(()),
            e = entries.next() => e,
        };
        let Some(entry) = entry else { return Ok(()) };
        let entry = entry.map_err(|e| Error::nats("watch tenant_routes", e))?;
        let change = table.apply(&entry.key, entry.operation, &entry.value);
        if let Some(text) = line(&change, args.json) {
            // A consumer reads line by line: flush each one.
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        if !caught_up && entry.delta == 0 {
            caught_up = true;
            if args.once {
                return Ok(());
            }
        }
    }
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
