//! Random per-tenant scripts of intents (requested / upgraded / deleted) and
//! what each must lead to when applied in stream order, for tests that throw
//! many tenants at the workers (the same shapes as `tests/race.rs`).

/// The plans the scripts choose from (all in the shipped catalogue).
pub const PLANS: [&str; 3] = ["free", "standard", "premium"];

/// One inbound event of a script.
#[derive(Debug, Clone)]
pub enum Step {
    Request(&'static str),
    Upgrade(&'static str),
    Delete,
}

/// A random script for one tenant, from the shapes that matter: a plain
/// request, request then delete (then request again), upgrades of a live and
/// of an absent tenant, a delete of an absent tenant, a repeated request.
pub fn script(rng: &mut fastrand::Rng) -> Vec<Step> {
    let mut plan = || PLANS[rng.usize(..PLANS.len())];
    let (a, b, c) = (plan(), plan(), plan());
    match rng.usize(..8) {
        0 => vec![Step::Request(a)],
        1 => vec![Step::Request(a), Step::Delete],
        2 => vec![Step::Request(a), Step::Delete, Step::Request(b)],
        3 => vec![Step::Request(a), Step::Upgrade(b)],
        4 => vec![Step::Request(a), Step::Upgrade(b), Step::Delete],
        5 => vec![Step::Delete],
        6 => vec![Step::Upgrade(a)],
        _ => vec![Step::Request(a), Step::Request(b), Step::Upgrade(c)],
    }
}

/// The event of `step` for `tenant`.
pub fn event_of(
    tenant: &str,
    step: &Step,
) -> tenant_worker::contract::CloudEvent<serde_json::Value> {
    match step {
        Step::Request(p) => super::requested(tenant, p),
        Step::Upgrade(p) => super::upgraded(tenant, p),
        Step::Delete => super::deleted(tenant),
    }
}

/// The plan a tenant must end on (`None`: not live), and the completion type
/// of each step, when its events are applied in stream order.
pub fn expected(steps: &[Step]) -> (Option<&'static str>, Vec<&'static str>) {
    let mut live = None;
    let mut types = Vec::new();
    for step in steps {
        types.push(match (step, live) {
            (Step::Request(p), _) => {
                live = Some(*p);
                "tenant.provisioned"
            }
            (Step::Upgrade(p), Some(_)) => {
                live = Some(*p);
                "tenant.upgrade_completed"
            }
            (Step::Upgrade(_), None) => "tenant.rejected",
            (Step::Delete, _) => {
                live = None;
                "tenant.deprovisioned"
            }
        });
    }
    (live, types)
}
