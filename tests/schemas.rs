//! The checked-in JSON Schemas (`schemas/`) against their examples and the Rust
//! types: every schema is draft 2020-12 and compiles; every valid example passes
//! its schema, the typed parse and (inbound) `decode_inbound`, and round-trips;
//! every invalid example is refused by the schema and by the typed parse, each on
//! its own; every inconsistent example (schema-valid, but `subject` is not
//! `data.tenant_id`) is refused by the typed parse and `decode_inbound`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tenant_worker::contract::typed::parse_typed;
use tenant_worker::contract::{
    CloudEvent, CompensationFailure, Completion, DecodeErrorKind, Deprovisioned, DriftKind,
    DriftRepaired, Endpoint, EventType, Failed, InboundEvent, IntentKind, Outcome, Provisioned,
    RejectReason, Rejected, RepairedObject, TenantDeleted, TenantId, TenantRequested,
    TenantUpgraded, UpgradeCompleted, WORKER_SOURCE, completion_event, decode_inbound, schema_for,
};

const MAX_BYTES: usize = 1 << 20;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn schema_path(t: EventType) -> PathBuf {
    schemas_dir().join(format!("{t}.schema.json"))
}

fn examples_dir(kind: &str, t: EventType) -> PathBuf {
    schemas_dir().join("examples").join(kind).join(t.as_str())
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The `*.json` files of an examples directory, by file name.
fn examples(kind: &str, t: EventType) -> BTreeMap<String, (Vec<u8>, Value)> {
    let dir = examples_dir(kind, t);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            (name, (bytes, read_json(&path)))
        })
        .collect()
}

fn validator(t: EventType) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(schema_for(t)).expect("schema is JSON");
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} does not compile: {e}", schema_path(t).display()))
}

/// `tenant.lifecycle.<short type>.<tenant>`, with the tenant from `subject`
/// (or `data.tenant_id`) when it is a string.
fn nats_subject(t: EventType, event: &Value) -> String {
    let tenant = [&event["subject"], &event["data"]["tenant_id"]]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or("unknown");
    format!("tenant.lifecycle.{}.{tenant}", t.short_name())
}

fn schema_json(t: EventType) -> Value {
    serde_json::from_str(schema_for(t)).expect("schema is JSON")
}

/// The names of the `data` properties a schema declares, sorted.
fn data_properties(t: EventType) -> Vec<String> {
    let schema = schema_json(t);
    let props = schema["$defs"]["data"]["properties"].as_object();
    props
        .expect("$defs/data/properties")
        .keys()
        .cloned()
        .collect()
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn schema_errors(validator: &jsonschema::Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Panics listing every failure, if any.
fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_schema_is_draft_2020_12_self_contained_and_compiles() {
    let mut failures = Vec::new();
    for t in EventType::ALL {
        let path = schema_path(t);
        let schema = read_json(&path);
        let name = path.display();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            schema_for(t),
            "{name} is not the embedded schema"
        );
        if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
            failures.push(format!("{name}: $schema is {}", schema["$schema"]));
        }
        let id = format!("https://tenant-worker.dev/schemas/{t}.schema.json");
        if schema["$id"] != id.as_str() {
            failures.push(format!("{name}: $id is {}, not {id}", schema["$id"]));
        }
        if schema["title"] != t.as_str() {
            failures.push(format!("{name}: title is {}", schema["title"]));
        }
        if schema["description"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{name}: no description"));
        }
        if schema["properties"]["type"]["const"] != t.as_str() {
            failures.push(format!("{name}: `type` is not const {t:?}"));
        }
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            failures.push(format!("{name}: breaks the 2020-12 meta-schema: {e}"));
        }
        if let Err(e) = jsonschema::draft202012::new(&schema) {
            failures.push(format!("{name}: does not compile: {e}"));
        }
        walk(&schema, "", &mut |at, node| {
            if let Some(r) = node.get("$ref").and_then(Value::as_str)
                && !r.starts_with("#/$defs/")
            {
                failures.push(format!("{name}{at}: $ref {r:?} leaves the file"));
            }
            if node.get("additionalProperties") == Some(&Value::Bool(false)) {
                failures.push(format!(
                    "{name}{at}: additionalProperties false (the contract allows new fields)"
                ));
            }
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (prop, def) in props {
                    if def["description"].as_str().is_none_or(str::is_empty) {
                        failures.push(format!("{name}{at}/properties/{prop}: no description"));
                    }
                }
            }
        });
    }
    assert_no_failures("schema problems", &failures);
}

/// Calls `visit` on every object in `value` with its JSON pointer.
fn walk(value: &Value, at: &str, visit: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
    match value {
        Value::Object(map) => {
            visit(at, map);
            for (k, v) in map {
                walk(v, &format!("{at}/{k}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{at}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn every_type_has_a_schema_and_examples() {
    for t in EventType::ALL {
        assert!(schema_path(t).is_file(), "no {}", schema_path(t).display());
        let valid = examples("valid", t);
        let invalid = examples("invalid", t);
        assert!(valid.len() >= 2, "{t}: {} valid examples", valid.len());
        assert!(
            invalid.len() >= 3,
            "{t}: {} invalid examples",
            invalid.len()
        );
        assert!(
            !examples("inconsistent", t).is_empty(),
            "{t}: no inconsistent example"
        );
    }
    // No examples for a type that does not exist (a typo would skip them silently).
    for kind in ["valid", "invalid", "inconsistent"] {
        let dir = schemas_dir().join("examples").join(kind);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                EventType::parse(&name).is_some(),
                "{}/{name} is not an event type",
                dir.display()
            );
        }
    }
}

#[test]
fn valid_examples_pass_the_schema_the_typed_parse_and_round_trip() {
    let mut failures = Vec::new();
    for t in EventType::ALL {
        let validator = validator(t);
        for (name, (bytes, event)) in examples("valid", t) {
            let at = format!("valid/{t}/{name}");
            let errors = schema_errors(&validator, &event);
            if !errors.is_empty() {
                failures.push(format!("{at}: schema refuses it: {}", errors.join("; ")));
            }
            match parse_typed(&event) {
                Err(e) => failures.push(format!("{at}: parse_typed refuses it: {e}")),
                Ok(typed) if typed.event_type() != t => {
                    failures.push(format!("{at}: parsed as {}", typed.event_type()));
                }
                Ok(typed) if typed.to_json() != event => failures.push(format!(
                    "{at}: does not round-trip; to_json() gives {}",
                    typed.to_json()
                )),
                Ok(_) => {}
            }
            if t.is_inbound() {
                let subject = nats_subject(t, &event);
                if let Err(e) = decode_inbound(&subject, &bytes, MAX_BYTES) {
                    failures.push(format!("{at}: decode_inbound on {subject} refuses it: {e}"));
                }
            }
        }
    }
    assert_no_failures("valid examples refused", &failures);
}

#[test]
fn invalid_examples_are_refused_by_the_schema_and_by_the_typed_parse() {
    let mut failures = Vec::new();
    for t in EventType::ALL {
        let validator = validator(t);
        for (name, (bytes, event)) in examples("invalid", t) {
            let at = format!("invalid/{t}/{name}");
            if validator.is_valid(&event) {
                failures.push(format!("{at}: the schema accepts it"));
            }
            if let Ok(typed) = parse_typed(&event) {
                failures.push(format!(
                    "{at}: parse_typed accepts it as {}",
                    typed.event_type()
                ));
            }
            if t.is_inbound() {
                let subject = nats_subject(t, &event);
                match decode_inbound(&subject, &bytes, MAX_BYTES) {
                    Ok(_) => failures.push(format!("{at}: decode_inbound accepts it")),
                    Err(e) if e.message.trim().is_empty() => {
                        failures.push(format!("{at}: decode_inbound gives no reason ({e:?})"));
                    }
                    Err(_) => {}
                }
            }
        }
    }
    assert_no_failures("invalid examples accepted", &failures);
}

#[test]
fn inconsistent_examples_pass_the_schema_but_not_the_typed_parse() {
    let mut failures = Vec::new();
    for t in EventType::ALL {
        let validator = validator(t);
        for (name, (bytes, event)) in examples("inconsistent", t) {
            let at = format!("inconsistent/{t}/{name}");
            let errors = schema_errors(&validator, &event);
            if !errors.is_empty() {
                failures.push(format!(
                    "{at}: the schema refuses it: {}",
                    errors.join("; ")
                ));
            }
            match parse_typed(&event) {
                Ok(_) => failures.push(format!("{at}: parse_typed accepts it")),
                Err(e) if !e.contains("differs from data.tenant_id") => {
                    failures.push(format!(
                        "{at}: parse_typed refuses it for another reason: {e}"
                    ));
                }
                Err(_) => {}
            }
            if t.is_inbound() {
                let subject = nats_subject(t, &event);
                if decode_inbound(&subject, &bytes, MAX_BYTES).is_ok() {
                    failures.push(format!("{at}: decode_inbound accepts it"));
                }
            }
        }
    }
    assert_no_failures("inconsistent examples accepted", &failures);
}

#[test]
fn schema_enums_are_the_rust_enums() {
    let rejected = schema_json(EventType::Rejected);
    let codes: Vec<String> = RejectReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(
        rejected["$defs"]["data"]["properties"]["reason"]["enum"],
        json!(codes),
        "tenant.rejected reason codes"
    );
    let failed = schema_json(EventType::Failed);
    let intents = [
        IntentKind::Requested,
        IntentKind::Upgraded,
        IntentKind::Deleted,
    ];
    assert_eq!(
        failed["$defs"]["data"]["properties"]["intent"]["enum"],
        serde_json::to_value(intents).unwrap(),
        "tenant.failed intents"
    );
    let drift_repaired = schema_json(EventType::DriftRepaired);
    let kinds: Vec<&str> = DriftKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        drift_repaired["$defs"]["repairedObject"]["properties"]["drift"]["enum"],
        json!(kinds),
        "tenant.drift_repaired drift kinds"
    );
    assert_eq!(
        serde_json::to_value(DriftKind::ALL).unwrap(),
        json!(kinds),
        "DriftKind serializes as its as_str"
    );
}

#[test]
fn inbound_data_properties_are_the_rust_fields() {
    let tenant = TenantId::parse("acme").unwrap();
    let object = || Some(serde_json::Map::new());
    let full = [
        (
            EventType::Requested,
            serde_json::to_value(TenantRequested {
                tenant_id: tenant.clone(),
                plan: "pro".into(),
                app_version: Some("2.4.1".into()),
                values: object(),
                metadata: object(),
            }),
        ),
        (
            EventType::Upgraded,
            serde_json::to_value(TenantUpgraded {
                tenant_id: tenant.clone(),
                plan: Some("pro".into()),
                app_version: Some("2.4.1".into()),
                values: object(),
                metadata: object(),
            }),
        ),
        (
            EventType::Deleted,
            serde_json::to_value(TenantDeleted {
                tenant_id: tenant,
                reason: Some("cancelled".into()),
                metadata: object(),
            }),
        ),
    ];
    for (t, data) in full {
        assert_eq!(keys(&data.unwrap()), data_properties(t), "{t}");
    }
}

/// The valid `tenant.requested` example without optional fields, as bytes.
fn requested_bytes() -> Vec<u8> {
    let path = examples_dir("valid", EventType::Requested).join("signup-starter.json");
    std::fs::read(path).unwrap()
}

#[test]
fn decode_inbound_refuses_a_payload_over_the_limit() {
    let bytes = requested_bytes();
    let err = decode_inbound("tenant.lifecycle.requested.acme", &bytes, bytes.len() - 1)
        .expect_err("over the limit");
    assert_eq!(err.kind, DecodeErrorKind::TooLarge);
    assert!(err.message.contains(&bytes.len().to_string()), "{err}");
    decode_inbound("tenant.lifecycle.requested.acme", &bytes, bytes.len()).expect("at the limit");
}

#[test]
fn decode_inbound_refuses_what_is_not_json() {
    for payload in [
        &b"{\"specversion\": \"1.0\""[..],
        b"",
        b"tenant acme please",
        b"\xff\xfe",
    ] {
        let err = decode_inbound("tenant.lifecycle.requested.acme", payload, MAX_BYTES)
            .expect_err("not JSON");
        assert_eq!(err.kind, DecodeErrorKind::MalformedJson, "{err}");
    }
}

#[test]
fn decode_inbound_refuses_unknown_and_outbound_types() {
    let event: Value = serde_json::from_slice(&requested_bytes()).unwrap();
    let cases = [
        json!("tenant.exploded"),
        json!("tenant.provisioned"),
        json!(7),
        Value::Null,
    ];
    for type_name in cases {
        let mut event = event.clone();
        event["type"] = type_name.clone();
        let bytes = serde_json::to_vec(&event).unwrap();
        let err = decode_inbound("tenant.lifecycle.requested.acme", &bytes, MAX_BYTES)
            .expect_err("not an inbound type");
        assert_eq!(err.kind, DecodeErrorKind::UnknownType, "{type_name}: {err}");
    }
    let err = decode_inbound("tenant.lifecycle.requested.acme", b"[]", MAX_BYTES).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::UnknownType, "{err}");
}

#[test]
fn decode_inbound_refuses_a_nats_subject_that_does_not_match() {
    let bytes = requested_bytes();
    for subject in [
        "tenant.lifecycle.requested.globex",
        "tenant.lifecycle.deleted.acme",
        "tenant.status.requested.acme",
        "tenant.lifecycle.requested",
        "tenant.lifecycle.requested.acme.extra",
    ] {
        let err = decode_inbound(subject, &bytes, MAX_BYTES).expect_err(subject);
        assert_eq!(err.kind, DecodeErrorKind::Inconsistent, "{subject}: {err}");
        assert!(err.message.contains(subject), "{err}");
    }
}

#[test]
fn decode_inbound_refuses_schema_violations_with_a_pointer() {
    let mut event: Value = serde_json::from_slice(&requested_bytes()).unwrap();
    event["data"]["plan"] = json!("Pro!");
    let bytes = serde_json::to_vec(&event).unwrap();
    let err = decode_inbound("tenant.lifecycle.requested.acme", &bytes, MAX_BYTES).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::SchemaViolation);
    assert!(err.message.contains("/data/plan"), "{err}");
}

/// The completion events the worker builds (`completion_event`) for every valid
/// inbound example and every outcome pass their schema and the typed parse.
#[test]
fn completion_events_built_by_the_worker_pass_their_schema() {
    let outcomes = |inbound: &InboundEvent| {
        let now = jiff::Timestamp::now();
        let namespace = format!("tenant-{}", inbound.tenant_id);
        let resources: BTreeMap<String, String> = [
            ("limits.cpu", "2"),
            ("limits.memory", "4Gi"),
            ("pods", "20"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        [
            Outcome::Provisioned(Provisioned {
                plan: "starter".into(),
                app_version: "2.4.1".into(),
                namespace: namespace.clone(),
                endpoint: Endpoint {
                    host: format!("app.{namespace}.svc.cluster.local"),
                    port: 8080,
                },
                release_revision: 1,
                resources: resources.clone(),
                completed_at: now,
            }),
            Outcome::UpgradeCompleted(UpgradeCompleted {
                previous_plan: "starter".into(),
                plan: "pro".into(),
                previous_app_version: "2.4.1".into(),
                app_version: "2.5.0".into(),
                release_revision: 2,
                resources,
                effective_at: now,
            }),
            Outcome::Deprovisioned(Deprovisioned {
                namespace,
                plan: Some("pro".into()),
                deleted_at: now,
            }),
            Outcome::Failed(Failed {
                intent: inbound.intent.kind(),
                failed_step: "install_release".into(),
                error: "deployment tenant-app did not become ready within 300s".into(),
                compensated: false,
                compensation: vec!["namespace".into()],
                compensation_failed: vec![CompensationFailure {
                    step: "resource_quota".into(),
                    error: "kubernetes API: 503 ServiceUnavailable".into(),
                }],
            }),
            Outcome::Rejected(Rejected {
                reason: RejectReason::UnknownPlan,
                message: "plan \"gold\" is not in the plan catalogue".into(),
            }),
        ]
    };
    let mut failures = Vec::new();
    for t in EventType::ALL.into_iter().filter(|t| t.is_inbound()) {
        for (name, (bytes, event)) in examples("valid", t) {
            let inbound = decode_inbound(&nats_subject(t, &event), &bytes, MAX_BYTES)
                .unwrap_or_else(|e| panic!("valid/{t}/{name}: {e}"));
            assert!(matches!(
                (t, inbound.intent.kind()),
                (EventType::Requested, IntentKind::Requested)
                    | (EventType::Upgraded, IntentKind::Upgraded)
                    | (EventType::Deleted, IntentKind::Deleted)
            ));
            for outcome in outcomes(&inbound) {
                let out = outcome.event_type();
                let completion = serde_json::to_value(completion_event(&inbound, &outcome))
                    .expect("completion event serializes");
                let at = format!("{out} for valid/{t}/{name}");
                // The fixtures fill the optional fields too.
                check_built_event(&at, out, &completion, true, &mut failures);
                let metadata = inbound.intent.metadata().cloned().unwrap_or_default();
                if completion["data"]["metadata"] != Value::Object(metadata) {
                    failures.push(format!("{at}: metadata not passed through"));
                }
            }
        }
    }
    assert_no_failures("completion events refused", &failures);
}

/// Checks an outbound event built from the Rust types: every required field is
/// there and, with `full` (every optional field filled), every field of the Rust
/// type is declared by the schema; it passes the schema and the typed parse,
/// and round-trips.
fn check_built_event(
    at: &str,
    out: EventType,
    event: &Value,
    full: bool,
    failures: &mut Vec<String>,
) {
    let fields = keys(&event["data"]);
    let required = schema_json(out)["$defs"]["data"]["required"].clone();
    let mut required: Vec<String> = serde_json::from_value(required).unwrap();
    required.sort();
    if (full && fields != data_properties(out)) || !required.iter().all(|r| fields.contains(r)) {
        failures.push(format!(
            "{at}: the Rust fields {fields:?} are not the schema's properties {:?} \
             and required {required:?}",
            data_properties(out)
        ));
    }
    let errors = schema_errors(&validator(out), event);
    if !errors.is_empty() {
        failures.push(format!("{at}: schema refuses it: {}", errors.join("; ")));
    }
    match parse_typed(event) {
        Ok(typed) if typed.event_type() != out => {
            failures.push(format!("{at}: parsed as {}", typed.event_type()));
        }
        Ok(typed) if typed.to_json() != *event => {
            failures.push(format!("{at}: does not round-trip"));
        }
        Ok(_) => {}
        Err(e) => failures.push(format!("{at}: parse_typed refuses it: {e}")),
    }
}

/// The `tenant.drift_repaired` events the reconciler publishes, built from the
/// Rust types with the last event applied to each valid inbound example as
/// `causation_id`, pass their schema and the typed parse: a live tenant's
/// repair (every optional field filled) and a deleted tenant's leftovers (no
/// plan, no version).
#[test]
fn drift_repaired_events_built_from_the_rust_types_pass_their_schema() {
    let object =
        |api_version: &str, kind: &str, name: &str, drift, fields: &[&str]| RepairedObject {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            drift,
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        };
    let declared =
        keys(&schema_json(EventType::DriftRepaired)["$defs"]["repairedObject"]["properties"]);
    let mut failures = Vec::new();
    for t in EventType::ALL.into_iter().filter(|t| t.is_inbound()) {
        for (name, (bytes, event)) in examples("valid", t) {
            let inbound = decode_inbound(&nats_subject(t, &event), &bytes, MAX_BYTES)
                .unwrap_or_else(|e| panic!("valid/{t}/{name}: {e}"));
            let namespace = format!("tenant-{}", inbound.tenant_id);
            let detected_at = jiff::Timestamp::now();
            let live = DriftRepaired {
                namespace: namespace.clone(),
                plan: Some("pro".into()),
                app_version: Some("2.4.1".into()),
                release_revision: 3,
                repaired: vec![
                    object(
                        "v1",
                        "ResourceQuota",
                        "tenant-quota",
                        DriftKind::Modified,
                        &["spec.hard.limits.cpu", "spec.hard.pods"],
                    ),
                    object(
                        "networking.k8s.io/v1",
                        "NetworkPolicy",
                        "tenant-isolation",
                        DriftKind::Missing,
                        &[],
                    ),
                    object(
                        "apps/v1",
                        "Deployment",
                        "tenant-app",
                        DriftKind::Missing,
                        &[],
                    ),
                ],
                detected_at,
                repaired_at: detected_at + jiff::SignedDuration::from_millis(4250),
            };
            let leftovers = DriftRepaired {
                namespace: namespace.clone(),
                plan: None,
                app_version: None,
                release_revision: 0,
                repaired: vec![object(
                    "v1",
                    "Namespace",
                    &namespace,
                    DriftKind::Unexpected,
                    &[],
                )],
                detected_at,
                repaired_at: detected_at,
            };
            for (case, detail, full) in [("live", live, true), ("leftovers", leftovers, false)] {
                let data = Completion {
                    tenant_id: inbound.tenant_id.clone(),
                    causation_id: inbound.id,
                    metadata: serde_json::Map::new(),
                    detail,
                };
                let repair = CloudEvent::new(
                    WORKER_SOURCE,
                    EventType::DriftRepaired,
                    inbound.tenant_id.clone(),
                    data,
                );
                let built = serde_json::to_value(&repair).expect("drift_repaired serializes");
                let at = format!("tenant.drift_repaired ({case}) for valid/{t}/{name}");
                check_built_event(&at, EventType::DriftRepaired, &built, full, &mut failures);
                // Every field of RepairedObject is declared (the modified object has them all).
                let rust = keys(&built["data"]["repaired"][0]);
                if full && rust != declared {
                    failures.push(format!(
                        "{at}: the RepairedObject fields {rust:?} are not the schema's \
                         properties {declared:?}"
                    ));
                }
            }
        }
    }
    assert_no_failures("drift_repaired events refused", &failures);
}
