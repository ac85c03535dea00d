//! Logging and tracing set-up.
//!
//! - Logs: human-readable text or JSON lines on stderr, filtered by `RUST_LOG`
//!   (default `info` for long-running commands, `warn` for one-shot CLI
//!   commands, whose output is their result); coloured only on a terminal and
//!   without `NO_COLOR`.
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans are exported over OTLP
//!   (HTTP, protobuf; plain `http://`, as to a collector beside the worker: this
//!   build has no TLS for OTLP), configured by the standard `OTEL_*` variables
//!   (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, ...); otherwise nothing
//!   is exported; `OTEL_SDK_DISABLED=true` turns it off. Either way the
//!   trace context travels: spans get ids and published events carry them. The worker's spans (one per inbound event, per saga step)
//!   and kube's one per Kubernetes request are exported whatever `RUST_LOG`
//!   says. The W3C TraceContext propagator is always installed: the event span
//!   continues the `traceparent` of the inbound NATS message, and published
//!   events carry the trace context in their headers.

use std::io::IsTerminal as _;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::LogFormat;

/// Flushes and stops the trace exporter when dropped (at the end of `main`).
#[must_use]
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber (logs with `default_level` unless `RUST_LOG`
/// is set; OTLP traces when configured) and the TraceContext propagator.
/// Call once, from `main`.
pub fn init(format: LogFormat, default_level: &str) -> TelemetryGuard {
    install_propagator();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let colour = colour_wanted(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);
    // Without an exporter the trace context still travels (the contract says
    // the worker continues `traceparent` and sets it on what it publishes):
    // spans get ids, and only those under a sampled inbound trace record.
    let exporter = otlp_provider();
    let exporting = exporter.is_some();
    let provider = exporter.unwrap_or_else(|| {
        SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .build()
    });
    let traces = otel_layer(provider.tracer("tenant-worker"), exporting);
    Registry::default().with(logs).with(traces).init();
    TelemetryGuard(Some(provider))
}

/// Whether log lines may be coloured: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
/// A file, a pipe or a log collector gets plain text.
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The W3C TraceContext propagator, globally.
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// The layer that turns the worker's spans, and, when `exporting`, kube's
/// per-request spans, into OpenTelemetry spans of `tracer` (what it records
/// does not depend on `RUST_LOG`).
///
/// Without an exporter nothing leaves the process, and the worker's own spans
/// are kept only to carry the trace context onto what it publishes: kube's
/// spans (one per request, entered on every poll) are then left out, and so
/// are the busy/idle time of every span and the log events as span events. Together they were a twentieth of
/// the worker's CPU under load.
pub fn otel_layer<S, T>(tracer: T, exporting: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: opentelemetry::trace::Tracer + Send + Sync + 'static,
    T::Span: Send + Sync,
{
    let targets = Targets::new().with_target("tenant_worker", LevelFilter::INFO);
    // kube's `HTTP` span per request is at debug level.
    let targets = if exporting {
        targets.with_target("kube_client", LevelFilter::DEBUG)
    } else {
        targets
    };
    // Log events become span events only when they can be exported.
    let events = filter_fn(move |meta| exporting || meta.is_span());
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(exporting)
        .with_filter(targets.and(events))
}

/// An OTLP exporter when the standard variables ask for one.
fn otlp_provider() -> Option<SdkTracerProvider> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !configured || disabled {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("warning: OTLP trace export is configured but cannot start: {e}; no traces");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tenant-worker".into()),
        )
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

/// Reads the trace context from NATS headers.
struct HeaderExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes the trace context into NATS headers.
struct HeaderInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Makes `span` continue the trace of an inbound message's headers
/// (`traceparent`, `tracestate`), if they carry one.
pub fn continue_trace(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let Some(headers) = headers else { return };
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Fails only when the span is disabled (no trace layer): nothing to continue.
    let _ = span.set_parent(parent);
}

/// Adds the current span's trace context to `headers` of an outgoing message.
pub fn inject_current(headers: &mut async_nats::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers));
    });
}

#[cfg(test)]
mod tests {
    use super::colour_wanted;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        let set = |v: &'static str| Some(std::ffi::OsStr::new(v));
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, set("")), "an empty NO_COLOR is unset");
        assert!(!colour_wanted(true, set("1")));
        assert!(!colour_wanted(false, None), "a pipe or a file");
        assert!(!colour_wanted(false, set("1")));
    }
}
