//! Realistic OTLP payloads, generated once before the clock starts so the generator never limits the
//! run: a pool of distinct requests, cycled. Everything is drawn from one seeded generator, so the same
//! seed gives the same bytes.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoadSignal {
    Logs,
    Traces,
}

/// Which attributes the items and resources carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `--attributes` generated attributes of `--attribute-bytes` each, a 3-attribute resource.
    Synthetic,
    /// What the OpenTelemetry SDKs emit for an instrumented HTTP service: a resource with 12
    /// attributes (service, SDK, host, process, k8s), records with the http.* / url.* / server.*
    /// semantic-convention attributes, an instrumentation scope; ~600 B per log record. Overrides
    /// `--attributes` and `--attribute-bytes`.
    Sdk,
}

/// The shape of the generated telemetry.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Workload {
    /// What to send.
    #[arg(long, value_enum, default_value = "logs")]
    pub signal: LoadSignal,
    #[arg(long, value_enum, default_value = "synthetic")]
    pub profile: Profile,
    /// Items (log records or spans) per request.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Distinct `service.name` values; each request spreads over them.
    #[arg(long, default_value_t = 5)]
    pub services: usize,
    /// Spans per trace.
    #[arg(long, default_value_t = 8)]
    pub spans_per_trace: usize,
    /// Attributes per span or log record (besides the label and trace-context ones).
    #[arg(long, default_value_t = 6)]
    pub attributes: usize,
    /// Bytes per attribute value.
    #[arg(long, default_value_t = 24)]
    pub attribute_bytes: usize,
    /// Bytes per log body.
    #[arg(long, default_value_t = 120)]
    pub body_bytes: usize,
    /// Distinct values of the `http.route` label attribute.
    #[arg(long, default_value_t = 50)]
    pub cardinality: usize,
    /// Share of log records that carry trace context.
    #[arg(long, default_value_t = 0.5)]
    pub trace_context_share: f64,
    /// Of those, the share carrying it as a `traceparent` attribute rather than native ids.
    #[arg(long, default_value_t = 0.5)]
    pub traceparent_share: f64,
    /// Share of traces with a failing span, and of log records at ERROR.
    #[arg(long, default_value_t = 0.02)]
    pub error_share: f64,
    /// Weights of DEBUG, INFO and WARN for the records that are not errors.
    #[arg(long, value_delimiter = ',', default_value = "10,75,15")]
    pub severity_mix: Vec<f64>,
    /// Distinct requests generated and cycled.
    #[arg(long, default_value_t = 32)]
    pub distinct_requests: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            signal: LoadSignal::Logs,
            profile: Profile::Synthetic,
            batch: 500,
            services: 5,
            spans_per_trace: 8,
            attributes: 6,
            attribute_bytes: 24,
            body_bytes: 120,
            cardinality: 50,
            trace_context_share: 0.5,
            traceparent_share: 0.5,
            error_share: 0.02,
            severity_mix: vec![10.0, 75.0, 15.0],
            distinct_requests: 32,
            seed: 42,
        }
    }
}

/// One request body as it goes on the wire (protobuf, before transport compression).
#[derive(Debug, Clone)]
pub struct Payload {
    pub body: Bytes,
    pub items: u64,
}

const WORDS: &[&str] = &[
    "request",
    "served",
    "cache",
    "miss",
    "user",
    "order",
    "payment",
    "retry",
    "upstream",
    "timeout",
    "connection",
    "pool",
    "queue",
    "latency",
    "handler",
    "checkout",
    "inventory",
    "session",
    "token",
    "refresh",
    "database",
    "query",
    "rows",
    "shard",
    "replica",
    "commit",
    "batch",
    "flush",
];

struct Gen {
    rng: fastrand::Rng,
    w: Workload,
    base_nanos: u64,
}

impl Gen {
    fn text(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 12);
        while s.len() < len {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(WORDS[self.rng.usize(..WORDS.len())]);
        }
        s.truncate(len);
        s
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut id = vec![0u8; N];
        self.rng.fill(&mut id);
        id[N - 1] |= 1;
        id
    }

    fn attributes(&mut self) -> Vec<KeyValue> {
        if self.w.profile == Profile::Sdk {
            return self.http_attributes();
        }
        let mut attrs = vec![kv(
            "http.route",
            format!("/api/v1/r{}", self.rng.usize(..self.w.cardinality.max(1))),
        )];
        for i in 0..self.w.attributes {
            let value = self.text(self.w.attribute_bytes);
            attrs.push(kv(&format!("attr.{i}"), value));
        }
        attrs
    }

    /// An HTTP server's semantic-convention attributes, as SDK instrumentation records them.
    fn http_attributes(&mut self) -> Vec<KeyValue> {
        const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
        const STATUS: &[i64] = &[200, 200, 200, 200, 201, 204, 304, 400, 404, 500];
        let route = format!(
            "/api/v1/{}/{{id}}",
            WORDS[self.rng.usize(..self.w.cardinality.max(1)) % WORDS.len()]
        );
        let path = route.replace("{id}", &self.rng.u32(..1_000_000).to_string());
        vec![
            kv("http.request.method", METHODS[self.rng.usize(..METHODS.len())].into()),
            kv("http.route", route),
            kv("url.path", path),
            kv("url.scheme", "https".into()),
            int_kv("http.response.status_code", STATUS[self.rng.usize(..STATUS.len())]),
            kv("server.address", "checkout.internal.example.com".into()),
            int_kv("server.port", 8443),
            kv(
                "client.address",
                format!("10.{}.{}.{}", self.rng.u8(..), self.rng.u8(..), self.rng.u8(..)),
            ),
            kv("network.protocol.version", "1.1".into()),
            kv(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36".into(),
            ),
            kv("enduser.id", format!("user-{}", self.rng.u32(..100_000))),
        ]
    }

    fn scope(&self) -> Option<InstrumentationScope> {
        (self.w.profile == Profile::Sdk).then(|| InstrumentationScope {
            name: "opentelemetry.instrumentation.flask".into(),
            version: "0.50b0".into(),
            ..Default::default()
        })
    }

    fn resource(&self, service: usize) -> Option<Resource> {
        if self.w.profile == Profile::Sdk {
            return Some(Resource {
                attributes: vec![
                    kv("service.name", format!("service-{service}")),
                    kv("service.version", "2.14.3".into()),
                    kv("service.namespace", "shop".into()),
                    kv(
                        "service.instance.id",
                        format!("a3f1c9e2-7b4d-4e8a-9c1f-{service:012}"),
                    ),
                    kv("deployment.environment.name", "production".into()),
                    kv("telemetry.sdk.name", "opentelemetry".into()),
                    kv("telemetry.sdk.language", "python".into()),
                    kv("telemetry.sdk.version", "1.29.0".into()),
                    kv(
                        "host.name",
                        format!("ip-10-0-{}-17.ec2.internal", service % 3),
                    ),
                    kv("process.runtime.name", "cpython".into()),
                    int_kv("process.pid", 4242 + service as i64),
                    kv("k8s.pod.name", format!("service-{service}-7d9f8b6c5-x2x9q")),
                ],
                ..Default::default()
            });
        }
        Some(Resource {
            attributes: vec![
                kv("service.name", format!("service-{service}")),
                kv("deployment.environment", "loadtest".into()),
                kv("host.name", format!("host-{}", service % 3)),
            ],
            ..Default::default()
        })
    }

    fn logs(&mut self) -> ExportLogsServiceRequest {
        let services = self.w.services.max(1);
        let mut resources: Vec<ResourceLogs> = (0..services)
            .map(|s| ResourceLogs {
                resource: self.resource(s),
                scope_logs: vec![ScopeLogs {
                    scope: self.scope(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        for n in 0..self.w.batch {
            let severity = self.severity();
            let mut attributes = self.attributes();
            let (mut trace_id, mut span_id, mut flags) = (Vec::new(), Vec::new(), 0);
            if self.rng.f64() < self.w.trace_context_share {
                let (t, s) = (self.id::<16>(), self.id::<8>());
                if self.rng.f64() < self.w.traceparent_share {
                    attributes.push(kv("traceparent", format!("00-{}-{}-01", hex(&t), hex(&s))));
                } else {
                    (trace_id, span_id, flags) = (t, s, 1);
                }
            }
            let body = self.text(self.w.body_bytes);
            let record = LogRecord {
                time_unix_nano: self.base_nanos + n as u64 * 1_000,
                observed_time_unix_nano: self.base_nanos + n as u64 * 1_000 + 500,
                severity_number: severity.0,
                severity_text: severity.1.into(),
                body: Some(AnyValue {
                    value: Some(Value::StringValue(body)),
                }),
                attributes,
                trace_id,
                span_id,
                flags,
                ..Default::default()
            };
            resources[n % services].scope_logs[0]
                .log_records
                .push(record);
        }
        resources.retain(|r| !r.scope_logs[0].log_records.is_empty());
        ExportLogsServiceRequest {
            resource_logs: resources,
        }
    }

    fn severity(&mut self) -> (i32, &'static str) {
        if self.rng.f64() < self.w.error_share {
            return (17, "ERROR");
        }
        let mix = &self.w.severity_mix;
        let total: f64 = mix.iter().sum();
        let mut x = self.rng.f64() * total;
        for (i, level) in [(5, "DEBUG"), (9, "INFO"), (13, "WARN")]
            .into_iter()
            .enumerate()
        {
            let w = mix.get(i).copied().unwrap_or(0.0);
            if x < w {
                return level;
            }
            x -= w;
        }
        (9, "INFO")
    }

    fn traces(&mut self) -> ExportTraceServiceRequest {
        let services = self.w.services.max(1);
        let per_trace = self.w.spans_per_trace.max(1);
        let mut resources: Vec<ResourceSpans> = (0..services)
            .map(|s| ResourceSpans {
                resource: self.resource(s),
                scope_spans: vec![ScopeSpans {
                    scope: self.scope(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        let mut n = 0;
        while n < self.w.batch {
            let trace_id = self.id::<16>();
            let root = self.id::<8>();
            let failing = self.rng.f64() < self.w.error_share;
            let service = self.rng.usize(..services);
            let spans_here = per_trace.min(self.w.batch - n);
            for i in 0..spans_here {
                let start = self.base_nanos + (n as u64) * 1_000_000;
                let duration = 200_000 + self.rng.u64(..50_000_000);
                let span = Span {
                    trace_id: trace_id.clone(),
                    span_id: if i == 0 { root.clone() } else { self.id::<8>() },
                    parent_span_id: if i == 0 { Vec::new() } else { root.clone() },
                    name: format!(
                        "GET /api/v1/r{}",
                        self.rng.usize(..self.w.cardinality.max(1))
                    ),
                    kind: if i == 0 {
                        span::SpanKind::Server
                    } else {
                        span::SpanKind::Client
                    } as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + duration,
                    attributes: self.attributes(),
                    status: Some(Status {
                        code: if failing && i == spans_here - 1 {
                            status::StatusCode::Error
                        } else {
                            status::StatusCode::Unset
                        } as i32,
                        ..Default::default()
                    }),
                    flags: 0x101,
                    ..Default::default()
                };
                resources[service].scope_spans[0].spans.push(span);
                n += 1;
            }
        }
        resources.retain(|r| !r.scope_spans[0].spans.is_empty());
        ExportTraceServiceRequest {
            resource_spans: resources,
        }
    }
}

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Workload {
    /// The request pool: `distinct_requests` bodies of `batch` items each.
    pub fn payloads(&self) -> Vec<Payload> {
        let mut g = Gen {
            rng: fastrand::Rng::with_seed(self.seed),
            w: self.clone(),
            base_nanos: 1_764_000_000_000_000_000,
        };
        (0..self.distinct_requests.max(1))
            .map(|_| {
                let body = match self.signal {
                    LoadSignal::Logs => g.logs().encode_to_vec(),
                    LoadSignal::Traces => g.traces().encode_to_vec(),
                };
                Payload {
                    body: Bytes::from(body),
                    items: self.batch as u64,
                }
            })
            .collect()
    }
}
