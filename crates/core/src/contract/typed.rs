//! Parsing of any contract event with the Rust types alone, without JSON Schema.
//!
//! [`parse_typed`] deserializes with serde into the types of the `events`
//! module and checks every constraint that `schemas/` states and serde does
//! not (name patterns and lengths, `port` ≥ 1, the hyphenated UUID and RFC 3339
//! texts, an upgrade that changes something, ...), and the one rule no schema
//! can express: `subject` is `data.tenant_id`.
//!
//! `tests/schemas.rs` keeps the two in agreement: every valid example in
//! `schemas/examples/` passes both and round-trips through [`TypedEvent::to_json`],
//! and every invalid one is refused by each of them on its own.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::names::{is_dns_label, is_label_value};

use super::{
    CloudEvent, Completion, Deprovisioned, DriftKind, DriftRepaired, EventType, Failed,
    Provisioned, Rejected, TenantDeleted, TenantId, TenantRequested, TenantUpgraded,
    UpgradeCompleted,
};

/// Longest `source` attribute, in characters.
const MAX_SOURCE_LEN: usize = 256;
/// Longest plan or namespace name (a DNS-1123 label), in characters.
const MAX_NAME_LEN: usize = 63;
/// Longest `reason` of `tenant.deleted`, in characters.
const MAX_DELETE_REASON_LEN: usize = 1024;
/// Longest object name (a DNS-1123 subdomain), in characters.
const MAX_OBJECT_NAME_LEN: usize = 253;
/// Longest `apiVersion`: a group (a DNS-1123 subdomain), `/` and a version (a label).
const MAX_API_VERSION_LEN: usize = MAX_OBJECT_NAME_LEN + 1 + MAX_NAME_LEN;
/// Longest object `kind`, in characters.
const MAX_KIND_LEN: usize = 63;

/// Any contract event, typed by its `type` attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedEvent {
    /// `tenant.requested` (inbound).
    Requested(CloudEvent<TenantRequested>),
    /// `tenant.upgraded` (inbound).
    Upgraded(CloudEvent<TenantUpgraded>),
    /// `tenant.deleted` (inbound).
    Deleted(CloudEvent<TenantDeleted>),
    /// `tenant.provisioned` (outbound).
    Provisioned(CloudEvent<Completion<Provisioned>>),
    /// `tenant.upgrade_completed` (outbound).
    UpgradeCompleted(CloudEvent<Completion<UpgradeCompleted>>),
    /// `tenant.deprovisioned` (outbound).
    Deprovisioned(CloudEvent<Completion<Deprovisioned>>),
    /// `tenant.failed` (outbound).
    Failed(CloudEvent<Completion<Failed>>),
    /// `tenant.rejected` (outbound).
    Rejected(CloudEvent<Completion<Rejected>>),
    /// `tenant.drift_repaired` (outbound, from the reconciler).
    DriftRepaired(CloudEvent<Completion<DriftRepaired>>),
}

impl TypedEvent {
    /// The event's type; the variant and the `type` attribute always agree
    /// for an event from [`parse_typed`].
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Requested(_) => EventType::Requested,
            Self::Upgraded(_) => EventType::Upgraded,
            Self::Deleted(_) => EventType::Deleted,
            Self::Provisioned(_) => EventType::Provisioned,
            Self::UpgradeCompleted(_) => EventType::UpgradeCompleted,
            Self::Deprovisioned(_) => EventType::Deprovisioned,
            Self::Failed(_) => EventType::Failed,
            Self::Rejected(_) => EventType::Rejected,
            Self::DriftRepaired(_) => EventType::DriftRepaired,
        }
    }

    /// The event as JSON (structured-mode CloudEvent). For an event parsed from
    /// JSON, this is the original JSON when that had no extension attributes or
    /// unknown `data` fields and used the canonical forms: lower-case UUIDs and
    /// UTC times (`Z`) without trailing zeros in the fraction of a second.
    pub fn to_json(&self) -> Value {
        let json = match self {
            Self::Requested(e) => serde_json::to_value(e),
            Self::Upgraded(e) => serde_json::to_value(e),
            Self::Deleted(e) => serde_json::to_value(e),
            Self::Provisioned(e) => serde_json::to_value(e),
            Self::UpgradeCompleted(e) => serde_json::to_value(e),
            Self::Deprovisioned(e) => serde_json::to_value(e),
            Self::Failed(e) => serde_json::to_value(e),
            Self::Rejected(e) => serde_json::to_value(e),
            Self::DriftRepaired(e) => serde_json::to_value(e),
        };
        json.expect("contract events serialize to JSON objects")
    }
}

/// Parses any contract event with the Rust types alone (no JSON Schema).
///
/// The `type` attribute selects the variant; serde then reads each attribute
/// and `data`, and every constraint of `schemas/` that serde does not check is
/// checked around it. Before serde, on the JSON as sent (so that the error names
/// the field): UUIDs in hyphenated form, timestamps in RFC 3339, `data` and
/// `endpoint` and the items of `repaired` and `compensation_failed` as JSON
/// objects (serde also reads a struct from an array), no `null` for optional
/// fields and no `[]` for `fields` (left out instead), `metadata` present on
/// completion events. After serde, on the typed values: plan and namespace
/// names (DNS-1123 labels of at most 63 characters), `app_version` (a
/// Kubernetes label value), `source` (1 to 256 characters), the `reason` of
/// `tenant.deleted` (at most 1024 characters), non-empty `endpoint.host`,
/// `failed_step`, `error`, `message` and `compensation` steps, `endpoint.port`
/// ≥ 1, an upgrade naming at least one of `plan`/`app_version`/`values`; for
/// `tenant.drift_repaired`, a non-empty `repaired` whose objects have a valid
/// `api_version`, `kind` and `name`, and `fields` (non-empty) exactly when
/// `modified`, and `plan` and `app_version` both present or both absent. Last,
/// the rule no schema can express:
/// `subject` equals `data.tenant_id`.
///
/// Unknown attributes and unknown `data` fields are ignored.
///
/// # Errors
/// A lower-case message naming the attribute or field and the rule it breaks,
/// e.g. `data.plan "Pro!" is not a valid plan name: ...`. Type errors that serde
/// finds inside `data` name `data` only, with serde's description.
pub fn parse_typed(value: &Value) -> Result<TypedEvent, String> {
    let event = value
        .as_object()
        .ok_or_else(|| format!("an event is a JSON object, not {}", kind_of(value)))?;
    let type_name = match event.get("type") {
        None => return Err("missing attribute `type`".into()),
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("type must be a string, not {}", kind_of(other))),
    };
    let event_type = EventType::parse(type_name).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        format!(
            "type {type_name:?} is not a contract event type ({})",
            known.join(", ")
        )
    })?;
    Ok(match event_type {
        EventType::Requested => TypedEvent::Requested(parse_event(event, event_type)?),
        EventType::Upgraded => TypedEvent::Upgraded(parse_event(event, event_type)?),
        EventType::Deleted => TypedEvent::Deleted(parse_event(event, event_type)?),
        EventType::Provisioned => TypedEvent::Provisioned(parse_event(event, event_type)?),
        EventType::UpgradeCompleted => {
            TypedEvent::UpgradeCompleted(parse_event(event, event_type)?)
        }
        EventType::Deprovisioned => TypedEvent::Deprovisioned(parse_event(event, event_type)?),
        EventType::Failed => TypedEvent::Failed(parse_event(event, event_type)?),
        EventType::Rejected => TypedEvent::Rejected(parse_event(event, event_type)?),
        EventType::DriftRepaired => TypedEvent::DriftRepaired(parse_event(event, event_type)?),
    })
}

/// The `data` of one event type.
trait Payload: DeserializeOwned {
    fn tenant_id(&self) -> &TenantId;
    /// Rules on the `data` object as sent, checked before serde reads it, for
    /// what serde accepts silently (`null` for an optional field, a defaulted
    /// field left out, a UUID that is not hyphenated, an ISO 8601 time that is
    /// not RFC 3339, a struct written as an array).
    fn check_raw(data: &Map<String, Value>) -> Result<(), String>;
    /// Rules on the typed values.
    fn check(&self) -> Result<(), String>;
}

/// The type-specific fields of a completion event.
trait Detail: DeserializeOwned {
    /// Fields holding RFC 3339 timestamps.
    const TIMESTAMPS: &'static [&'static str] = &[];
    /// Fields that must be JSON objects (serde also reads a struct from an array).
    const OBJECTS: &'static [&'static str] = &[];
    /// Optional fields, to be left out rather than `null` (serde reads `null` as absent).
    const OPTIONAL: &'static [&'static str] = &[];
    /// Rules on the type-specific fields as sent that the constants above do
    /// not cover (see [`Payload::check_raw`]).
    fn check_raw(_data: &Map<String, Value>) -> Result<(), String> {
        Ok(())
    }
    fn check(&self) -> Result<(), String>;
}

fn parse_event<D: Payload>(
    event: &Map<String, Value>,
    event_type: EventType,
) -> Result<CloudEvent<D>, String> {
    check_uuid_text("id", get(event, "id"))?;
    check_rfc3339_text("time", get(event, "time"))?;
    let data = get(event, "data");
    if let Some(data) = data.as_object() {
        D::check_raw(data)?;
    } else if !data.is_null() {
        return Err(format!("data must be a JSON object, not {}", kind_of(data)));
    }
    let parsed = CloudEvent {
        specversion: attribute(event, "specversion")?,
        id: attribute(event, "id")?,
        source: attribute(event, "source")?,
        event_type,
        time: attribute(event, "time")?,
        subject: attribute(event, "subject")?,
        datacontenttype: attribute(event, "datacontenttype")?,
        data: attribute::<D>(event, "data")?,
    };
    let source_len = parsed.source.chars().count();
    if !(1..=MAX_SOURCE_LEN).contains(&source_len) {
        return Err(format!(
            "source {:?} is {source_len} characters long; it must be 1 to {MAX_SOURCE_LEN}",
            truncated(&parsed.source)
        ));
    }
    parsed.data.check()?;
    if parsed.subject != *parsed.data.tenant_id() {
        return Err(format!(
            "subject {:?} differs from data.tenant_id {:?}: an event is about one tenant",
            parsed.subject.as_str(),
            parsed.data.tenant_id().as_str()
        ));
    }
    Ok(parsed)
}

/// Deserializes the attribute `name` of `event`, naming it in the error.
fn attribute<T: DeserializeOwned>(event: &Map<String, Value>, name: &str) -> Result<T, String> {
    let value = event
        .get(name)
        .ok_or_else(|| format!("missing attribute `{name}`"))?;
    T::deserialize(value).map_err(|e| format!("{name}: {e}"))
}

impl Payload for TenantRequested {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        check_not_null(data, &["app_version", "values", "metadata"])
    }
    fn check(&self) -> Result<(), String> {
        check_plan("data.plan", &self.plan)?;
        if let Some(version) = &self.app_version {
            check_app_version("data.app_version", version)?;
        }
        Ok(())
    }
}

impl Payload for TenantUpgraded {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        check_not_null(data, &["plan", "app_version", "values", "metadata"])
    }
    fn check(&self) -> Result<(), String> {
        if self.plan.is_none() && self.app_version.is_none() && self.values.is_none() {
            return Err(
                "data changes nothing: a tenant.upgraded event needs at least one of \
                 plan, app_version, values"
                    .into(),
            );
        }
        if let Some(plan) = &self.plan {
            check_plan("data.plan", plan)?;
        }
        if let Some(version) = &self.app_version {
            check_app_version("data.app_version", version)?;
        }
        Ok(())
    }
}

impl Payload for TenantDeleted {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        check_not_null(data, &["reason", "metadata"])
    }
    fn check(&self) -> Result<(), String> {
        if let Some(reason) = &self.reason {
            let len = reason.chars().count();
            if len > MAX_DELETE_REASON_LEN {
                return Err(format!(
                    "data.reason is {len} characters long; the limit is {MAX_DELETE_REASON_LEN}"
                ));
            }
        }
        Ok(())
    }
}

impl<D: Detail> Payload for Completion<D> {
    fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        if !data.contains_key("metadata") {
            return Err(
                "missing field data.metadata (`{}` when the inbound event had none)".into(),
            );
        }
        check_uuid_text("data.causation_id", get(data, "causation_id"))?;
        check_not_null(data, D::OPTIONAL)?;
        for field in D::TIMESTAMPS {
            check_rfc3339_text(&format!("data.{field}"), get(data, field))?;
        }
        for field in D::OBJECTS {
            let value = get(data, field);
            if !value.is_object() && !value.is_null() {
                return Err(format!(
                    "data.{field} must be a JSON object, not {}",
                    kind_of(value)
                ));
            }
        }
        D::check_raw(data)
    }
    fn check(&self) -> Result<(), String> {
        self.detail.check()
    }
}

impl Detail for Provisioned {
    const TIMESTAMPS: &'static [&'static str] = &["completed_at"];
    const OBJECTS: &'static [&'static str] = &["endpoint"];
    fn check(&self) -> Result<(), String> {
        check_plan("data.plan", &self.plan)?;
        check_app_version("data.app_version", &self.app_version)?;
        check_namespace("data.namespace", &self.namespace)?;
        check_non_empty("data.endpoint.host", &self.endpoint.host)?;
        if self.endpoint.port == 0 {
            return Err("data.endpoint.port is 0; a port is 1 to 65535".into());
        }
        Ok(())
    }
}

impl Detail for UpgradeCompleted {
    const TIMESTAMPS: &'static [&'static str] = &["effective_at"];
    fn check(&self) -> Result<(), String> {
        check_plan("data.previous_plan", &self.previous_plan)?;
        check_plan("data.plan", &self.plan)?;
        check_app_version("data.previous_app_version", &self.previous_app_version)?;
        check_app_version("data.app_version", &self.app_version)
    }
}

impl Detail for Deprovisioned {
    const TIMESTAMPS: &'static [&'static str] = &["deleted_at"];
    const OPTIONAL: &'static [&'static str] = &["plan"];
    fn check(&self) -> Result<(), String> {
        check_namespace("data.namespace", &self.namespace)?;
        if let Some(plan) = &self.plan {
            check_plan("data.plan", plan)?;
        }
        Ok(())
    }
}

impl Detail for Failed {
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        check_items_are_objects(data, "compensation_failed")
    }
    fn check(&self) -> Result<(), String> {
        check_non_empty("data.failed_step", &self.failed_step)?;
        check_non_empty("data.error", &self.error)?;
        for (i, step) in self.compensation.iter().enumerate() {
            check_non_empty(&format!("data.compensation[{i}]"), step)?;
        }
        for (i, failure) in self.compensation_failed.iter().enumerate() {
            check_non_empty(
                &format!("data.compensation_failed[{i}].step"),
                &failure.step,
            )?;
            check_non_empty(
                &format!("data.compensation_failed[{i}].error"),
                &failure.error,
            )?;
        }
        Ok(())
    }
}

impl Detail for Rejected {
    fn check(&self) -> Result<(), String> {
        check_non_empty("data.message", &self.message)
    }
}

impl Detail for DriftRepaired {
    const TIMESTAMPS: &'static [&'static str] = &["detected_at", "repaired_at"];
    const OPTIONAL: &'static [&'static str] = &["plan", "app_version"];
    fn check_raw(data: &Map<String, Value>) -> Result<(), String> {
        check_items_are_objects(data, "repaired")?;
        let items = get(data, "repaired")
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            // serde reads `[]` as absent: an empty list is left out instead.
            if item
                .get("fields")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                return Err(format!(
                    "data.repaired[{i}].fields is empty; leave it out instead"
                ));
            }
        }
        Ok(())
    }
    fn check(&self) -> Result<(), String> {
        check_namespace("data.namespace", &self.namespace)?;
        if let Some(plan) = &self.plan {
            check_plan("data.plan", plan)?;
        }
        if let Some(version) = &self.app_version {
            check_app_version("data.app_version", version)?;
        }
        if self.plan.is_some() != self.app_version.is_some() {
            return Err(
                "data.plan and data.app_version go together: both for a tenant with a record, \
                 neither for a deleted tenant's leftovers"
                    .into(),
            );
        }
        if self.repaired.is_empty() {
            return Err("data.repaired is empty; a repair puts back at least one object".into());
        }
        for (i, object) in self.repaired.iter().enumerate() {
            let at = format!("data.repaired[{i}]");
            check_api_version(&format!("{at}.api_version"), &object.api_version)?;
            check_kind(&format!("{at}.kind"), &object.kind)?;
            check_object_name(&format!("{at}.name"), &object.name)?;
            match (object.drift, object.fields.is_empty()) {
                (DriftKind::Modified, true) => {
                    return Err(format!(
                        "{at}.fields is missing: a modified object names the fields that differed"
                    ));
                }
                (DriftKind::Missing | DriftKind::Unexpected, false) => {
                    return Err(format!(
                        "{at}.fields is only for a modified object, not a {} one",
                        object.drift.as_str()
                    ));
                }
                _ => {}
            }
            for (j, field) in object.fields.iter().enumerate() {
                check_non_empty(&format!("{at}.fields[{j}]"), field)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- rules

/// Refuses an explicit `null` for optional fields (the schemas want the field
/// left out; serde would read `null` as absent).
fn check_not_null(data: &Map<String, Value>, optional: &[&str]) -> Result<(), String> {
    match optional
        .iter()
        .find(|f| data.get(**f) == Some(&Value::Null))
    {
        Some(field) => Err(format!(
            "data.{field} is null; leave an optional field out instead"
        )),
        None => Ok(()),
    }
}

/// Refuses items of the array `field` that are not JSON objects (serde also
/// reads a struct from an array).
fn check_items_are_objects(data: &Map<String, Value>, field: &str) -> Result<(), String> {
    let items = get(data, field).as_array().map_or(&[][..], Vec::as_slice);
    match items.iter().enumerate().find(|(_, item)| !item.is_object()) {
        Some((i, item)) => Err(format!(
            "data.{field}[{i}] must be a JSON object, not {}",
            kind_of(item)
        )),
        None => Ok(()),
    }
}

fn check_non_empty(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    Ok(())
}

fn check_plan(field: &str, plan: &str) -> Result<(), String> {
    if is_dns_label(plan, MAX_NAME_LEN) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid plan name: use 1 to {MAX_NAME_LEN} lower-case letters, \
         digits and '-', starting and ending with a letter or digit",
        truncated(plan)
    ))
}

fn check_namespace(field: &str, namespace: &str) -> Result<(), String> {
    if is_dns_label(namespace, MAX_NAME_LEN) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid namespace name: use 1 to {MAX_NAME_LEN} lower-case \
         letters, digits and '-', starting and ending with a letter or digit",
        truncated(namespace)
    ))
}

fn check_app_version(field: &str, version: &str) -> Result<(), String> {
    if is_label_value(version) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid app version: it must be a Kubernetes label value, 1 to 63 \
         letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        truncated(version)
    ))
}

fn check_api_version(field: &str, api_version: &str) -> Result<(), String> {
    if is_api_version(api_version) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid apiVersion: an optional group (a DNS-1123 subdomain) and \
         '/', then a version (a DNS-1123 label of at most {MAX_NAME_LEN} characters), at most \
         {MAX_API_VERSION_LEN} characters in all",
        truncated(api_version)
    ))
}

fn check_kind(field: &str, kind: &str) -> Result<(), String> {
    if is_kind(kind) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid kind: use 1 to {MAX_KIND_LEN} letters and digits, \
         starting with an upper-case letter",
        truncated(kind)
    ))
}

fn check_object_name(field: &str, name: &str) -> Result<(), String> {
    if is_dns_subdomain(name, MAX_OBJECT_NAME_LEN) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a valid object name: use 1 to {MAX_OBJECT_NAME_LEN} lower-case \
         letters, digits, '-' and '.', each '.'-separated part starting and ending with a \
         letter or digit",
        truncated(name)
    ))
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$` and at
/// most `max` characters.
fn is_dns_subdomain(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.split('.').all(|part| is_dns_label(part, max))
}

/// The schema's `apiVersion` pattern: `[<DNS-1123 subdomain>/]<DNS-1123 label
/// of at most 63 characters>`, at most [`MAX_API_VERSION_LEN`] characters.
fn is_api_version(s: &str) -> bool {
    let (group, version) = match s.split_once('/') {
        Some((group, version)) => (Some(group), version),
        None => (None, s),
    };
    s.len() <= MAX_API_VERSION_LEN
        && group.is_none_or(|g| is_dns_subdomain(g, MAX_API_VERSION_LEN))
        && is_dns_label(version, MAX_NAME_LEN)
}

/// `^[A-Z][A-Za-z0-9]*$` and at most [`MAX_KIND_LEN`] characters.
fn is_kind(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= MAX_KIND_LEN
        && b.first().is_some_and(u8::is_ascii_uppercase)
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// The uuid crate also reads the simple, braced and URN forms; the contract
/// (and the schemas' pattern) only has the hyphenated one.
fn check_uuid_text(field: &str, value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else {
        return Ok(()); // serde has already refused it
    };
    let b = s.as_bytes();
    let hyphenated = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if hyphenated {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not a UUID in hyphenated form (8-4-4-4-12 hexadecimal digits)",
        truncated(s)
    ))
}

/// jiff also reads other ISO 8601 forms (a space for `T`, no seconds, a
/// bracketed time zone); the contract (and the schemas' pattern) only has
/// RFC 3339 with an upper-case `T`, seconds and an offset.
fn check_rfc3339_text(field: &str, value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else {
        return Ok(()); // serde has already refused it
    };
    if is_rfc3339(s) {
        return Ok(());
    }
    Err(format!(
        "{field} {:?} is not an RFC 3339 date-time such as \"2025-03-14T09:26:53Z\"",
        truncated(s)
    ))
}

/// The schemas' `timestamp` pattern:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` with ranged fields.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    let date_time = num(0, 4).is_some()
        && sep(4, b'-')
        && num(5, 2).is_some_and(|m| (1..=12).contains(&m))
        && sep(7, b'-')
        && num(8, 2).is_some_and(|d| (1..=31).contains(&d))
        && sep(10, b'T')
        && num(11, 2).is_some_and(|h| h <= 23)
        && sep(13, b':')
        && num(14, 2).is_some_and(|m| m <= 59)
        && sep(16, b':')
        && num(17, 2).is_some_and(|s| s <= 60);
    if !date_time {
        return false;
    }
    let mut at = 19;
    if sep(at, b'.') {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return false;
        }
        at += 1 + digits;
    }
    match &b[at..] {
        b"Z" => true,
        [b'+' | b'-', ..] => {
            b.len() == at + 6
                && num(at + 1, 2).is_some_and(|h| h <= 23)
                && sep(at + 3, b':')
                && num(at + 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// The member `key` of `object`, `null` when absent.
fn get<'a>(object: &'a Map<String, Value>, key: &str) -> &'a Value {
    object.get(key).unwrap_or(&Value::Null)
}

/// At most 64 characters of `s`, for error messages.
fn truncated(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------- fixtures

#[cfg(test)]
impl TenantRequested {
    /// A valid request for tenant `acme` on plan `starter`, for tests.
    pub(crate) fn sample() -> Self {
        Self {
            tenant_id: TenantId::parse("acme").expect("valid tenant id"),
            plan: "starter".into(),
            app_version: None,
            values: None,
            metadata: None,
        }
    }

    pub(crate) fn with_plan(mut self, plan: &str) -> Self {
        self.plan = plan.into();
        self
    }

    pub(crate) fn with_app_version(mut self, version: &str) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Sets `metadata`; `metadata` must be a JSON object.
    pub(crate) fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(serde_json::from_value(metadata).expect("metadata is an object"));
        self
    }
}

#[cfg(test)]
impl TenantUpgraded {
    /// A valid upgrade of tenant `acme` to plan `pro`, for tests.
    pub(crate) fn sample() -> Self {
        Self {
            tenant_id: TenantId::parse("acme").expect("valid tenant id"),
            plan: Some("pro".into()),
            app_version: None,
            values: None,
            metadata: None,
        }
    }
}

#[cfg(test)]
impl TenantDeleted {
    /// A valid deletion of tenant `acme` without a reason, for tests.
    pub(crate) fn sample() -> Self {
        Self {
            tenant_id: TenantId::parse("acme").expect("valid tenant id"),
            reason: None,
            metadata: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::{Endpoint, IntentKind, RejectReason, RepairedObject};

    fn event_json<D: serde::Serialize>(event_type: EventType, data: D) -> Value {
        let tenant = TenantId::parse("acme").unwrap();
        serde_json::to_value(CloudEvent::new("billing", event_type, tenant, data)).unwrap()
    }

    fn requested() -> Value {
        event_json(EventType::Requested, TenantRequested::sample())
    }

    fn provisioned() -> Value {
        let detail = Provisioned {
            plan: "starter".into(),
            app_version: "1.4.2".into(),
            namespace: "tenant-acme".into(),
            endpoint: Endpoint {
                host: "app.tenant-acme.svc.cluster.local".into(),
                port: 8080,
            },
            release_revision: 1,
            resources: [("pods".to_owned(), "20".to_owned())].into(),
            completed_at: jiff::Timestamp::now(),
        };
        let data = Completion {
            tenant_id: TenantId::parse("acme").unwrap(),
            causation_id: uuid::Uuid::new_v4(),
            metadata: Map::new(),
            detail,
        };
        event_json(EventType::Provisioned, data)
    }

    /// A live tenant's repair: its quota edited, its NetworkPolicy deleted.
    fn drift_repaired() -> Value {
        let detected_at = jiff::Timestamp::now();
        let detail = DriftRepaired {
            namespace: "tenant-acme".into(),
            plan: Some("pro".into()),
            app_version: Some("2.4.1".into()),
            release_revision: 2,
            repaired: vec![
                RepairedObject {
                    api_version: "v1".into(),
                    kind: "ResourceQuota".into(),
                    name: "tenant-quota".into(),
                    drift: DriftKind::Modified,
                    fields: vec!["spec.hard.limits.cpu".into()],
                },
                RepairedObject {
                    api_version: "networking.k8s.io/v1".into(),
                    kind: "NetworkPolicy".into(),
                    name: "tenant-isolation".into(),
                    drift: DriftKind::Missing,
                    fields: Vec::new(),
                },
            ],
            detected_at,
            repaired_at: detected_at,
        };
        let data = Completion {
            tenant_id: TenantId::parse("acme").unwrap(),
            causation_id: uuid::Uuid::new_v4(),
            metadata: Map::new(),
            detail,
        };
        event_json(EventType::DriftRepaired, data)
    }

    /// `event` with the JSON pointer `at` set to `to` (or removed when `to` is `None`).
    fn edit(mut event: Value, at: &str, to: Option<Value>) -> Value {
        let (parent, key) = at.rsplit_once('/').unwrap();
        let object = event.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match to {
            Some(v) => object.insert(key.to_owned(), v),
            None => object.remove(key),
        };
        event
    }

    fn refused(event: &Value) -> String {
        match parse_typed(event) {
            Ok(e) => panic!("accepted {event}: {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn fixtures_round_trip() {
        let samples = [
            requested(),
            event_json(
                EventType::Requested,
                TenantRequested::sample()
                    .with_plan("pro")
                    .with_app_version("2.0.0")
                    .with_metadata(json!({"billing_account": "ba_123"})),
            ),
            event_json(EventType::Upgraded, TenantUpgraded::sample()),
            event_json(EventType::Deleted, TenantDeleted::sample()),
            provisioned(),
            drift_repaired(),
        ];
        for sample in samples {
            let typed = parse_typed(&sample).unwrap_or_else(|e| panic!("{sample}: {e}"));
            assert_eq!(typed.to_json(), sample);
            assert_eq!(typed.event_type().as_str(), sample["type"]);
        }
    }

    #[test]
    fn subject_must_be_the_data_tenant() {
        let event = edit(requested(), "/subject", Some(json!("globex")));
        let err = refused(&event);
        assert!(
            err.contains("\"globex\"") && err.contains("data.tenant_id \"acme\""),
            "{err}"
        );
        let event = edit(provisioned(), "/data/tenant_id", Some(json!("globex")));
        assert!(refused(&event).contains("differs from data.tenant_id"));
    }

    #[test]
    fn type_selects_the_variant() {
        // A requested payload under an outbound type lacks the completion fields.
        let data = TenantRequested::sample().with_metadata(json!({}));
        let event = edit(
            event_json(EventType::Requested, data),
            "/type",
            Some(json!("tenant.provisioned")),
        );
        assert_eq!(refused(&event), "data: missing field `causation_id`");
        let event = edit(requested(), "/type", Some(json!("tenant.exploded")));
        assert!(refused(&event).contains("not a contract event type"));
        let event = edit(requested(), "/type", None);
        assert_eq!(refused(&event), "missing attribute `type`");
        assert!(refused(&json!([1])).contains("JSON object"));
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        let event = edit(requested(), "/data/plan", Some(json!("Pro!")));
        let err = refused(&event);
        assert!(
            err.starts_with("data.plan \"Pro!\" is not a valid plan name: "),
            "{err}"
        );
        let event = edit(requested(), "/data/app_version", Some(json!("2.0.0+build")));
        assert!(refused(&event).starts_with("data.app_version \"2.0.0+build\""));
        let event = edit(requested(), "/specversion", Some(json!("0.3")));
        assert!(refused(&event).starts_with("specversion: "));
        let event = edit(requested(), "/source", Some(json!("")));
        assert!(refused(&event).starts_with("source \"\" is 0 characters long"));
        let event = edit(requested(), "/source", Some(json!("s".repeat(257))));
        assert!(refused(&event).contains("257 characters"));
        let event = edit(requested(), "/data/plan", None);
        assert!(refused(&event).contains("missing field `plan`"));
        let event = edit(requested(), "/subject", None);
        assert_eq!(refused(&event), "missing attribute `subject`");
    }

    #[test]
    fn upgrade_must_change_something() {
        let mut upgrade = TenantUpgraded::sample();
        upgrade.plan = None;
        let event = event_json(EventType::Upgraded, upgrade.clone());
        assert!(refused(&event).contains("at least one of plan, app_version, values"));
        upgrade.values = Some(Map::new());
        assert!(parse_typed(&event_json(EventType::Upgraded, upgrade)).is_ok());
    }

    #[test]
    fn serde_leniencies_are_refused() {
        // null for an optional field: serde reads it as absent.
        let event = edit(requested(), "/data/app_version", Some(Value::Null));
        assert!(refused(&event).contains("data.app_version is null"));
        // a struct from an array: serde reads fields by position.
        let event = edit(requested(), "/data", Some(json!(["acme", "starter"])));
        assert!(refused(&event).contains("data must be a JSON object"));
        let event = edit(
            provisioned(),
            "/data/endpoint",
            Some(json!(["app.example", 80])),
        );
        assert!(refused(&event).contains("data.endpoint must be a JSON object"));
        // metadata is defaulted by serde but required on completion events.
        let event = edit(provisioned(), "/data/metadata", None);
        assert!(refused(&event).contains("data.metadata"));
        // other UUID forms.
        for id in [
            "0b8a3c5e9f0d4e7a8b1c2d3e4f5a6b7c",
            "{0b8a3c5e-9f0d-4e7a-8b1c-2d3e4f5a6b7c}",
            "urn:uuid:0b8a3c5e-9f0d-4e7a-8b1c-2d3e4f5a6b7c",
        ] {
            let event = edit(requested(), "/id", Some(json!(id)));
            assert!(refused(&event).contains("hyphenated"), "{id}");
            let event = edit(provisioned(), "/data/causation_id", Some(json!(id)));
            assert!(refused(&event).contains("data.causation_id"), "{id}");
        }
    }

    #[test]
    fn times_are_rfc3339() {
        for ok in [
            "2025-03-14T09:26:53Z",
            "2025-03-14T09:26:53.589Z",
            "2025-03-14T10:26:53+01:00",
            "2025-03-14T04:26:53-05:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
            assert!(parse_typed(&edit(requested(), "/time", Some(json!(ok)))).is_ok());
        }
        // Each of these is ISO 8601 or otherwise read by jiff, or plainly wrong.
        for bad in [
            "2025-03-14 09:26:53Z",
            "2025-03-14t09:26:53Z",
            "2025-03-14T09:26Z",
            "2025-03-14T09:26:53",
            "2025-03-14T09:26:53.Z",
            "2025-03-14T09:26:53,5Z",
            "2025-03-14T09:26:53+0100",
            "2025-03-14T09:26:53+01:00[Europe/Paris]",
            "2025-13-14T09:26:53Z",
            "20250314T092653Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
            let event = edit(requested(), "/time", Some(json!(bad)));
            assert!(refused(&event).starts_with("time"), "{bad}");
            let event = edit(provisioned(), "/data/completed_at", Some(json!(bad)));
            assert!(refused(&event).starts_with("data.completed_at"), "{bad}");
        }
    }

    #[test]
    fn completion_rules() {
        let event = edit(provisioned(), "/data/endpoint/port", Some(json!(0)));
        assert!(refused(&event).contains("data.endpoint.port is 0"));
        let event = edit(provisioned(), "/data/endpoint/host", Some(json!("")));
        assert_eq!(refused(&event), "data.endpoint.host is empty");
        let event = edit(provisioned(), "/data/namespace", Some(json!("Tenant-Acme")));
        assert!(refused(&event).contains("not a valid namespace name"));

        let data = Completion {
            tenant_id: TenantId::parse("acme").unwrap(),
            causation_id: uuid::Uuid::new_v4(),
            metadata: Map::new(),
            detail: Failed {
                intent: IntentKind::Requested,
                failed_step: "install_release".into(),
                error: "chart refused the values".into(),
                compensated: true,
                compensation: vec!["create_namespace".into(), String::new()],
                compensation_failed: Vec::new(),
            },
        };
        let event = event_json(EventType::Failed, data);
        assert_eq!(refused(&event), "data.compensation[1] is empty");
        // serde would read a CompensationFailure from an array.
        let mut event = event;
        event["data"]["compensation"] = json!(["create_namespace"]);
        event["data"]["compensation_failed"] = json!([["install_release", "timeout"]]);
        assert!(refused(&event).contains("data.compensation_failed[0] must be a JSON object"));

        let data = Completion {
            tenant_id: TenantId::parse("acme").unwrap(),
            causation_id: uuid::Uuid::new_v4(),
            metadata: Map::new(),
            detail: Rejected {
                reason: RejectReason::UnknownPlan,
                message: String::new(),
            },
        };
        let event = event_json(EventType::Rejected, data);
        assert_eq!(refused(&event), "data.message is empty");
    }

    #[test]
    fn drift_repaired_rules() {
        let err = refused(&edit(drift_repaired(), "/data/repaired", Some(json!([]))));
        assert!(err.starts_with("data.repaired is empty"), "{err}");
        let event = edit(drift_repaired(), "/data/repaired/0/fields", None);
        assert!(refused(&event).contains("a modified object names the fields"));
        let event = edit(drift_repaired(), "/data/repaired/0/fields", Some(json!([])));
        assert!(refused(&event).contains("data.repaired[0].fields is empty"));
        let event = edit(
            drift_repaired(),
            "/data/repaired/1/fields",
            Some(json!(["spec.podSelector"])),
        );
        assert!(refused(&event).contains("only for a modified object, not a missing one"));
        let event = edit(
            drift_repaired(),
            "/data/repaired/0/fields",
            Some(json!([""])),
        );
        assert_eq!(refused(&event), "data.repaired[0].fields[0] is empty");
        let mut event = drift_repaired();
        event["data"]["repaired"][1] = json!(["v1", "Namespace", "tenant-acme", "unexpected"]);
        assert!(refused(&event).contains("data.repaired[1] must be a JSON object"));
        let event = edit(drift_repaired(), "/data/app_version", None);
        assert!(refused(&event).contains("go together"));
        let event = edit(drift_repaired(), "/data/plan", Some(Value::Null));
        assert!(refused(&event).contains("data.plan is null"));
        // A deleted tenant's leftovers: neither plan nor version.
        let event = edit(drift_repaired(), "/data/app_version", None);
        let event = edit(event, "/data/plan", None);
        assert!(parse_typed(&event).is_ok());

        for (at, ok, bad) in [
            ("kind", "NetworkPolicy", "networkPolicy"),
            (
                "api_version",
                "networking.k8s.io/v1",
                "networking.k8s.io/v1/x",
            ),
            ("api_version", "apps/v1", "/v1"),
            ("name", "sh.helm.release.v1.tenant.v2", "tenant..quota"),
        ] {
            let pointer = format!("/data/repaired/1/{at}");
            assert!(parse_typed(&edit(drift_repaired(), &pointer, Some(json!(ok)))).is_ok());
            let err = refused(&edit(drift_repaired(), &pointer, Some(json!(bad))));
            assert!(err.starts_with(&format!("data.repaired[1].{at}")), "{err}");
        }
    }

    #[test]
    fn object_rules_match_the_schema_patterns() {
        for ok in [
            "v1",
            "apps/v1",
            "networking.k8s.io/v1",
            "example.com/v1beta1",
        ] {
            assert!(is_api_version(ok), "{ok:?}");
        }
        let long_group = format!("{}/v1", "a".repeat(MAX_API_VERSION_LEN - 3));
        assert!(is_api_version(&long_group));
        for bad in [
            "",
            "/v1",
            "apps/",
            "Apps/v1",
            "a/b/v1",
            "apps/V1",
            ".apps/v1",
            &format!("{}/v1", "a".repeat(MAX_API_VERSION_LEN - 2)),
            &format!("apps/{}", "v".repeat(64)),
        ] {
            assert!(!is_api_version(bad), "{bad:?}");
        }
        for ok in ["Namespace", "ResourceQuota", "V1Thing", &"K".repeat(63)] {
            assert!(is_kind(ok), "{ok:?}");
        }
        for bad in ["", "namespace", "Network-Policy", "1Kind", &"K".repeat(64)] {
            assert!(!is_kind(bad), "{bad:?}");
        }
        assert!(is_dns_subdomain("a.b-c.d", 253) && is_dns_subdomain(&"a".repeat(253), 253));
        for bad in ["", "a.", ".a", "a..b", "A", "a_b", &"a".repeat(254)] {
            assert!(!is_dns_subdomain(bad, 253), "{bad:?}");
        }
    }

    #[test]
    fn deprovisioned_plan_is_optional_but_not_null() {
        let data = Completion {
            tenant_id: TenantId::parse("acme").unwrap(),
            causation_id: uuid::Uuid::new_v4(),
            metadata: Map::new(),
            detail: Deprovisioned {
                namespace: "tenant-acme".into(),
                plan: Some("pro".into()),
                deleted_at: jiff::Timestamp::now(),
            },
        };
        let event = event_json(EventType::Deprovisioned, data);
        assert_eq!(parse_typed(&event).unwrap().to_json(), event);
        assert!(parse_typed(&edit(event.clone(), "/data/plan", None)).is_ok());
        let err = refused(&edit(event.clone(), "/data/plan", Some(Value::Null)));
        assert!(err.contains("data.plan is null"), "{err}");
        let err = refused(&edit(event, "/data/plan", Some(json!("Pro"))));
        assert!(err.starts_with("data.plan \"Pro\""), "{err}");
    }

    #[test]
    fn delete_reason_is_bounded() {
        let mut delete = TenantDeleted::sample();
        delete.reason = Some("é".repeat(MAX_DELETE_REASON_LEN));
        assert!(parse_typed(&event_json(EventType::Deleted, delete.clone())).is_ok());
        delete.reason = Some("é".repeat(MAX_DELETE_REASON_LEN + 1));
        let err = refused(&event_json(EventType::Deleted, delete));
        assert!(err.contains("1025 characters"), "{err}");
    }
}
