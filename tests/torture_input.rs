//! Torture suite, bad input: a corpus of malformed, hostile, colliding and
//! stale inbound messages, published to a real `tenant-worker run` process.
//!
//! It proves, case by case:
//! - a message that is not a usable event (not JSON, not an event, fields of
//!   the wrong type or missing, too large, a tenant id or plan that is no DNS
//!   label, a NATS subject that contradicts the payload) is dead-lettered,
//!   byte for byte, on `tenant.deadletter.<code>` with the reason header
//!   saying what is wrong;
//! - a well-formed request that the worker must refuse (an unknown plan, a
//!   namespace that is not the tenant's, values that try to leave the
//!   namespace or run privileged pods, an upgrade of nobody, a stale replay)
//!   is answered with exactly one `tenant.rejected` with the expected
//!   `reason` code and a message naming the problem;
//! - template text in values is data: it reaches the tenant's ConfigMap
//!   literally, and nothing else is created;
//! - replays change nothing: the same event id twice gives one completion,
//!   and an old event published again after newer ones (even one that would
//!   bring a deleted tenant back) is acknowledged and ignored;
//! - nothing in the cluster changed for any of it: the embedded API recorded
//!   no write outside the namespaces of the few tenants that the corpus
//!   legitimately provisions, and the foreign namespaces are untouched;
//! - the process never crashed (100 000 nested `[` included), and it still
//!   provisions a valid tenant afterwards.
//!
//! A second test does the same with a chart whose values make it leave the
//! namespace (`tests/fixtures/escape-chart`), for the codes that the shipped
//! chart cannot produce: `forbidden_object` and `render_failed`. A third pins
//! down an ordering bug the corpus found: a stale replay must wait for the
//! events published before it.
//!
//! Needs the `failpoints` build of the binary like every process test
//! (`cargo test --features failpoints --test suite torture_input::`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use crate::support::cluster::{expected_ready_objects, tenant_objects};
use crate::support::process::{WorkerOptions, WorkerProcess};
use crate::support::*;
use async_nats::HeaderMap;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube_double::{EmbeddedApiConfig, FaultRule, RecordedRequest};
use serde_json::{Value, json};
use tenant_worker::contract::{
    DEADLETTER_REASON_HEADER, DEADLETTER_SUBJECT_HEADER, MANAGED_BY_LABEL, MANAGER, TENANT_LABEL,
};
use uuid::Uuid;

/// The worker's limit on inbound events, passed explicitly so that the
/// boundary cases do not depend on the default.
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The routing gateway's namespace given to the worker. It does not exist in
/// the cluster, as before the gateway is installed.
const GATEWAY_NAMESPACE: &str = "tenant-routing";

/// What a case is about, for the per-category counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    MalformedJson,
    NotAnEvent,
    WrongType,
    MissingField,
    Oversized,
    Unicode,
    ReservedName,
    Escape,
    Privileged,
    Injection,
    Unknown,
    Replay,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MalformedJson => "malformed JSON",
            Self::NotAnEvent => "not an event",
            Self::WrongType => "wrong types",
            Self::MissingField => "missing fields",
            Self::Oversized => "oversized",
            Self::Unicode => "unicode and control characters",
            Self::ReservedName => "reserved or colliding names",
            Self::Escape => "values escaping the namespace",
            Self::Privileged => "privileged pods",
            Self::Injection => "template injection",
            Self::Unknown => "unknown plan or tenant",
            Self::Replay => "replayed and out of order",
        })
    }
}

/// What the worker must do with a case.
#[derive(Debug)]
enum Expect {
    /// Dead-lettered on `tenant.deadletter.<code>`; the reason header
    /// starts with `<code>:` and contains the hint.
    DeadLetter { code: &'static str, hint: String },
    /// One `tenant.rejected` with `data.reason` = code and a message that
    /// contains the hint.
    Rejected { code: &'static str, hint: String },
    /// Template text in values: provisioned, with the text in the tenant's
    /// ConfigMap under `key` exactly as sent.
    Literal { key: &'static str, text: String },
    /// A tenant id that names a system namespace: provisioned, in
    /// `tenant-<id>` and nowhere else.
    Confined,
}

struct Case {
    category: Category,
    /// Unique; sent as header `X-Test-Case`.
    name: String,
    subject: String,
    payload: Vec<u8>,
    expect: Expect,
}

impl Case {
    /// The event id and tenant of a case that the worker decodes.
    fn event(&self) -> (Uuid, String) {
        let v: Value = serde_json::from_slice(&self.payload).expect("a decodable case is JSON");
        (
            v["id"].as_str().unwrap().parse().unwrap(),
            v["subject"].as_str().unwrap().to_owned(),
        )
    }

    /// The metadata the completion must carry back: the event's, unchanged.
    fn metadata(&self) -> Value {
        let v: Value = serde_json::from_slice(&self.payload).unwrap();
        v["data"].get("metadata").cloned().unwrap_or(json!({}))
    }
}

#[derive(Default)]
struct Corpus(Vec<Case>);

impl Corpus {
    fn push(
        &mut self,
        category: Category,
        name: &str,
        subject: &str,
        payload: Vec<u8>,
        expect: Expect,
    ) {
        assert!(
            self.0.iter().all(|c| c.name != name),
            "case name {name} used twice"
        );
        self.0.push(Case {
            category,
            name: name.to_owned(),
            subject: subject.to_owned(),
            payload,
            expect,
        });
    }

    /// Raw bytes on `subject`, to be dead-lettered with `code`.
    fn dead(
        &mut self,
        category: Category,
        name: &str,
        subject: &str,
        payload: impl Into<Vec<u8>>,
        code: &'static str,
        hint: &str,
    ) {
        let expect = Expect::DeadLetter {
            code,
            hint: hint.to_owned(),
        };
        self.push(category, name, subject, payload.into(), expect);
    }

    /// A valid `tenant.requested` for tenant `junk` on `free` with the value
    /// at `pointer` set (`None`: removed), published on the subject of the
    /// unedited event, to be dead-lettered.
    fn dead_edit(
        &mut self,
        category: Category,
        name: &str,
        pointer: &str,
        value: Option<Value>,
        code: &'static str,
        hint: &str,
    ) {
        let mut event = to_json(&requested("junk", "free"));
        edit(&mut event, pointer, value);
        let payload = serde_json::to_vec(&event).unwrap();
        let subject = lifecycle("requested", "junk");
        self.dead(category, name, &subject, payload, code, hint);
    }

    /// A request whose `subject` and `data.tenant_id` are `id`, which is no
    /// tenant id: the schema refuses it.
    fn bad_tenant_id(&mut self, category: Category, name: &str, id: &str) {
        let mut event = to_json(&requested("junk", "free"));
        event["subject"] = json!(id);
        event["data"]["tenant_id"] = json!(id);
        let payload = serde_json::to_vec(&event).unwrap();
        let subject = lifecycle("requested", "junk");
        self.dead(
            category,
            name,
            &subject,
            payload,
            "schema_violation",
            "/subject",
        );
    }

    /// A well-formed event, published on its own subject, to be rejected.
    fn rejected(
        &mut self,
        category: Category,
        name: &str,
        event: &Value,
        code: &'static str,
        hint: &str,
    ) {
        let payload = serde_json::to_vec(event).unwrap();
        self.rejected_bytes(category, name, event, payload, code, hint);
    }

    /// Like [`Corpus::rejected`] with the payload given (e.g. padded).
    fn rejected_bytes(
        &mut self,
        category: Category,
        name: &str,
        event: &Value,
        payload: Vec<u8>,
        code: &'static str,
        hint: &str,
    ) {
        let subject = subject_of(event);
        let expect = Expect::Rejected {
            code,
            hint: hint.to_owned(),
        };
        self.push(category, name, &subject, payload, expect);
    }

    /// A request for a fresh tenant whose `config.<key>` is template text.
    fn literal(&mut self, name: &str, tenant: &str, key: &'static str, text: &str) {
        let event = request_values(tenant, "free", json!({"config": {key: text}}));
        let expect = Expect::Literal {
            key,
            text: text.to_owned(),
        };
        self.push(
            Category::Injection,
            name,
            &subject_of(&event),
            serde_json::to_vec(&event).unwrap(),
            expect,
        );
    }

    /// A request for a tenant named like a system namespace.
    fn confined(&mut self, name: &str, tenant: &str) {
        let event = to_json(&requested(tenant, "free"));
        let payload = serde_json::to_vec(&event).unwrap();
        self.push(
            Category::ReservedName,
            name,
            &subject_of(&event),
            payload,
            Expect::Confined,
        );
    }

    fn count(&self, pred: impl Fn(&Expect) -> bool) -> usize {
        self.0.iter().filter(|c| pred(&c.expect)).count()
    }
}

fn to_json(event: &tenant_worker::contract::CloudEvent<Value>) -> Value {
    serde_json::to_value(event).unwrap()
}

fn lifecycle(kind: &str, tenant: &str) -> String {
    format!("tenant.lifecycle.{kind}.{tenant}")
}

/// The subject a well-formed event travels on.
fn subject_of(event: &Value) -> String {
    let kind = event["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("tenant.");
    lifecycle(kind, event["subject"].as_str().unwrap())
}

/// A `tenant.requested` with `values`.
fn request_values(tenant: &str, plan: &str, values: Value) -> Value {
    let mut event = to_json(&requested(tenant, plan));
    event["data"]["values"] = values;
    event
}

/// A `tenant.upgraded` with `values` only.
fn upgrade_values(tenant: &str, values: Value) -> Value {
    to_json(&upgrade_with(tenant, None, None, Some(values)))
}

/// `event` as JSON followed by spaces up to exactly `len` bytes (JSON allows
/// trailing whitespace, so it is the same event).
fn padded(event: &Value, len: usize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(event).unwrap();
    assert!(bytes.len() <= len);
    bytes.resize(len, b' ');
    bytes
}

/// `{"k": {"k": ... "leaf" ...}}`, `depth` objects deep.
fn nested_object(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, _| json!({ "k": inner }))
}

/// Sets (or with `None` removes) the value at the JSON `pointer` of `event`.
fn edit(event: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let parent = event
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{pointer}: no object to edit"));
    match value {
        Some(v) => parent.insert(key.to_owned(), v),
        None => parent.remove(key),
    };
}

/// Builds the corpus. Tenants named here get nothing in the cluster, except
/// those of [`Expect::Literal`] and [`Expect::Confined`] cases.
fn corpus() -> Corpus {
    use Category::*;
    let mut c = Corpus::default();
    let valid = || serde_json::to_vec(&to_json(&requested("junk", "free"))).unwrap();
    let valid_text = || String::from_utf8(valid()).unwrap();
    let junk = lifecycle("requested", "junk");

    // --- Malformed JSON: serde refuses it before anything else is read.
    let mut garbage = valid();
    garbage.extend_from_slice(b"}}garbage");
    let mut two = valid();
    two.extend_from_slice(&valid());
    let mut bad_utf8 = valid();
    let at = bad_utf8.windows(4).position(|w| w == b"free").unwrap();
    bad_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(&valid());
    let deep_objects = format!(
        r#"{{"type":"tenant.requested","data":{}"#,
        r#"{"a":"#.repeat(50_000)
    );
    for (name, payload, hint) in [
        (
            "truncated",
            valid()[..valid().len() / 2].to_vec(),
            "EOF while parsing",
        ),
        ("trailing-garbage", garbage, "trailing characters"),
        ("two-events-concatenated", two, "trailing characters"),
        ("empty-payload", Vec::new(), "EOF while parsing"),
        ("whitespace-only", b" \n\t\r ".to_vec(), "EOF while parsing"),
        ("nul-bytes", vec![0; 16], "expected value"),
        (
            "raw-nul-in-string",
            valid_text()
                .replace("\"free\"", "\"fr\u{0}ee\"")
                .into_bytes(),
            "control character",
        ),
        ("invalid-utf8", bad_utf8, "invalid unicode"),
        ("utf8-bom-prefix", bom, "expected value"),
        (
            "lone-surrogate-escape",
            valid_text().replace("\"free\"", r#""\ud800""#).into_bytes(),
            "hex escape",
        ),
        (
            "single-quotes",
            b"{'type': 'tenant.requested'}".to_vec(),
            "key must be a string",
        ),
        (
            "nan-literal",
            br#"{"type": "tenant.requested", "x": NaN}"#.to_vec(),
            "expected value",
        ),
        (
            "number-out-of-range",
            br#"{"x": 1e999999}"#.to_vec(),
            "number out of range",
        ),
        // Deep nesting is refused by the parser's recursion limit; it must not
        // overflow the worker's stack.
        (
            "100k-nested-arrays",
            "[".repeat(100_000).into_bytes(),
            "recursion limit",
        ),
        (
            "50k-nested-objects",
            deep_objects.into_bytes(),
            "recursion limit",
        ),
    ] {
        c.dead(MalformedJson, name, &junk, payload, "malformed_json", hint);
    }

    // --- JSON that is not an inbound event.
    for (name, payload) in [
        ("top-level-array", "[]"),
        ("top-level-number", "42"),
        ("top-level-null", "null"),
        ("top-level-string", r#""tenant.requested""#),
        ("empty-object", "{}"),
    ] {
        c.dead(
            NotAnEvent,
            name,
            &junk,
            payload,
            "unknown_type",
            "missing string attribute `type`",
        );
    }
    for (name, value) in [
        ("type-is-a-number", json!(7)),
        ("outbound-type-sent-inbound", json!("tenant.provisioned")),
        ("type-in-upper-case", json!("TENANT.REQUESTED")),
        ("type-with-trailing-nul", json!("tenant.requested\u{0}")),
    ] {
        let hint = if value.is_string() {
            "not an inbound event type"
        } else {
            "missing string attribute `type`"
        };
        c.dead_edit(NotAnEvent, name, "/type", Some(value), "unknown_type", hint);
    }

    // --- Each attribute and field with a value of the wrong type or form;
    // the reason names its JSON pointer.
    for (name, pointer, value) in [
        ("specversion-number", "/specversion", json!(1.0)),
        ("specversion-0.3", "/specversion", json!("0.3")),
        ("id-number", "/id", json!(12345)),
        ("id-not-a-uuid", "/id", json!("not-a-uuid")),
        ("source-empty", "/source", json!("")),
        ("source-257-chars", "/source", json!("s".repeat(257))),
        ("source-object", "/source", json!({"name": "billing"})),
        ("time-not-a-date", "/time", json!("yesterday")),
        ("time-unix-seconds", "/time", json!(1_700_000_000)),
        ("time-february-30", "/time", json!("2024-02-30T12:00:00Z")),
        ("subject-array", "/subject", json!(["junk"])),
        (
            "datacontenttype-text",
            "/datacontenttype",
            json!("text/plain"),
        ),
        ("data-string", "/data", json!("tenant_id=junk")),
        ("data-array", "/data", json!(["junk", "free"])),
        ("data-null", "/data", Value::Null),
        ("tenant-id-number", "/data/tenant_id", json!(7)),
        ("plan-boolean", "/data/plan", json!(true)),
        ("values-string", "/data/values", json!("config.A=1")),
        ("values-array", "/data/values", json!([{"config": {}}])),
        ("values-null", "/data/values", Value::Null),
        ("metadata-string", "/data/metadata", json!("opaque")),
        ("app-version-number", "/data/app_version", json!(1.2)),
        ("replayasof-string", "/replayasof", json!("5")),
        ("replayasof-negative", "/replayasof", json!(-1)),
    ] {
        c.dead_edit(
            WrongType,
            name,
            pointer,
            Some(value),
            "schema_violation",
            pointer,
        );
    }
    let mut long_reason = to_json(&deleted("junk"));
    long_reason["data"]["reason"] = json!("r".repeat(1025));
    let mut no_change = to_json(&upgraded("junk", "free"));
    edit(&mut no_change, "/data/plan", None);
    for (name, event, hint) in [
        ("delete-reason-1025-chars", long_reason, "/data/reason"),
        ("upgrade-changing-nothing", no_change, "/data"),
    ] {
        let subject = subject_of(&event);
        let payload = serde_json::to_vec(&event).unwrap();
        c.dead(WrongType, name, &subject, payload, "schema_violation", hint);
    }

    // --- Required attributes and fields left out.
    for pointer in [
        "/specversion",
        "/id",
        "/source",
        "/time",
        "/subject",
        "/datacontenttype",
        "/data",
        "/data/tenant_id",
        "/data/plan",
    ] {
        let field = pointer.rsplit('/').next().unwrap();
        let name = format!("missing-{}", pointer[1..].replace('/', "-"));
        let hint = format!("\"{field}\" is a required property");
        c.dead_edit(
            MissingField,
            &name,
            pointer,
            None,
            "schema_violation",
            &hint,
        );
    }

    // --- Oversized: the worker's limit refuses them, not the server's (8 MB).
    let over = request_values("big", "gold", json!({}));
    let over_subject = subject_of(&over);
    let mut emoji = to_json(&requested("big", "free"));
    emoji["data"]["metadata"] = json!({"blob": "\u{1f680}".repeat(100_000)});
    for (name, payload, hint) in [
        (
            "one-byte-over-the-limit",
            padded(&over, MAX_EVENT_BYTES + 1),
            format!("payload is {} bytes", MAX_EVENT_BYTES + 1),
        ),
        (
            "4mb-of-brackets",
            "[".repeat(4 << 20).into_bytes(),
            format!("the limit is {MAX_EVENT_BYTES}"),
        ),
        (
            "400kb-of-emoji-metadata",
            serde_json::to_vec(&emoji).unwrap(),
            format!("the limit is {MAX_EVENT_BYTES}"),
        ),
    ] {
        c.dead(Oversized, name, &over_subject, payload, "too_large", &hint);
    }
    // Exactly at the limit is allowed: decoded and answered (the plan is unknown).
    let edge = request_values("edge", "gold", json!({}));
    let edge_bytes = padded(&edge, MAX_EVENT_BYTES);
    c.rejected_bytes(
        Oversized,
        "exactly-at-the-limit",
        &edge,
        edge_bytes,
        "unknown_plan",
        "\"gold\"",
    );
    // Large metadata under the limit travels back in the completion event.
    let mut heavy = to_json(&requested("heavy", "gold"));
    heavy["data"]["metadata"] = json!({"blob": "m".repeat(200 * 1024)});
    c.rejected(
        Oversized,
        "200kb-metadata-under-the-limit",
        &heavy,
        "unknown_plan",
        "\"gold\"",
    );

    // --- Unicode and control characters where the contract wants DNS labels.
    for (name, id) in [
        ("tenant-id-accented", "acm\u{e9}"),
        ("tenant-id-rtl-override", "acme\u{202e}lol"),
        ("tenant-id-zero-width-space", "ac\u{200b}me"),
        ("tenant-id-emoji", "\u{1f680}"),
        ("tenant-id-nul", "acme\u{0}"),
        ("tenant-id-fullwidth", "\u{ff41}\u{ff43}\u{ff4d}\u{ff45}"),
        ("tenant-id-trailing-newline", "acme\n"),
        ("tenant-id-cyrillic-homoglyph", "\u{430}cme"),
    ] {
        c.bad_tenant_id(Unicode, name, id);
    }
    for (name, pointer, value) in [
        ("plan-fullwidth", "/data/plan", "\u{ff46}ree"),
        ("plan-zero-width-joiner", "/data/plan", "free\u{200d}"),
        ("app-version-with-nul", "/data/app_version", "1.0.0\u{0}"),
    ] {
        c.dead_edit(
            Unicode,
            name,
            pointer,
            Some(json!(value)),
            "schema_violation",
            pointer,
        );
    }
    let expected_subject = "must be published on tenant.lifecycle.requested.junk";
    let unicode_subject = "tenant.lifecycle.requested.acm\u{e9}";
    c.dead(
        Unicode,
        "unicode-nats-subject-token",
        unicode_subject,
        valid(),
        "inconsistent",
        expected_subject,
    );
    // Metadata is opaque: any text goes back unchanged in the completion.
    let mut odd = to_json(&requested("odd-metadata", "gold"));
    odd["data"]["metadata"] = json!({
        "note": "\u{202e}evil\u{200b}\u{0}\u{1b}[31m\u{1f680}\r\n\t\u{feff}\u{fffd}",
        "\u{43a}\u{43b}\u{44e}\u{447}": "\u{5024}",
        "nested": nested_object(100, json!("\u{2028}deep\u{2029}")),
    });
    c.rejected(
        Unicode,
        "control-chars-in-metadata",
        &odd,
        "unknown_plan",
        "\"gold\"",
    );

    // --- Reserved or colliding names.
    for (name, id) in [
        ("tenant-id-upper-case", "Kube-System"),
        ("tenant-id-with-dots", "kube.system"),
        ("tenant-id-leading-hyphen", "-acme"),
        ("tenant-id-trailing-hyphen", "acme-"),
        ("tenant-id-underscore", "acme_corp"),
        ("tenant-id-empty", ""),
        ("tenant-id-41-chars", &"a".repeat(41)),
        ("tenant-id-over-namespace-limit", &"a".repeat(57)),
        ("tenant-id-nats-wildcard", ">"),
        ("tenant-id-path-traversal", "../kube-system"),
    ] {
        c.bad_tenant_id(ReservedName, name, id);
    }
    let mismatch = Some(json!("victim"));
    c.dead_edit(
        ReservedName,
        "subject-and-tenant-id-differ",
        "/data/tenant_id",
        mismatch,
        "inconsistent",
        "differs from data.tenant_id",
    );
    for (name, subject, hint) in [
        (
            "nats-subject-names-another-tenant",
            lifecycle("requested", "victim"),
            expected_subject,
        ),
        (
            "nats-subject-names-another-type",
            lifecycle("deleted", "junk"),
            expected_subject,
        ),
        (
            "nats-subject-extra-token",
            format!("{junk}.extra"),
            "must be published on",
        ),
        (
            "nats-subject-unknown-type-token",
            lifecycle("exploded", "junk"),
            "must be published on",
        ),
    ] {
        c.dead(ReservedName, name, &subject, valid(), "inconsistent", hint);
    }
    // Namespaces that exist and are not the tenant's (see FOREIGN), including
    // the worker's own as `k8s/worker` ships it.
    for (name, event, hint) in [
        (
            "namespace-exists-unlabelled",
            to_json(&requested("squat", "standard")),
            "tenant-squat",
        ),
        (
            "delete-of-unlabelled-namespace",
            to_json(&deleted("squat")),
            "tenant-squat",
        ),
        (
            "namespace-labelled-for-another-tenant",
            to_json(&requested("borrowed", "free")),
            "tenant-borrowed",
        ),
        (
            "namespace-labelled-without-tenant",
            to_json(&requested("half", "free")),
            "tenant-half",
        ),
        (
            "tenant-named-after-the-worker-namespace",
            to_json(&requested("worker", "free")),
            "tenant-worker",
        ),
        (
            "delete-of-the-worker-namespace",
            to_json(&deleted("worker")),
            "tenant-worker",
        ),
        // The gateway's namespace is admitted by every tenant's
        // NetworkPolicy: a tenant living there would reach all the others,
        // even before the gateway is installed.
        (
            "tenant-named-after-the-gateway-namespace",
            to_json(&requested("routing", "free")),
            GATEWAY_NAMESPACE,
        ),
    ] {
        c.rejected(ReservedName, name, &event, "namespace_not_owned", hint);
    }
    // Names of system namespaces are fine as tenant ids: the prefix keeps them apart.
    c.confined("tenant-named-kube-system", "kube-system");
    c.confined("tenant-named-default", "default");

    // --- Values that try to leave the namespace. The plans let events set
    // `config`, `ingress.enabled` and `autoscaling.maxReplicas` at most.
    for (name, tenant, plan, values, hint) in [
        (
            "values-namespace-key",
            "esc-ns",
            "free",
            json!({"namespace": "kube-system"}),
            "/namespace",
        ),
        (
            "values-global-namespace",
            "esc-global",
            "premium",
            json!({"global": {"namespace": "kube-system"}}),
            "/global/namespace",
        ),
        (
            "values-fullname-traversal",
            "esc-fullname",
            "free",
            json!({"fullnameOverride": "../kube-system/x"}),
            "/fullnameOverride",
        ),
        (
            "values-service-account-default",
            "esc-sa",
            "standard",
            json!({"serviceAccount": {"create": false, "name": "default", "automount": true}}),
            "/serviceAccount",
        ),
        (
            "values-image-elsewhere",
            "esc-image",
            "free",
            json!({"image": {"repository": "evil.example/miner"}}),
            "/image/repository",
        ),
        (
            "values-ingress-host-template",
            "esc-host",
            "standard",
            json!({"ingress": {"enabled": true, "host": "{{ .Release.Namespace }}.kube-system.svc"}}),
            "/ingress/host",
        ),
        (
            "values-ingress-annotations",
            "esc-annot",
            "standard",
            json!({"ingress": {"enabled": true, "annotations": {
                "nginx.ingress.kubernetes.io/server-snippet": "proxy_pass http://kubernetes.default"
            }}}),
            "/ingress/annotations",
        ),
        (
            "values-null-resources",
            "esc-null",
            "free",
            json!({"resources": null}),
            "/resources",
        ),
        // What the plan allows is still checked against the chart's schema.
        (
            "config-value-object",
            "esc-cfg-obj",
            "free",
            json!({"config": {"A": {"k": "v"}}}),
            "/config/A",
        ),
        (
            "config-value-number",
            "esc-cfg-num",
            "free",
            json!({"config": {"A": 1}}),
            "/config/A",
        ),
        (
            "config-is-a-list",
            "esc-cfg-list",
            "free",
            json!({"config": ["A=1"]}),
            "/config",
        ),
        (
            "config-100-levels-deep",
            "esc-cfg-deep",
            "free",
            json!({"config": nested_object(100, json!("x"))}),
            "/config/k",
        ),
        // Keys the API server refuses in a ConfigMap: refused before anything
        // is created, not when the release is applied.
        (
            "config-key-not-a-configmap-key",
            "esc-cfg-key",
            "free",
            json!({"config": {"bad key/../x": "v"}}),
            "/config",
        ),
        (
            "ingress-enabled-string",
            "esc-ing",
            "standard",
            json!({"ingress": {"enabled": "yes"}}),
            "/ingress/enabled",
        ),
        (
            "max-replicas-negative",
            "esc-hpa-neg",
            "premium",
            json!({"autoscaling": {"maxReplicas": -5}}),
            "/autoscaling/maxReplicas",
        ),
        (
            "max-replicas-string",
            "esc-hpa-str",
            "premium",
            json!({"autoscaling": {"maxReplicas": "10"}}),
            "/autoscaling/maxReplicas",
        ),
        // Beyond the int32 of the HPA's field: refused with the values too.
        (
            "max-replicas-over-int32",
            "esc-hpa-big",
            "premium",
            json!({"autoscaling": {"maxReplicas": 10_000_000_000_u64}}),
            "/autoscaling/maxReplicas",
        ),
    ] {
        c.rejected(
            Escape,
            name,
            &request_values(tenant, plan, values),
            "invalid_values",
            hint,
        );
    }
    // --- Names that do not exist: a plan, a tenant to upgrade.
    c.rejected(
        Unknown,
        "unknown-plan",
        &to_json(&requested("typo", "platinum")),
        "unknown_plan",
        "\"platinum\"",
    );
    let nobody = to_json(&upgraded("nobody", "premium"));
    c.rejected(
        Unknown,
        "upgrade-of-a-tenant-that-does-not-exist",
        &nobody,
        "tenant_not_found",
        "nobody",
    );

    // --- Privileged pods: the chart runs the restricted profile, and no plan
    // lets an event touch it.
    for (name, tenant, values, hint) in [
        (
            "privileged-security-context",
            "priv-sc",
            json!({"securityContext": {"privileged": true}}),
            "/securityContext",
        ),
        (
            "host-network-and-pid",
            "priv-host",
            json!({"hostNetwork": true, "hostPID": true}),
            "/hostNetwork",
        ),
        (
            "host-path-volume",
            "priv-hostpath",
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            "/volumes",
        ),
        (
            "capability-sys-admin",
            "priv-caps",
            json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            "/capabilities",
        ),
        (
            "run-as-root",
            "priv-root",
            json!({"runAsUser": 0}),
            "/runAsUser",
        ),
        (
            "tolerate-control-plane",
            "priv-tol",
            json!({"tolerations": [{"operator": "Exists"}],
                   "nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}),
            "/nodeSelector",
        ),
        (
            "automount-api-token",
            "priv-token",
            json!({"serviceAccount": {"automount": true}}),
            "/serviceAccount/automount",
        ),
        (
            "unconfined-apparmor-annotation",
            "priv-annot",
            json!({"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}),
            "/podAnnotations",
        ),
    ] {
        c.rejected(
            Privileged,
            name,
            &request_values(tenant, "premium", values),
            "invalid_values",
            hint,
        );
    }
    // An upgrade of a live tenant asking for the same is refused and leaves it as it is.
    for (name, values, hint) in [
        (
            "upgrade-to-privileged",
            json!({"securityContext": {"privileged": true}}),
            "/securityContext",
        ),
        ("upgrade-to-root", json!({"runAsUser": 0}), "/runAsUser"),
    ] {
        c.rejected(
            Privileged,
            name,
            &upgrade_values("steady", values),
            "invalid_values",
            hint,
        );
    }

    // --- Template injection: template text in values is data.
    for (name, tenant, key, text) in [
        (
            "inject-release-namespace",
            "inject-ns",
            "NS",
            "{{ .Release.Namespace }}",
        ),
        (
            "inject-lookup-secrets",
            "inject-lookup",
            "LOOKUP",
            r#"{{ lookup "v1" "Secret" "kube-system" "" }}"#,
        ),
        (
            "inject-include",
            "inject-include",
            "INCLUDE",
            r#"{{ include "tenant-app.fullname" . }}"#,
        ),
        (
            "inject-tpl",
            "inject-tpl",
            "TPL",
            "{{ tpl .Values.ingress.host . }}",
        ),
        ("inject-fail", "inject-fail", "FAIL", r#"{{ fail "boom" }}"#),
        // (No trailing newline: the chart's `{{- else }}` after `toYaml` trims
        // the last line break of the last value, in Helm as here.)
        (
            "inject-yaml-document",
            "inject-doc",
            "DOC",
            "x\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: kube-system",
        ),
        (
            "inject-yaml-flow",
            "inject-flow",
            "FLOW",
            "{namespace: kube-system, privileged: true}",
        ),
        (
            "inject-yaml-anchor",
            "inject-anchor",
            "ANCHOR",
            "&a [*a, *a]",
        ),
        ("inject-yaml-norway", "inject-norway", "NO", "no"),
        (
            "inject-delimiters",
            "inject-delims",
            "DELIMS",
            "}}{{- /* */ -}}{{",
        ),
        // (Not U+0085: server-side apply bodies are read as YAML 1.1, where
        // NEL is a line break, and the API folds it to a space; the worker
        // renders it faithfully, `\N`.)
        (
            "inject-control-chars",
            "inject-ctrl",
            "CTRL",
            "\u{0}\u{7}\u{1b}[31m\u{202e}\u{200b}\u{1f680}\r\n\t\u{2028}\u{fffd}",
        ),
    ] {
        c.literal(name, tenant, key, text);
    }
    // Template text under a key the plan does not allow is refused all the same.
    let image = request_values(
        "inject-image",
        "free",
        json!({"image": {"tag": "{{ .Release.Namespace }}"}}),
    );
    c.rejected(
        Injection,
        "inject-into-non-overridable-key",
        &image,
        "invalid_values",
        "/image/tag",
    );

    // --- Replayed and out of order (the rest of this category is in the test).
    let late = to_json(&upgraded("late", "standard"));
    c.rejected(
        Replay,
        "upgrade-before-request",
        &late,
        "tenant_not_found",
        "late",
    );
    c
}

/// Namespaces that exist before the worker starts and are not the tenants':
/// name, labels.
const FOREIGN: &[(&str, &[(&str, &str)])] = &[
    ("tenant-squat", &[("team", "someone-else")]),
    (
        "tenant-borrowed",
        &[(MANAGED_BY_LABEL, MANAGER), (TENANT_LABEL, "other")],
    ),
    ("tenant-half", &[(MANAGED_BY_LABEL, MANAGER)]),
];

/// Creates the foreign namespaces and the worker's own (as `k8s/worker`
/// ships it); returns their resourceVersions.
async fn create_foreign_namespaces(h: &Harness) -> BTreeMap<String, String> {
    let api = Api::<Namespace>::all(h.kube());
    let mut namespaces: Vec<Namespace> = FOREIGN
        .iter()
        .map(|(name, labels)| {
            let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
        })
        .collect();
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/k8s/worker/namespace.yaml"
    ))
    .unwrap();
    namespaces.push(serde_yaml_ng::from_str(&shipped).unwrap());
    let mut versions = BTreeMap::new();
    for ns in namespaces {
        let created = api.create(&PostParams::default(), &ns).await.unwrap();
        versions.insert(
            created.metadata.name.unwrap(),
            created.metadata.resource_version.unwrap(),
        );
    }
    versions
}

/// The value of header `name`, if there is one.
fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers.and_then(|h| h.get(name)).map(|v| v.as_str())
}

/// Publishes a case with its name in `X-Test-Case` (a dead letter keeps the
/// headers) and a `Nats-Msg-Id` of its own, as a producer would.
async fn publish_case(h: &Harness, case: &Case) {
    let mut headers = HeaderMap::new();
    headers.insert("X-Test-Case", case.name.as_str());
    headers.insert("Nats-Msg-Id", format!("torture:{}", case.name).as_str());
    h.publish_raw_with(&case.subject, headers, case.payload.clone())
        .await;
}

/// Publishes `event` again with a fresh `Nats-Msg-Id`, as a producer
/// retrying after a lost confirmation would (JetStream does not drop it).
async fn republish(h: &Harness, event: &Value, msg_id: &str) -> u64 {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    h.publish_raw_with(
        &subject_of(event),
        headers,
        serde_json::to_vec(event).unwrap(),
    )
    .await
}

async fn publish_event(h: &Harness, event: &Value) -> u64 {
    republish(h, event, event["id"].as_str().unwrap()).await
}

/// Waits until `TENANT_STATUS` holds a completion for every id in `ids`;
/// returns every completion event, by causation id.
async fn wait_completions(h: &Harness, ids: &BTreeMap<Uuid, String>) -> BTreeMap<Uuid, Vec<Value>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut by_cause: BTreeMap<Uuid, Vec<Value>> = BTreeMap::new();
        for e in h.completion_events().await {
            let cause = e["data"]["causation_id"].as_str().unwrap().parse().unwrap();
            by_cause.entry(cause).or_default().push(e);
        }
        let missing: Vec<&String> = ids
            .iter()
            .filter(|(id, _)| !by_cause.contains_key(id))
            .map(|(_, name)| name)
            .collect();
        if missing.is_empty() {
            return by_cause;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completion for {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The namespace a recorded write goes to (a namespace's own name for
/// namespaces), `None` for other cluster-scoped writes.
fn write_target(r: &RecordedRequest) -> Option<String> {
    if r.resource == "namespaces" {
        r.name.clone()
    } else {
        r.namespace.clone()
    }
}

fn is_write(r: &RecordedRequest) -> bool {
    matches!(
        r.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Asserts that every write the embedded API recorded went to one of `allowed`.
fn assert_writes_only_in(requests: &[RecordedRequest], allowed: &BTreeSet<String>) {
    let stray: Vec<&RecordedRequest> = requests
        .iter()
        .filter(|r| is_write(r))
        .filter(|r| !write_target(r).is_some_and(|ns| allowed.contains(&ns)))
        .collect();
    assert!(
        stray.is_empty(),
        "writes outside the namespaces of the tenants that may change: {stray:#?}"
    );
}

/// What went wrong with each case of the corpus, all at once (empty: nothing).
///
/// A dead letter must be on the right subject, unchanged, with its headers
/// and a reason that starts with the code and says what is wrong. A
/// rejection must be one `tenant.rejected` with the code, a message that says
/// why, the producer's metadata back, and the contract's schema. Template
/// text must be in the ConfigMap literally, and the tenant must have exactly
/// what a ready tenant has (no planted object).
async fn case_problems(
    h: &Harness,
    corpus: &Corpus,
    letters: &[(String, Option<HeaderMap>, bytes::Bytes)],
    completions: &BTreeMap<Uuid, Vec<Value>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for case in &corpus.0 {
        let name = &case.name;
        match &case.expect {
            Expect::DeadLetter { code, hint } => {
                let Some((subject, headers, payload)) = letters
                    .iter()
                    .find(|(_, hdr, _)| header(hdr.as_ref(), "X-Test-Case") == Some(name))
                else {
                    problems.push(format!("{name}: not dead-lettered"));
                    continue;
                };
                let headers = headers.as_ref();
                let why = header(headers, DEADLETTER_REASON_HEADER).unwrap_or_default();
                if *subject != format!("tenant.deadletter.{code}") {
                    problems.push(format!(
                        "{name}: dead-lettered on {subject} ({why}), expected {code}"
                    ));
                } else if !(why.starts_with(&format!("{code}: ")) && why.contains(hint.as_str())) {
                    problems.push(format!("{name}: reason {why:?} lacks {hint:?}"));
                }
                if payload.as_ref() != case.payload.as_slice() {
                    problems.push(format!("{name}: payload changed"));
                }
                if header(headers, DEADLETTER_SUBJECT_HEADER) != Some(case.subject.as_str())
                    || header(headers, "Tenant-Worker-Original-Nats-Msg-Id")
                        != Some(format!("torture:{name}").as_str())
                {
                    problems.push(format!("{name}: original headers lost: {headers:?}"));
                }
            }
            Expect::Rejected { code, hint } => {
                let (id, tenant) = case.event();
                let done = &completions[&id][0];
                let message = done["data"]["message"].as_str().unwrap_or_default();
                if done["type"] != "tenant.rejected" || done["data"]["reason"] != *code {
                    problems.push(format!(
                        "{name}: {} {}, expected tenant.rejected {code}",
                        done["type"], done["data"]
                    ));
                } else if !message.contains(hint.as_str()) {
                    problems.push(format!("{name}: message {message:?} lacks {hint:?}"));
                }
                if done["subject"] != tenant.as_str() || done["data"]["metadata"] != case.metadata()
                {
                    problems.push(format!("{name}: subject or metadata changed"));
                }
                assert_matches_schema(done);
            }
            Expect::Literal { key, text } => {
                let (id, tenant) = case.event();
                let done = &completions[&id][0];
                if done["type"] != "tenant.provisioned" {
                    problems.push(format!("{name}: {done}, expected tenant.provisioned"));
                    continue;
                }
                let data = config_data(h, &tenant).await;
                if data.get(*key) != Some(text) {
                    problems.push(format!(
                        "{name}: ConfigMap has {:?}, sent {text:?}",
                        data.get(*key)
                    ));
                }
                let objects = tenant_objects(&h.kube(), &tenant).await;
                let expected = expected_ready_objects(&h.kube(), &tenant).await;
                if objects != expected {
                    problems.push(format!(
                        "{name}: objects {objects:#?}, expected {expected:#?}"
                    ));
                }
            }
            Expect::Confined => {
                let (id, tenant) = case.event();
                let done = &completions[&id][0];
                let namespace = format!("tenant-{tenant}");
                if done["type"] != "tenant.provisioned" || done["data"]["namespace"] != namespace {
                    problems.push(format!(
                        "{name}: {done}, expected tenant.provisioned in {namespace}"
                    ));
                    continue;
                }
                let objects = tenant_objects(&h.kube(), &tenant).await;
                if objects != expected_ready_objects(&h.kube(), &tenant).await
                    || !objects.iter().all(|o| o.contains(&format!("/{namespace}")))
                {
                    problems.push(format!("{name}: objects {objects:#?}"));
                }
            }
        }
    }
    problems
}

/// Asserts that the worker process is alive and logged no panic.
fn assert_alive(worker: &mut WorkerProcess) {
    assert!(
        worker.is_running(),
        "the worker process died:\n{}",
        worker.log_text()
    );
    assert!(
        !worker.log_text().contains("panicked"),
        "the worker process panicked:\n{}",
        worker.log_text()
    );
}

/// The tenant's ConfigMap data of the release (the one labelled for the tenant
/// that is not Helm's record).
async fn config_data(h: &Harness, tenant: &str) -> BTreeMap<String, String> {
    let maps = Api::<ConfigMap>::namespaced(h.kube(), &format!("tenant-{tenant}"))
        .list(&ListParams::default().labels(&format!("{TENANT_LABEL}={tenant}")))
        .await
        .unwrap();
    let mut found: Vec<BTreeMap<String, String>> = maps
        .items
        .into_iter()
        .filter(|m| {
            m.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-config"))
        })
        .map(|m| m.data.unwrap_or_default())
        .collect();
    assert_eq!(found.len(), 1, "one application ConfigMap for {tenant}");
    found.remove(0)
}

/// Asserts that the Deployment of `tenant` runs the restricted profile: what
/// the privileged cases tried to change.
async fn assert_restricted_pods(h: &Harness, tenant: &str) {
    let ns = format!("tenant-{tenant}");
    let labels = Api::<Namespace>::all(h.kube())
        .get(&ns)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap();
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce"], "restricted",
        "{labels:?}"
    );
    let deployments = Api::<Deployment>::namespaced(h.kube(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(deployments.items.len(), 1);
    let pod =
        serde_json::to_value(&deployments.items[0]).unwrap()["spec"]["template"]["spec"].clone();
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod:#}");
    assert!(
        pod["securityContext"]["runAsUser"].as_i64().unwrap() > 0,
        "{pod:#}"
    );
    assert_eq!(pod["automountServiceAccountToken"], false, "{pod:#}");
    for key in [
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "tolerations",
        "nodeSelector",
    ] {
        assert!(pod.get(key).is_none(), "{key} in {pod:#}");
    }
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("hostPath").is_none()),
        "{pod:#}"
    );
    for container in pod["containers"].as_array().unwrap() {
        let sc = &container["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{container:#}");
        assert!(
            sc.get("privileged").is_none_or(|p| p == false),
            "{container:#}"
        );
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{container:#}");
        assert!(sc["capabilities"].get("add").is_none(), "{container:#}");
    }
}

/// Cases per category and outcome, for the log of the test.
fn summary(corpus: &Corpus) -> String {
    let mut per: BTreeMap<Category, [usize; 4]> = BTreeMap::new();
    for case in &corpus.0 {
        let counts = per.entry(case.category).or_default();
        counts[match case.expect {
            Expect::DeadLetter { .. } => 0,
            Expect::Rejected { .. } => 1,
            Expect::Literal { .. } => 2,
            Expect::Confined => 3,
        }] += 1;
    }
    per.iter()
        .map(|(category, [d, r, l, c])| {
            format!("{category}: {d} dead-lettered, {r} rejected, {l} kept as data, {c} confined")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a case is a bad input that must be dead-lettered or rejected.
fn is_refused(expect: &Expect) -> bool {
    matches!(expect, Expect::DeadLetter { .. } | Expect::Rejected { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_dead_lettered_or_rejected_with_its_reason_and_changes_nothing() {
    let started = Instant::now();
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    let foreign = create_foreign_namespaces(&h).await;
    let max = MAX_EVENT_BYTES.to_string();
    let mut worker = h.spawn_worker(WorkerOptions {
        name: "torture",
        failpoints: None,
        args: &[
            "--max-event-bytes",
            &max,
            "--gateway-namespace",
            GATEWAY_NAMESPACE,
        ],
    });
    h.wait_topology().await;

    // A live tenant for the upgrade and replay cases: on free, then standard.
    let first = to_json(&requested("steady", "free"));
    let first_seq = publish_event(&h, &first).await;
    let first_id: Uuid = first["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        h.completion("steady", first_id).await["type"],
        "tenant.provisioned"
    );
    let second = to_json(&upgraded("steady", "standard"));
    publish_event(&h, &second).await;
    let second_id: Uuid = second["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        h.completion("steady", second_id).await["type"],
        "tenant.upgrade_completed"
    );
    h.wait_idle().await;
    let steady_objects = tenant_objects(&h.kube(), "steady").await;

    // From here on, every write the worker makes is recorded.
    h.api.requests().start();
    let corpus = corpus();
    for case in &corpus.0 {
        publish_case(&h, case).await;
    }

    // Replayed and out of order: the completion each must get (by event id);
    // `scenarios` names them all, those without a completion too.
    let mut expected: BTreeMap<Uuid, (String, &str)> = BTreeMap::new();
    let mut scenarios = vec!["same-event-twice", "old-request-again-after-upgrade"];
    // The same event twice, under two Nats-Msg-Ids: one saga, one completion.
    let twice = to_json(&requested("echo", "free"));
    republish(&h, &twice, "echo-first").await;
    republish(&h, &twice, "echo-again").await;
    expected.insert(
        id_of(&twice),
        ("same-event-twice".into(), "tenant.provisioned"),
    );
    // The first request of `steady` again, after its upgrade: acknowledged
    // as already applied; it does not take the tenant back to free.
    republish(&h, &first, "steady-first-again").await;
    // A replay computed before the upgrade (`replayasof` names the stream
    // sequence it read up to): overtaken, so superseded.
    let mut stale = to_json(&requested("steady", "premium"));
    stale["replayasof"] = json!(first_seq);
    publish_event(&h, &stale).await;
    expected.insert(id_of(&stale), ("stale-replay".into(), "tenant.rejected"));
    scenarios.push("stale-replay");
    // Request, delete, then the request again: the tenant stays deleted.
    let born = to_json(&requested("gone", "free"));
    let died = to_json(&deleted("gone"));
    publish_event(&h, &born).await;
    publish_event(&h, &died).await;
    republish(&h, &born, "gone-born-again").await;
    scenarios.push("request-of-a-deleted-tenant-again");
    expected.insert(
        id_of(&born),
        ("deleted-tenant-request".into(), "tenant.provisioned"),
    );
    expected.insert(
        id_of(&died),
        ("deleted-tenant-delete".into(), "tenant.deprovisioned"),
    );
    // The request that the earlier `upgrade-before-request` case came before.
    let late = to_json(&requested("late", "free"));
    publish_event(&h, &late).await;
    scenarios.push("request-after-its-upgrade");
    expected.insert(
        id_of(&late),
        ("request-after-upgrade".into(), "tenant.provisioned"),
    );
    // A delete of a tenant that never existed: done, and nothing to do.
    let never = to_json(&deleted("never"));
    publish_event(&h, &never).await;
    scenarios.push("delete-of-a-tenant-that-never-existed");
    expected.insert(
        id_of(&never),
        ("delete-of-nobody".into(), "tenant.deprovisioned"),
    );

    let mut waited: BTreeMap<Uuid, String> = expected
        .iter()
        .map(|(id, (name, _))| (*id, name.clone()))
        .collect();
    for case in &corpus.0 {
        if !matches!(case.expect, Expect::DeadLetter { .. }) {
            waited.insert(case.event().0, case.name.clone());
        }
    }
    let completions = wait_completions(&h, &waited).await;
    let dead_count = corpus.count(|e| matches!(e, Expect::DeadLetter { .. }));
    let letters = h.deadletters(dead_count).await;
    h.wait_idle().await;
    assert_alive(&mut worker);

    // Exactly one completion per inbound event id, and only for the events
    // that are answered: none for dead letters and duplicates.
    for (cause, events) in &completions {
        assert_eq!(events.len(), 1, "completions of {cause}: {events:#?}");
    }
    let answered: BTreeSet<Uuid> = waited
        .keys()
        .copied()
        .chain([first_id, second_id])
        .collect();
    assert_eq!(
        completions.keys().copied().collect::<BTreeSet<_>>(),
        answered,
        "completions for exactly the answered events"
    );

    assert_eq!(letters.len(), dead_count, "no other dead letters");
    let problems = case_problems(&h, &corpus, &letters, &completions).await;
    assert!(
        problems.is_empty(),
        "{} of {} cases went wrong:\n{}",
        problems.len(),
        corpus.0.len(),
        problems.join("\n")
    );
    // The pods of a provisioned tenant run the restricted profile, whatever
    // the privileged cases asked for.
    assert_restricted_pods(&h, "inject-ns").await;

    // The replays.
    for (id, (name, outcome)) in &expected {
        assert_eq!(
            completions[id][0]["type"], *outcome,
            "{name}: {:#}",
            completions[id][0]
        );
    }
    let stale_done = &completions[&id_of(&stale)][0];
    assert_eq!(stale_done["data"]["reason"], "superseded", "{stale_done:#}");
    assert!(completions[&id_of(&never)][0]["data"].get("plan").is_none());
    let steady = h.kv("tenant_state", "steady").await.unwrap();
    assert_eq!(steady["status"], "ready", "{steady:#}");
    assert_eq!(steady["plan"], "standard", "{steady:#}");
    assert_eq!(steady["release_revision"], 2, "{steady:#}");
    assert_eq!(
        h.kv("tenant_routes", "steady").await.unwrap()["plan"],
        "standard"
    );
    assert!(h.kv("tenant_routes", "gone").await.is_none());
    assert_eq!(
        h.kv("tenant_state", "gone").await.unwrap()["status"],
        "deleted"
    );

    // Nothing changed in the cluster: the only writes went to the tenants the
    // corpus may provision (not `steady`, whose every event was refused).
    let mut allowed: BTreeSet<String> = ["echo", "gone", "late"]
        .iter()
        .map(|t| format!("tenant-{t}"))
        .collect();
    for case in &corpus.0 {
        if matches!(case.expect, Expect::Literal { .. } | Expect::Confined) {
            allowed.insert(format!("tenant-{}", case.event().1));
        }
    }
    let requests = h.api.requests().snapshot();
    assert_writes_only_in(&requests, &allowed);
    assert_eq!(tenant_objects(&h.kube(), "steady").await, steady_objects);
    let namespaces = Api::<Namespace>::all(h.kube());
    for (name, version) in &foreign {
        let now = namespaces.get(name).await.unwrap();
        assert_eq!(
            now.metadata.resource_version.as_ref(),
            Some(version),
            "{name} changed"
        );
        assert!(now.metadata.deletion_timestamp.is_none(), "{name} deleted");
    }
    assert!(
        namespaces
            .get_opt(GATEWAY_NAMESPACE)
            .await
            .unwrap()
            .is_none()
    );
    allowed.remove("tenant-gone");
    allowed.insert("tenant-steady".into());
    allowed.extend(["tenant-borrowed".to_owned(), "tenant-half".to_owned()]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let managed: BTreeSet<String> = namespaces
            .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        if managed == allowed {
            break;
        }
        // `tenant-gone` takes a moment to go.
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespaces labelled as the worker's: {managed:#?}, expected {allowed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Still alive, and still doing its job.
    assert_alive(&mut worker);
    let after = requested("after", "standard");
    h.publish(&after).await;
    assert_eq!(
        h.completion("after", after.id).await["type"],
        "tenant.provisioned"
    );
    assert_alive(&mut worker);

    // The stale replay is a rejected bad input too.
    let strict = corpus.count(is_refused) + 1;
    eprintln!(
        "torture_input: {} cases ({strict} dead-lettered or rejected) in {:.1?}\n{}\n\
         replay scenarios: {}",
        corpus.0.len() + scenarios.len(),
        started.elapsed(),
        summary(&corpus),
        scenarios.join(", ")
    );
    assert!(strict >= 50, "the corpus has {strict} bad inputs");
}

fn id_of(event: &Value) -> Uuid {
    event["id"].as_str().unwrap().parse().unwrap()
}

/// Values that make a chart render an object outside the tenant's namespace,
/// a cluster-scoped one, one the plan owns, or fail: refused before anything
/// is applied, by a worker process that keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_make_the_chart_leave_the_namespace_are_rejected_and_change_nothing() {
    let h = Harness::start_bare(EmbeddedApiConfig::default()).await;
    // The escape chart renders those objects when a value asks for them; this
    // plan lets events set those values, as a careless catalogue might.
    let plans = tenant_worker::plans::DEFAULT_PLANS_YAML.replace(
        "overridable_values: [config]",
        "overridable_values: [config, clusterRole, elsewhere, quota, explode]",
    );
    let plans_path = h.dir.path().join("plans.yaml");
    std::fs::write(&plans_path, plans).unwrap();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/escape-chart");
    let mut worker = h.spawn_worker(WorkerOptions {
        name: "escape",
        failpoints: None,
        args: &["--plans", plans_path.to_str().unwrap(), "--chart", chart],
    });
    h.wait_topology().await;
    h.api.requests().start();

    let cases = [
        (
            "escape-cluster-role",
            "cluster-wide",
            json!({"clusterRole": true}),
            "forbidden_object",
            "cluster-scoped",
        ),
        (
            "escape-to-kube-system",
            "elsewhere",
            json!({"elsewhere": true}),
            "forbidden_object",
            "kube-system",
        ),
        (
            "escape-own-quota",
            "loose",
            json!({"quota": true}),
            "forbidden_object",
            "ResourceQuota",
        ),
        (
            "escape-all-at-once",
            "greedy",
            json!({"clusterRole": true, "elsewhere": true, "quota": true}),
            "forbidden_object",
            "the plan owns",
        ),
        (
            "escape-render-fail",
            "boom",
            json!({"explode": true}),
            "render_failed",
            "explode was set",
        ),
        (
            "escape-truthy-string",
            "truthy",
            json!({"elsewhere": "false"}),
            "forbidden_object",
            "kube-system",
        ),
    ];
    let mut ids = BTreeMap::new();
    for (name, tenant, values, _, _) in &cases {
        let event = request_values(tenant, "free", values.clone());
        publish_event(&h, &event).await;
        ids.insert(id_of(&event), (*name).to_owned());
    }
    let completions = wait_completions(&h, &ids).await;
    h.wait_idle().await;
    assert_alive(&mut worker);
    for (name, tenant, _, code, hint) in &cases {
        let (id, _) = ids.iter().find(|(_, n)| n == name).unwrap();
        let done = &completions[id];
        assert_eq!(done.len(), 1, "{name}: {done:#?}");
        let done = &done[0];
        assert_eq!(done["type"], "tenant.rejected", "{name}: {done:#}");
        assert_eq!(done["data"]["reason"], *code, "{name}: {done:#}");
        let message = done["data"]["message"].as_str().unwrap();
        assert!(message.contains(hint), "{name}: {message}");
        assert_matches_schema(done);
        assert!(tenant_objects(&h.kube(), tenant).await.is_empty(), "{name}");
    }
    // No write at all: not in kube-system, not cluster-wide, not even the
    // tenants' namespaces.
    assert_writes_only_in(&h.api.requests().snapshot(), &BTreeSet::new());

    let fine = request_values("fine", "free", json!({}));
    publish_event(&h, &fine).await;
    assert_eq!(
        h.completion("fine", id_of(&fine)).await["type"],
        "tenant.provisioned"
    );
    assert_alive(&mut worker);
}

/// A replay computed before the tenant's last event is superseded, but only
/// once the events published before it have had their turn. Found by the
/// corpus: the stale replay was concluded while an earlier upgrade waited for
/// a saga in flight, which moved the tenant past that upgrade, and the
/// upgrade was then dropped as superseded although nothing newer had been
/// applied.
#[tokio::test]
async fn a_stale_replay_waits_for_the_events_published_before_it() {
    // Quick redeliveries, so that the replay is offered many times while the
    // saga in flight keeps failing; a high max_deliver, so that waiting never
    // dead-letters.
    let h = Harness::start_with(
        |s| {
            s.engine.retry.min_delay = Duration::from_millis(10);
            s.engine.retry.max_delay = Duration::from_millis(200);
            s.topology.max_deliver = 1000;
        },
        EmbeddedApiConfig::default(),
    )
    .await;
    let first = requested("order", "free");
    let first_seq = h.publish(&first).await;
    assert_eq!(
        h.completion("order", first.id).await["type"],
        "tenant.provisioned"
    );
    // The next upgrade's quota step fails transiently: its saga stays open
    // between deliveries, with the tenant free for other events to look at.
    h.api.faults().add_rule(
        FaultRule::new(503)
            .method("PATCH")
            .resource("resourcequotas")
            .namespace("tenant-order"),
    );
    let open = upgraded("order", "standard");
    h.publish(&open).await;
    let waiting = upgraded("order", "premium");
    h.publish(&waiting).await;
    let mut stale = to_json(&requested("order", "free"));
    stale["replayasof"] = json!(first_seq);
    publish_event(&h, &stale).await;
    // Several failed deliveries of the open saga: the others were offered
    // (and given back) in between.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let record = h.kv("tenant_state", "order").await.unwrap();
        let attempts = record["saga"]["attempts"].as_array().map_or(0, Vec::len);
        if record["saga"]["event_id"] == json!(open.id.to_string()) && attempts >= 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{record:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.api.faults().clear();

    assert_eq!(
        h.completion("order", open.id).await["type"],
        "tenant.upgrade_completed"
    );
    let done = h.completion("order", waiting.id).await;
    assert_eq!(done["type"], "tenant.upgrade_completed", "{done:#}");
    let done = h.completion("order", id_of(&stale)).await;
    assert_eq!(done["type"], "tenant.rejected", "{done:#}");
    assert_eq!(done["data"]["reason"], "superseded", "{done:#}");
    h.wait_idle().await;
    assert_eq!(
        h.kv("tenant_routes", "order").await.unwrap()["plan"],
        "premium",
        "the last intent that is not stale wins"
    );
}
