//! Logs and traces for both services.
//!
//! - Logs: JSON lines when stderr is not a terminal (containers), human-readable text on a
//!   terminal; level from `RUST_LOG` (default `info`). Each line lists the request span (in the
//!   coordinator) or the check span (in a perspective) it happened in, so every line of a
//!   request carries its `trace_id` and `trace_identifier`.
//! - Traces: `tracing` spans become OpenTelemetry spans, exported over OTLP (HTTP/protobuf),
//!   when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set;
//!   `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` are honoured.
//! - Without an endpoint no OpenTelemetry span is built (that costs more CPU per request than
//!   the check itself): a small layer gives every span a W3C trace id and span id instead,
//!   inherited from its parent or from the incoming `traceparent`, so logs and the
//!   `traceparent` sent to perspectives carry the same ids either way.

use std::io::IsTerminal as _;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rand::RngExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
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
    let provider = exporting().then(|| build_provider(service)).flatten();
    let (otel, ids) = match &provider {
        Some(p) => (
            Some(tracing_opentelemetry::layer().with_tracer(p.tracer("mpic"))),
            None,
        ),
        None => (None, Some(TraceIds)),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(ids);
    let installed = if std::io::stderr().is_terminal() {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry.with(json_logs(std::io::stderr)).try_init()
    };
    let provider = provider.filter(|_| installed.is_ok());
    DETAIL_SPANS.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
    Telemetry { provider }
}

/// The spans JSON log lines list: a request's and a check's, which carry `trace_id` and
/// `trace_identifier`. The log layer formats the fields of every span it sees when the span is
/// created; the many short spans inside them (perspective calls, DNS lookups) would be
/// formatted for nothing, since lines within them already carry the ids of the outer span.
const LOGGED_SPANS: [&str; 2] = ["mpic.request", "mpic.check"];

fn logged(meta: &tracing::Metadata<'_>) -> bool {
    !meta.is_span() || LOGGED_SPANS.contains(&meta.name())
}

/// The JSON log layer: one line per event, its fields flattened, with [`LOGGED_SPANS`]; the
/// [`JSON_VALUED`] fields of [`JSON_VALUED_TARGET`] events are written as JSON values.
fn json_logs<S, W>(writer: W) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    let json = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true);
    tracing_subscriber::fmt::layer()
        .event_format(JsonValued(json))
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .with_writer(writer)
        .with_filter(tracing_subscriber::filter::filter_fn(logged))
}

/// The target whose events may carry fields holding JSON text: the audit event.
pub const JSON_VALUED_TARGET: &str = "mpic::audit";

/// The fields of [`JSON_VALUED_TARGET`] events that hold JSON text (recorded with `%`), to be
/// logged as the JSON they hold rather than as a string: `tracing` fields are scalars, and the
/// audit event lists each perspective as an object.
pub const JSON_VALUED: [&str; 1] = ["perspectives"];

/// The JSON event format, with [`JSON_VALUED`] fields inlined.
struct JsonValued<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JsonValued<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().target() != JSON_VALUED_TARGET {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        for key in JSON_VALUED {
            if let Some(inlined) = inline_json_field(&line, key) {
                line = inlined;
            }
        }
        writer.write_str(&line)
    }
}

/// `line` (a JSON object on one line) with the string value of `key` replaced by the JSON
/// text it holds, the other fields in place; `None` when there is no such field or it does
/// not hold JSON.
fn inline_json_field(line: &str, key: &str) -> Option<String> {
    // Inside a JSON string every quote is escaped, so an unescaped `"key":` is a key.
    let marker = format!("\"{key}\":");
    let start = line.find(&marker)? + marker.len();
    let mut values = serde_json::Deserializer::from_str(&line[start..]).into_iter::<String>();
    let text = values.next()?.ok()?;
    let end = start + values.byte_offset();
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(format!("{}{}{}", &line[..start], value, &line[end..]))
}

/// Set by [`init`] when spans are exported.
static DETAIL_SPANS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether to build the spans only a trace exporter reads (one per perspective call, per DNS
/// lookup, per TLS handshake): true when [`init`] installed an OTLP exporter. Logs list only
/// the request and check spans, and trace ids come from those, so without an exporter the
/// finer spans would cost CPU and memory for nothing.
pub fn detail_spans() -> bool {
    DETAIL_SPANS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `tracing::info_span!(…)` when [`detail_spans`] is on, else a disabled span: for the spans
/// only a trace exporter reads.
#[macro_export]
macro_rules! detail_span {
    ($($arg:tt)*) => {
        if $crate::telemetry::detail_spans() {
            ::tracing::info_span!($($arg)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Whether an OTLP endpoint is configured.
fn exporting() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// A tracer provider exporting over OTLP, or `None` (said on stderr) when the exporter cannot
/// be built.
fn build_provider(service: &str) -> Option<SdkTracerProvider> {
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build();
    match exporter {
        Ok(e) => Some(
            SdkTracerProvider::builder()
                .with_resource(resource.build())
                .with_batch_exporter(e)
                .build(),
        ),
        Err(e) => {
            eprintln!("telemetry: OTLP exporter not started: {e}");
            None
        }
    }
}

/// The W3C ids of a span when no OpenTelemetry layer is installed.
#[derive(Debug, Clone, Copy)]
struct Ids {
    trace: TraceId,
    span: SpanId,
    flags: TraceFlags,
}

/// Gives every new span [`Ids`]: its parent's trace id (a fresh one for a root) and a fresh
/// span id. [`continue_trace`] then replaces a root's trace id with the caller's.
#[derive(Debug, Clone, Copy)]
struct TraceIds;

impl<S> Layer<S> for TraceIds
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        _attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Ids>().copied());
        let mut rng = rand::rng();
        let ids = Ids {
            trace: parent.map_or_else(|| TraceId::from(rng.random::<u128>() | 1), |p| p.trace),
            span: SpanId::from(rng.random::<u64>() | 1),
            flags: parent.map_or(TraceFlags::SAMPLED, |p| p.flags),
        };
        span.extensions_mut().insert(ids);
    }
}

/// Runs `f` on the [`Ids`] of `span`, if the [`TraceIds`] layer gave it some.
fn with_ids<T>(span: &tracing::Span, f: impl FnOnce(&mut Ids) -> T) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        extensions.get_mut::<Ids>().map(f)
    })
    .flatten()
}

/// Makes `span` continue the W3C `traceparent` in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let remote = parent.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    let continued = with_ids(span, |ids| {
        ids.trace = remote.trace_id();
        ids.flags = remote.trace_flags();
    });
    if continued.is_none() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`) of `span`, to send with an outgoing request.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let propagator = TraceContextPropagator::new();
    let context = with_ids(span, |ids| {
        opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            ids.trace,
            ids.span,
            ids.flags,
            true,
            TraceState::default(),
        ))
    })
    .unwrap_or_else(|| span.context());
    propagator.inject_context(&context, &mut HeaderInjector(headers));
}

/// The 32-hex-digit trace id of `span` (all zeros when tracing is not installed).
pub fn trace_id(span: &tracing::Span) -> String {
    with_ids(span, |ids| ids.trace)
        .unwrap_or_else(|| span.context().span().span_context().trace_id())
        .to_string()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn traceparent(headers: &http::HeaderMap) -> Vec<String> {
        headers
            .get("traceparent")
            .unwrap()
            .to_str()
            .unwrap()
            .split('-')
            .map(str::to_owned)
            .collect()
    }

    /// Without an exporter the finer spans are not built, and a call's `traceparent` names the
    /// span it runs in (the request's) instead.
    #[test]
    fn detail_spans_exist_only_for_an_exporter() {
        let subscriber = tracing_subscriber::registry().with(TraceIds);
        tracing::subscriber::with_default(subscriber, || {
            assert!(!detail_spans(), "init installed no exporter in this test");
            let request = tracing::info_span!("mpic.request");
            let call = request.in_scope(|| crate::detail_span!("mpic.perspective_call"));
            assert!(call.is_disabled());
            let mut headers = http::HeaderMap::new();
            request.in_scope(|| call.in_scope(|| inject(&tracing::Span::current(), &mut headers)));
            let sent = traceparent(&headers);
            let mut own = http::HeaderMap::new();
            inject(&request, &mut own);
            assert_eq!(sent, traceparent(&own), "the request's ids go out");
        });
    }

    #[test]
    fn without_opentelemetry_spans_still_carry_w3c_ids() {
        let subscriber = tracing_subscriber::registry().with(TraceIds);
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!("root");
            let root_trace = trace_id(&root);
            assert_eq!(root_trace.len(), 32);
            assert_ne!(root_trace, "0".repeat(32));
            let child = root.in_scope(|| tracing::info_span!("child"));
            assert_eq!(
                trace_id(&child),
                root_trace,
                "a child is in its parent's trace"
            );
            let mut headers = http::HeaderMap::new();
            inject(&child, &mut headers);
            let parts = traceparent(&headers);
            // W3C Trace Context: version 00, trace id, the sending span's id, sampled.
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], root_trace);
            assert_eq!(parts[2].len(), 16);
            assert_ne!(parts[2], "0".repeat(16));
            assert_eq!(parts[3], "01");
            let mut again = http::HeaderMap::new();
            inject(&root, &mut again);
            assert_ne!(traceparent(&again)[2], parts[2], "each span has its own id");
            let other = tracing::info_span!("another root");
            assert_ne!(trace_id(&other), root_trace, "a root starts a new trace");
        });
    }

    #[test]
    fn an_incoming_traceparent_is_continued() {
        let subscriber = tracing_subscriber::registry().with(TraceIds);
        tracing::subscriber::with_default(subscriber, || {
            let mut incoming = http::HeaderMap::new();
            incoming.insert(
                "traceparent",
                http::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
            let request = tracing::info_span!("request");
            continue_trace(&request, &incoming);
            assert_eq!(trace_id(&request), "4bf92f3577b34da6a3ce929d0e0e4736");
            let call = request.in_scope(|| tracing::info_span!("call"));
            let mut outgoing = http::HeaderMap::new();
            inject(&call, &mut outgoing);
            let parts = traceparent(&outgoing);
            assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(parts[2], "00f067aa0ba902b7", "the call is a new span");

            // A malformed header is ignored: the span keeps its own trace.
            let mut bad = http::HeaderMap::new();
            bad.insert("traceparent", http::HeaderValue::from_static("00-zz-01"));
            let other = tracing::info_span!("request");
            let own = trace_id(&other);
            continue_trace(&other, &bad);
            assert_eq!(trace_id(&other), own);
        });
    }

    /// Where a test's log lines go.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log line inside a DNS lookup inside a check lists the check's span, with the ids.
    #[test]
    fn log_lines_list_the_request_or_check_span() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(TraceIds)
            .with(json_logs(move || writer.clone()));
        let trace = tracing::subscriber::with_default(subscriber, || {
            let check = tracing::info_span!(
                "mpic.check",
                trace_id = tracing::field::Empty,
                trace_identifier = "order-42"
            );
            check.record("trace_id", trace_id(&check));
            // As an instrumented lookup future polled inside the instrumented check.
            check.in_scope(|| {
                let lookup = tracing::info_span!("dns.lookup", dns.name = "x");
                lookup.in_scope(|| tracing::warn!(detail = 1, "inside a lookup"));
            });
            trace_id(&check)
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "inside a lookup");
        assert_eq!(line["detail"], 1);
        let spans = line["spans"].as_array().expect(&text);
        assert_eq!(spans.len(), 1, "{text}");
        assert_eq!(spans[0]["name"], "mpic.check");
        assert_eq!(spans[0]["trace_id"], trace.as_str());
        assert_eq!(spans[0]["trace_identifier"], "order-42");
    }

    #[test]
    fn a_field_holding_json_is_inlined() {
        struct Case {
            name: &'static str,
            line: &'static str,
            want: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "an array of objects, the other fields in place",
                line: r#"{"a":1,"perspectives":"[{\"code\":\"x\"}]","b":"c"}"#,
                want: Some(r#"{"a":1,"perspectives":[{"code":"x"}],"b":"c"}"#),
            },
            Case {
                name: "the key's name inside another string is not the key",
                line: r#"{"m":"say \"perspectives\": no","perspectives":"[]"}"#,
                want: Some(r#"{"m":"say \"perspectives\": no","perspectives":[]}"#),
            },
            Case {
                name: "not JSON: left as it is",
                line: r#"{"perspectives":"us-east-1=passed"}"#,
                want: None,
            },
            Case {
                name: "no such field",
                line: r#"{"a":1}"#,
                want: None,
            },
        ];
        for case in cases {
            assert_eq!(
                inline_json_field(case.line, "perspectives").as_deref(),
                case.want,
                "{}",
                case.name
            );
        }
    }

    /// The audit event's `perspectives` is a JSON array in the log line; other events'
    /// fields are strings as recorded.
    #[test]
    fn the_audit_events_perspectives_are_structured() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(json_logs(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let list = r#"[{"code":"us-east-1","result":"passed"}]"#;
            tracing::info!(target: "mpic::audit", perspectives = %list, n = 1, "decided");
            tracing::info!(perspectives = %list, "not the audit target");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["perspectives"][0]["code"], "us-east-1", "{text}");
        assert_eq!(lines[0]["n"], 1);
        assert_eq!(lines[0]["message"], "decided");
        assert!(lines[1]["perspectives"].is_string(), "{text}");
    }

    #[test]
    fn without_a_subscriber_ids_are_zero_and_nothing_breaks() {
        let span = tracing::info_span!("nothing");
        assert_eq!(trace_id(&span), "0".repeat(32));
        let mut headers = http::HeaderMap::new();
        inject(&span, &mut headers);
        assert!(headers.get("traceparent").is_none());
    }
}
