//! What a tenant's history asks for: its events folded in stream order, by the
//! rules the saga engine applies (an upgrade of a tenant that is not live, or
//! a plan the catalogue does not have, changes nothing; an upgrade's values
//! are merged into the tenant's, a request states them anew).

use serde::Serialize;
use uuid::Uuid;

use crate::contract::{InboundEvent, Intent, Metadata};
use crate::plans::PlanCatalog;
use helm::{Chart, release_values};
use tenant_core::rules::Shape;

/// A tenant as its events leave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    /// Plan, version (`None`: never named by an event, the worker's default
    /// applies) and the tenant's own values, by the engine's rules.
    #[serde(flatten)]
    pub shape: Shape,
    /// The `metadata` of the last event that shaped this, passed on when the
    /// intent is re-driven.
    #[serde(skip)]
    pub metadata: Option<Metadata>,
}

/// The fold of one tenant's events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folded {
    /// `None`: the tenant should not exist.
    pub target: Option<Live>,
    /// `(sequence, id)` of the last valid event.
    pub last: Option<(u64, Uuid)>,
    /// Sequences of the events read, in order.
    pub sequences: Vec<u64>,
    /// Events the worker rejects (and so change nothing), with why.
    pub ignored: Vec<(u64, String)>,
}

impl Folded {
    /// Applies `event` at stream `sequence`.
    pub fn apply(
        &mut self,
        sequence: u64,
        event: &InboundEvent,
        plans: &PlanCatalog,
        chart: &Chart,
    ) {
        self.sequences.push(sequence);
        self.last = Some((sequence, event.id));
        let current = self.target.as_ref().map(|t| &t.shape);
        let next = match &event.intent {
            Intent::Requested(d) => Some(Live {
                shape: Shape::requested(current.and_then(|c| c.app_version.as_deref()), d),
                metadata: d.metadata.clone(),
            }),
            Intent::Upgraded(d) => {
                let Some(current) = current else {
                    self.ignored
                        .push((sequence, "an upgrade of a tenant that is not live".into()));
                    return;
                };
                Some(Live {
                    shape: current.upgraded(d),
                    metadata: d.metadata.clone(),
                })
            }
            Intent::Deleted(_) => None,
        };
        if let Some(live) = &next
            && let Err(why) = check(live, plans, chart)
        {
            self.ignored.push((sequence, why));
            return;
        }
        self.target = next;
    }
}

/// Why the worker would reject `live`, if it would (the plan and the values;
/// rendering is not tried).
fn check(live: &Live, plans: &PlanCatalog, chart: &Chart) -> Result<(), String> {
    let plan = plans
        .get(&live.shape.plan)
        .ok_or_else(|| format!("plan {:?} is not in the catalogue", live.shape.plan))?;
    let version = live
        .shape
        .app_version
        .as_deref()
        .unwrap_or_else(|| plans.default_app_version());
    release_values(
        chart,
        &plan.values,
        Some(&plan.overridable_values),
        (plans.app_version_value(), version),
        &live.shape.values,
    )
    .map(|_| ())
    .map_err(|e| format!("values {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{TenantDeleted, TenantId, TenantRequested, TenantUpgraded};
    use crate::settings::SAMPLE_CHART_DIR;
    use serde_json::{Value, json};

    fn event(intent: Intent) -> InboundEvent {
        InboundEvent {
            id: Uuid::new_v4(),
            source: "test".into(),
            time: jiff::Timestamp::now(),
            tenant_id: TenantId::parse("t").unwrap(),
            intent,
            replay_as_of: None,
        }
    }

    fn fold(intents: Vec<Intent>) -> Folded {
        let plans = PlanCatalog::load(None).unwrap();
        let chart = Chart::load(std::path::Path::new(SAMPLE_CHART_DIR)).unwrap();
        let mut f = Folded::default();
        for (i, intent) in intents.into_iter().enumerate() {
            f.apply(i as u64 + 1, &event(intent), &plans, &chart);
        }
        f
    }

    fn request(plan: &str, values: Value) -> Intent {
        Intent::Requested(TenantRequested {
            tenant_id: TenantId::parse("t").unwrap(),
            plan: plan.into(),
            app_version: None,
            values: values.as_object().cloned(),
            metadata: None,
        })
    }

    fn upgrade(plan: Option<&str>, version: Option<&str>, values: Option<Value>) -> Intent {
        Intent::Upgraded(TenantUpgraded {
            tenant_id: TenantId::parse("t").unwrap(),
            plan: plan.map(Into::into),
            app_version: version.map(Into::into),
            values: values.and_then(|v| v.as_object().cloned()),
            metadata: None,
        })
    }

    fn delete() -> Intent {
        Intent::Deleted(TenantDeleted {
            tenant_id: TenantId::parse("t").unwrap(),
            reason: None,
            metadata: None,
        })
    }

    #[test]
    fn the_last_intent_wins_and_upgrades_merge_values() {
        let f = fold(vec![
            request("free", json!({"config": {"a": "1"}})),
            upgrade(
                Some("standard"),
                Some("1.1.0"),
                Some(json!({"config": {"b": "2"}})),
            ),
        ]);
        let live = f.target.unwrap();
        assert_eq!(live.shape.plan, "standard");
        assert_eq!(live.shape.app_version.as_deref(), Some("1.1.0"));
        assert_eq!(live.shape.values, json!({"config": {"a": "1", "b": "2"}}));
        assert_eq!(f.sequences, [1, 2]);

        let gone = fold(vec![request("free", json!({})), delete()]);
        assert_eq!(gone.target, None);
        let back = fold(vec![
            request("free", json!({})),
            delete(),
            request("premium", json!({})),
        ]);
        assert_eq!(back.target.unwrap().shape.plan, "premium");
    }

    #[test]
    fn what_the_worker_rejects_changes_nothing() {
        let f = fold(vec![
            upgrade(Some("premium"), None, None),
            request("free", json!({})),
            request("platinum", json!({})),
            upgrade(None, None, Some(json!({"replicaCount": 50}))),
        ]);
        assert_eq!(f.target.unwrap().shape.plan, "free");
        let reasons: Vec<u64> = f.ignored.iter().map(|(s, _)| *s).collect();
        assert_eq!(reasons, [1, 3, 4], "{:?}", f.ignored);
        assert!(f.ignored[1].1.contains("platinum"));
    }
}
