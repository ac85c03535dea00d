//! Decoding of inbound messages: size limit, JSON, the JSON Schema of the
//! event type (the checked-in `schemas/`), then the typed parse with the checks
//! a schema cannot express (the subject names the same tenant as the data,
//! the NATS subject matches the type and tenant).
//!
//! Every failure says precisely what is wrong, for the dead-letter reason.

use std::sync::LazyLock;

use serde_json::Value;

use super::typed::{TypedEvent, parse_typed};
use super::{EventType, InboundEvent, Intent};

/// Why an inbound message is not a usable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct DecodeError {
    /// The class of failure; names the dead-letter subject token.
    pub kind: DecodeErrorKind,
    /// What exactly is wrong (field, rule, schema complaints), for the dead-letter reason.
    pub message: String,
}

/// The class of a [`DecodeError`]; its `as_str` is the dead-letter subject token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The payload is larger than the configured limit.
    TooLarge,
    /// The payload is not JSON (or not UTF-8).
    MalformedJson,
    /// `type` is missing or is not an inbound event type.
    UnknownType,
    /// The event breaks its type's JSON Schema.
    SchemaViolation,
    /// The event is well-formed but inconsistent (subject vs. data, NATS subject vs. type).
    Inconsistent,
}

impl DecodeErrorKind {
    /// The snake_case name, e.g. `schema_violation`: the token in `tenant.deadletter.<reason>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::MalformedJson => "malformed_json",
            Self::UnknownType => "unknown_type",
            Self::SchemaViolation => "schema_violation",
            Self::Inconsistent => "inconsistent",
        }
    }
}

impl std::fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn err(kind: DecodeErrorKind, message: impl Into<String>) -> DecodeError {
    DecodeError {
        kind,
        message: message.into(),
    }
}

macro_rules! schema_text {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../schemas/",
            $name,
            ".schema.json"
        ))
    };
}

/// The checked-in JSON Schema text of `event_type`.
pub fn schema_for(event_type: EventType) -> &'static str {
    match event_type {
        EventType::Requested => schema_text!("tenant.requested"),
        EventType::Upgraded => schema_text!("tenant.upgraded"),
        EventType::Deleted => schema_text!("tenant.deleted"),
        EventType::Provisioned => schema_text!("tenant.provisioned"),
        EventType::UpgradeCompleted => schema_text!("tenant.upgrade_completed"),
        EventType::Deprovisioned => schema_text!("tenant.deprovisioned"),
        EventType::Failed => schema_text!("tenant.failed"),
        EventType::Rejected => schema_text!("tenant.rejected"),
        EventType::DriftRepaired => schema_text!("tenant.drift_repaired"),
    }
}

fn compile(event_type: EventType) -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(schema_for(event_type)).expect("checked-in schema is JSON");
    // Draft 2020-12 treats `format` as an annotation unless told otherwise.
    // Asserted here, a `time` that matches the pattern but is no date
    // (`2024-02-30T12:00:00Z`) is a schema violation like any other bad value,
    // not an "inconsistent" event found later by the typed parse.
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("checked-in schema compiles")
}

static VALIDATORS: LazyLock<[(EventType, jsonschema::Validator); 3]> = LazyLock::new(|| {
    [
        (EventType::Requested, compile(EventType::Requested)),
        (EventType::Upgraded, compile(EventType::Upgraded)),
        (EventType::Deleted, compile(EventType::Deleted)),
    ]
});

/// Most schema errors listed in one dead-letter reason.
const MAX_SCHEMA_ERRORS: usize = 5;

/// Decodes and validates an inbound message published on `nats_subject`.
///
/// # Errors
/// A [`DecodeError`] naming what is wrong: too large, not JSON, unknown type,
/// the schema's complaints with their JSON pointers, or an inconsistency such as
/// a `subject` that is not `data.tenant_id` or a NATS subject that does not match
/// the event's type and tenant.
pub fn decode_inbound(
    nats_subject: &str,
    payload: &[u8],
    max_bytes: usize,
) -> Result<InboundEvent, DecodeError> {
    if payload.len() > max_bytes {
        return Err(err(
            DecodeErrorKind::TooLarge,
            format!(
                "payload is {} bytes; the limit is {max_bytes}",
                payload.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| err(DecodeErrorKind::MalformedJson, format!("not JSON: {e}")))?;
    let type_name = value.get("type").and_then(Value::as_str).ok_or_else(|| {
        err(
            DecodeErrorKind::UnknownType,
            "missing string attribute `type`",
        )
    })?;
    let event_type = EventType::parse(type_name)
        .filter(|t| t.is_inbound())
        .ok_or_else(|| {
            err(
                DecodeErrorKind::UnknownType,
                format!(
                    "`type` {type_name:?} is not an inbound event type \
                     (tenant.requested, tenant.upgraded, tenant.deleted)"
                ),
            )
        })?;
    let validator = &VALIDATORS
        .iter()
        .find(|(t, _)| *t == event_type)
        .expect("every inbound type has a validator")
        .1;
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .take(MAX_SCHEMA_ERRORS)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if !problems.is_empty() {
        return Err(err(
            DecodeErrorKind::SchemaViolation,
            format!("{type_name} breaks its schema: {}", problems.join("; ")),
        ));
    }
    // The schema has passed, so what the typed parse still refuses is what a
    // schema cannot express: values that contradict each other.
    let typed = parse_typed(&value).map_err(|e| err(DecodeErrorKind::Inconsistent, e))?;
    let replay_as_of = match value.get(super::REPLAY_AS_OF) {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            err(
                DecodeErrorKind::SchemaViolation,
                format!("/{}: the extension attribute must be a stream sequence (a non-negative integer), not {v}", super::REPLAY_AS_OF),
            )
        })?),
    };
    let event = match typed {
        TypedEvent::Requested(e) => InboundEvent {
            id: e.id,
            source: e.source,
            time: e.time,
            tenant_id: e.subject,
            intent: Intent::Requested(e.data),
            replay_as_of,
        },
        TypedEvent::Upgraded(e) => InboundEvent {
            id: e.id,
            source: e.source,
            time: e.time,
            tenant_id: e.subject,
            intent: Intent::Upgraded(e.data),
            replay_as_of,
        },
        TypedEvent::Deleted(e) => InboundEvent {
            id: e.id,
            source: e.source,
            time: e.time,
            tenant_id: e.subject,
            intent: Intent::Deleted(e.data),
            replay_as_of,
        },
        other => {
            return Err(err(
                DecodeErrorKind::UnknownType,
                format!("{} is not an inbound event", other.event_type()),
            ));
        }
    };
    let expected = event_type.subject(&event.tenant_id);
    if nats_subject != expected {
        return Err(err(
            DecodeErrorKind::Inconsistent,
            format!(
                "a {type_name} event about tenant {} must be published on {expected}, not {nats_subject}",
                event.tenant_id
            ),
        ));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::{CloudEvent, TenantId, TenantRequested};

    fn requested(time: &str) -> Vec<u8> {
        let tenant = TenantId::parse("acme").unwrap();
        let data = TenantRequested {
            tenant_id: tenant.clone(),
            plan: "free".into(),
            app_version: None,
            values: None,
            metadata: None,
        };
        let mut event = serde_json::to_value(CloudEvent::new(
            "signup",
            EventType::Requested,
            tenant,
            data,
        ))
        .unwrap();
        event["time"] = json!(time);
        serde_json::to_vec(&event).unwrap()
    }

    #[test]
    fn a_time_that_is_no_date_is_a_schema_violation() {
        let subject = "tenant.lifecycle.requested.acme";
        assert!(decode_inbound(subject, &requested("2024-02-29T12:00:00Z"), 4096).is_ok());
        let e = decode_inbound(subject, &requested("2024-02-30T12:00:00Z"), 4096).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::SchemaViolation, "{e}");
        assert!(e.message.contains("/time"), "{e}");
    }
}
