//! Logs and traces for both services.
//!
//! - Logs: JSON lines when stderr is not a terminal (containers), human-readable text on a
//!   terminal; level from `RUST_LOG` (default `info`). Each line lists the spans it happened
//!   in, so every line of a request carries the request span's `trace_id` and
//!   `trace_identifier`.
//! - Traces: `tracing` spans become OpenTelemetry spans. They are exported over OTLP
//!   (HTTP/protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `OTEL_SERVICE_NAME` and
//!   `OTEL_RESOURCE_ATTRIBUTES` are honoured. Trace ids exist either way, so logs and the
//!   `traceparent` header sent to perspectives (W3C Trace Context) always carry one.

use std::io::IsTerminal as _;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the trace pipeline alive; flushes and shuts it down when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Flushes the batch processor; errors at exit have nowhere useful to go.
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber (once; later calls return an inert guard). `service` is the
/// OpenTelemetry service name unless `OTEL_SERVICE_NAME` says otherwise.
pub fn init(service: &str) -> Telemetry {
    // The exporter's HTTP client is built on rustls: the provider must exist first.
    crate::tls::install_crypto_provider();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = build_provider(service);
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("mpic"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = if std::io::stderr().is_terminal() {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    Telemetry {
        provider: installed.is_ok().then_some(provider),
    }
}

/// A tracer provider: with an OTLP exporter when an endpoint is configured, else one that
/// only assigns ids.
fn build_provider(service: &str) -> SdkTracerProvider {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !endpoint {
        return builder.build();
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build();
    match exporter {
        Ok(e) => builder.with_batch_exporter(e).build(),
        Err(e) => {
            eprintln!("telemetry: OTLP exporter not started: {e}");
            builder.build()
        }
    }
}

/// Makes `span` continue the W3C `traceparent` in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`) of `span`, to send with an outgoing request.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// The 32-hex-digit trace id of `span` (all zeros when tracing is not installed).
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
