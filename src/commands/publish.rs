//! `tenant-worker publish`: publishes a lifecycle event as billing or signup
//! would (validated with the worker's own decoder first, so the CLI never sends
//! what the worker would dead-letter), and optionally waits for its completion
//! event.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::output;
use crate::config::{PublishArgs, PublishKind};
use crate::contract::{
    CloudEvent, EventType, LIFECYCLE_STREAM, STATUS_STREAM, STATUS_SUBJECT_PREFIX, TenantDeleted,
    TenantId, TenantRequested, TenantUpgraded, decode_inbound,
};
use crate::error::Error;

fn object_arg(flag: &str, text: Option<&str>) -> Result<Option<Map<String, Value>>, Error> {
    let Some(text) = text else { return Ok(None) };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(Error::Setup(format!(
            "{flag} must be a JSON object, got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(Error::Setup(format!("{flag} is not valid JSON: {e}"))),
    }
}

/// Builds the event the arguments describe.
///
/// # Errors
/// [`Error::Setup`] naming the argument that is wrong.
pub fn build_event(args: &PublishArgs) -> Result<CloudEvent<Value>, Error> {
    let tenant = TenantId::parse(&args.tenant).map_err(|e| Error::Setup(e.to_string()))?;
    let values = object_arg("--values", args.values.as_deref())?;
    let metadata = object_arg("--metadata", args.metadata.as_deref())?;
    let (event_type, data) = match args.kind {
        PublishKind::Requested => {
            let plan = args.plan.clone().ok_or_else(|| {
                Error::Setup("publish requested needs --plan (e.g. --plan standard)".into())
            })?;
            let d = TenantRequested {
                tenant_id: tenant.clone(),
                plan,
                app_version: args.app_version.clone(),
                values,
                metadata,
            };
            (EventType::Requested, serde_json::to_value(d))
        }
        PublishKind::Upgraded => {
            let d = TenantUpgraded {
                tenant_id: tenant.clone(),
                plan: args.plan.clone(),
                app_version: args.app_version.clone(),
                values,
                metadata,
            };
            (EventType::Upgraded, serde_json::to_value(d))
        }
        PublishKind::Deleted => {
            let d = TenantDeleted {
                tenant_id: tenant.clone(),
                reason: args.reason.clone(),
                metadata,
            };
            (EventType::Deleted, serde_json::to_value(d))
        }
    };
    let mut event = CloudEvent::new(
        &args.source,
        event_type,
        tenant,
        data.expect("event data serializes"),
    );
    if let Some(id) = args.id {
        event.id = id;
    }
    // The worker's own decoder is the judge of what is well-formed.
    let subject = event_type.subject(&event.subject);
    let payload = serde_json::to_vec(&event).expect("events serialize");
    decode_inbound(&subject, &payload, usize::MAX)
        .map_err(|e| Error::Setup(format!("this event would be dead-lettered: {e}")))?;
    Ok(event)
}

/// Publishes `event` with `Nats-Msg-Id` set to its id; returns the stream
/// sequence and whether the stream dropped it as a duplicate.
///
/// # Errors
/// [`Error::Nats`]; a missing stream is explained.
pub async fn publish_event(
    js: &jetstream::Context,
    event: &CloudEvent<Value>,
) -> Result<(u64, bool), Error> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
    headers.insert("Content-Type", "application/cloudevents+json");
    let payload = Bytes::from(serde_json::to_vec(event).expect("events serialize"));
    let ack = js
        .publish_with_headers(event.event_type.subject(&event.subject), headers, payload)
        .await
        .map_err(|e| Error::nats("publish", e))?
        .await
        .map_err(|e| {
            Error::nats(
                "publish",
                format!(
                    "{e} (does stream {LIFECYCLE_STREAM} exist? the worker creates it at start)"
                ),
            )
        })?;
    Ok((ack.sequence, ack.duplicate))
}

/// Waits up to `timeout` for the completion event of inbound event `id` about
/// `tenant`, reading `TENANT_STATUS` from the start (so an event completed
/// earlier is found too).
///
/// # Errors
/// [`Error::Setup`] on timeout; [`Error::Nats`] when the stream cannot be read.
pub async fn wait_for_completion(
    js: &jetstream::Context,
    tenant: &TenantId,
    id: Uuid,
    timeout: Duration,
) -> Result<Value, Error> {
    let stream = js
        .get_stream(STATUS_STREAM)
        .await
        .map_err(|e| Error::nats("open TENANT_STATUS", e))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("{STATUS_SUBJECT_PREFIX}.*.{tenant}"),
            deliver_policy: DeliverPolicy::All,
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| Error::nats("read TENANT_STATUS", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Error::nats("read TENANT_STATUS", e))?;
    let wanted = id.to_string();
    let found = tokio::time::timeout(timeout, async {
        while let Some(msg) = messages.next().await {
            let Ok(msg) = msg else { continue };
            let Ok(event) = serde_json::from_slice::<Value>(&msg.payload) else {
                continue;
            };
            if event["data"]["causation_id"].as_str() == Some(wanted.as_str()) {
                return Some(event);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => Ok(event),
        _ => Err(Error::Setup(format!(
            "no completion event for {id} within {timeout:?}: is a worker running against this NATS?"
        ))),
    }
}

/// Runs `tenant-worker publish`.
///
/// # Errors
/// Bad arguments, NATS failures, or no completion event within `--wait`.
pub async fn run(args: &PublishArgs) -> Result<(), Error> {
    let event = build_event(args)?;
    let client = args.nats.connect("tenant-worker-cli").await?;
    let js = jetstream::new(client);
    let (sequence, duplicate) = publish_event(&js, &event).await?;
    output::line(format_args!(
        "published {} {} for tenant {} (stream sequence {sequence}{})",
        event.event_type,
        event.id,
        event.subject,
        if duplicate {
            "; the stream already had this id and dropped it"
        } else {
            ""
        }
    ))?;
    if args.wait > 0 {
        let completion = wait_for_completion(
            &js,
            &event.subject,
            event.id,
            Duration::from_secs(args.wait),
        )
        .await?;
        output::line(serde_json::to_string_pretty(&completion).expect("JSON prints"))?;
    }
    Ok(())
}
