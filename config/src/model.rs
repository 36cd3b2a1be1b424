//! The configuration structs. Every struct rejects unknown keys, and every default here is a product
//! decision: with no config at all Weir receives on loopback, keeps everything, and bounds its memory.

use crate::units::{ByteSize, Duration};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub receivers: Receivers,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Named exporters; every signal an exporter supports goes to it unless `signals` narrows it.
    pub exporters: BTreeMap<String, ExporterConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Durable mode: accepted requests are written to a write-ahead log before clients are told so.
    pub durable: Option<DurableConfig>,
    /// How long a SIGTERM/SIGINT shutdown may take to drain queues and flush exporters.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// The most heap Weir may hold. Past it receivers push back (RESOURCE_EXHAUSTED / 429 with a
    /// retry delay) until exporters drain. Unset: 80 % of the cgroup's memory limit when there is one,
    /// otherwise [`Config::derived_memory_limit`].
    #[serde(default)]
    pub memory_limit: Option<ByteSize>,
}

impl Config {
    /// What the queues may hold when every one is full, plus the tail buffer, plus room for requests
    /// being read and batches being sent: the memory this config asks for.
    pub fn derived_memory_limit(&self) -> u64 {
        const WORKING_SET: u64 = 64 << 20;
        let signals = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics];
        let queues: u64 = signals
            .iter()
            .map(|&s| {
                let exporters: Vec<_> = self.exporters.values().filter(|e| e.receives(s)).collect();
                if exporters.is_empty() {
                    return 0;
                }
                self.pipeline.intake_queue.max_bytes.0
                    + exporters.iter().map(|e| e.queue.max_bytes.0).sum::<u64>()
            })
            .sum();
        let tail = self
            .pipeline
            .sample
            .tail
            .as_ref()
            .map_or(0, |t| t.max_bytes.0);
        queues + tail + WORKING_SET
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receivers {
    #[serde(default)]
    pub grpc: GrpcReceiver,
    #[serde(default)]
    pub http: HttpReceiver,
    /// Requests read and decoded at once across both receivers; more wait. Bounds request memory to
    /// about this many times the request size limits.
    #[serde(default = "defaults::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// When set, every request must carry a known token; its tenant travels with the data.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            grpc: GrpcReceiver::default(),
            http: HttpReceiver::default(),
            max_concurrent_requests: defaults::max_concurrent_requests(),
            auth: None,
        }
    }
}

/// Ingest authentication: a token in `Authorization: Bearer …` or `X-API-Key: …` (gRPC metadata or
/// HTTP header), compared by SHA-256 in constant time, names the tenant. The tenant is stamped on every
/// resource as `tenant_attribute`, where exporters (Loki's `tenant_attribute`) and rate limits
/// (`key: weir.tenant`) pick it up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// A file of `tenant: token` lines (`#` comments), read at start.
    #[serde(default)]
    pub tokens_file: Option<String>,
    #[serde(default = "defaults::tenant_attribute")]
    pub tenant_attribute: String,
    /// Tenants (token names) whose requests keep the tenant attribute their resources carry: edges
    /// that authenticated their own clients and stamped them. Everyone else's is overwritten with
    /// their own tenant.
    #[serde(default)]
    pub trusted_tenant_from: Vec<String>,
}

/// One token; the secret comes from the environment or as its SHA-256, never in clear in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub tenant: String,
    #[serde(default)]
    pub token_env: Option<String>,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcReceiver {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::grpc_endpoint")]
    pub endpoint: String,
    /// Largest accepted message after decompression; tonic stops decompressing past it.
    #[serde(default = "defaults::max_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// HTTP/2 streams one connection may have open at once.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    #[serde(default)]
    pub tls: Option<TlsServer>,
}

/// TLS on a receiver (rustls). The files are re-read when they change, so a rotated certificate is
/// served to new connections without a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA certificates: when set, clients must present a certificate signed by one (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// How often the files are checked for changes.
    #[serde(default = "defaults::tls_reload_interval")]
    pub reload_interval: Duration,
}

impl Default for GrpcReceiver {
    fn default() -> Self {
        GrpcReceiver {
            enabled: true,
            endpoint: defaults::grpc_endpoint(),
            max_request_bytes: defaults::max_request_bytes(),
            max_concurrent_streams: defaults::max_concurrent_streams(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReceiver {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::http_endpoint")]
    pub endpoint: String,
    /// Largest accepted body as sent (possibly compressed).
    #[serde(default = "defaults::max_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// Largest body after decompression; a compression bomb stops here with bounded memory.
    #[serde(default = "defaults::max_decompressed_bytes")]
    pub max_decompressed_bytes: ByteSize,
    #[serde(default)]
    pub tls: Option<TlsServer>,
}

impl Default for HttpReceiver {
    fn default() -> Self {
        HttpReceiver {
            enabled: true,
            endpoint: defaults::http_endpoint(),
            max_request_bytes: defaults::max_request_bytes(),
            max_decompressed_bytes: defaults::max_decompressed_bytes(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Stage worker threads per signal; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "defaults::intake_queue")]
    pub intake_queue: QueueLimits,
    /// How long a request may wait for room in a full intake queue before the client is told to retry.
    #[serde(default = "defaults::enqueue_timeout")]
    pub enqueue_timeout: Duration,
    #[serde(default)]
    pub normalize: NormalizeConfig,
    #[serde(default)]
    pub sample: SampleConfig,
    /// Secrets and personal data out of attributes, bodies and (optionally) span names.
    #[serde(default)]
    pub redact: crate::redact::RedactConfig,
    /// Request, error and duration metrics from every span, before sampling; off unless set.
    #[serde(default)]
    pub span_metrics: Option<crate::span_metrics::SpanMetricsConfig>,
}

/// Consistent probability sampling; the defaults keep everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    #[serde(default)]
    pub traces: TraceSampling,
    #[serde(default)]
    pub logs: LogSampling,
    /// Token buckets applied after sampling; an item must fit every bucket of its signal.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
    /// Tail sampling for traces: whole traces buffered and decided by what they contain.
    #[serde(default)]
    pub tail: Option<TailSamplingConfig>,
    /// When set, kept items carry the name of the rule or policy that kept them under this attribute
    /// (log rules, tail policies, and `head` for spans kept by head sampling below 100 %).
    #[serde(default)]
    pub policy_attribute: Option<String>,
}

/// Spans are held by trace id until the root span has arrived and `root_wait` has passed, or
/// `decision_wait` after the trace's first span, whichever comes first; then the policies decide, first
/// match wins. Memory is bounded by `max_traces` and `max_bytes`: at the bound the oldest traces are
/// decided early (counted), never evicted unseen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingConfig {
    #[serde(default = "defaults::decision_wait")]
    pub decision_wait: Duration,
    #[serde(default = "defaults::root_wait")]
    pub root_wait: Duration,
    #[serde(default = "defaults::tail_max_traces")]
    pub max_traces: usize,
    #[serde(default = "defaults::tail_max_bytes")]
    pub max_bytes: ByteSize,
    /// Decided trace ids remembered so late spans (and late logs) follow their trace.
    #[serde(default = "defaults::decision_cache")]
    pub decision_cache: usize,
    /// What happens to log records that carry a trace id.
    #[serde(default)]
    pub logs: TailLogs,
    pub policies: Vec<TailPolicyConfig>,
}

/// `pass`: log records go through the log rules like any other (spans alone are tail sampled).
/// `with_trace`: records with a trace id are held with their trace and share its decision; records
/// without one follow the log rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TailLogs {
    #[default]
    Pass,
    WithTrace,
}

/// One tail policy: a name, exactly one condition (`and` combines several), and what a match does:
/// keep the trace (optionally capped by a budget in traces per second) or, with `drop: true`, drop it
/// outright. Entries of `and` are conditions only: no name, budget or `drop`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailPolicyConfig {
    #[serde(default)]
    pub name: String,
    /// Drop matching traces (health checks, synthetic probes) instead of keeping them.
    #[serde(default)]
    pub drop: Option<bool>,
    /// Any span with status ERROR.
    #[serde(default)]
    pub error: Option<bool>,
    /// The trace (first start to last end) or any one span lasted at least this long.
    #[serde(default)]
    pub latency: Option<Duration>,
    /// A span or resource attribute equal to one of `values`, or matching `regex` (any value when
    /// neither is set); `invert: true` holds when no span carries such a value.
    #[serde(default)]
    pub attribute: Option<AttributeMatch>,
    /// A span or resource attribute holding a number in `[min, max]`.
    #[serde(default)]
    pub numeric_attribute: Option<NumericMatch>,
    /// Any span whose status is one of these (`ok`, `error`, `unset`).
    #[serde(default)]
    pub status_code: Option<Vec<StatusCodeName>>,
    /// The trace has between `min` and `max` spans.
    #[serde(default)]
    pub span_count: Option<CountRange>,
    /// The trace's held size (spans and logs, as counted against `max_bytes`) is in `[min, max]`.
    #[serde(default)]
    pub trace_bytes: Option<BytesRange>,
    /// Any log record of the trace at this severity or above (needs `logs: with_trace`).
    #[serde(default)]
    pub log_severity: Option<Severity>,
    /// A log record (or its resource) attribute, matched like `attribute` (needs `logs: with_trace`).
    #[serde(default)]
    pub log_attribute: Option<AttributeMatch>,
    /// Consistent by trace id, the same randomness as head sampling.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Any trace, up to this many traces per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Every condition listed holds.
    #[serde(default)]
    pub and: Option<Vec<TailPolicyConfig>>,
    /// Caps what this policy keeps, in traces per second; traces over the budget fall through to the
    /// next policy.
    #[serde(default)]
    pub traces_per_second: Option<f64>,
}

impl TailPolicyConfig {
    /// The condition keys this entry sets, by name, for "exactly one" checks.
    pub fn conditions(&self) -> Vec<&'static str> {
        [
            ("error", self.error.is_some()),
            ("latency", self.latency.is_some()),
            ("attribute", self.attribute.is_some()),
            ("numeric_attribute", self.numeric_attribute.is_some()),
            ("status_code", self.status_code.is_some()),
            ("span_count", self.span_count.is_some()),
            ("trace_bytes", self.trace_bytes.is_some()),
            ("log_severity", self.log_severity.is_some()),
            ("log_attribute", self.log_attribute.is_some()),
            ("probability", self.probability.is_some()),
            ("rate", self.rate.is_some()),
            ("and", self.and.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Whether this condition, or one inside it, looks at log records.
    pub fn reads_logs(&self) -> bool {
        self.log_severity.is_some()
            || self.log_attribute.is_some()
            || self.and.iter().flatten().any(TailPolicyConfig::reads_logs)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    /// A regular expression the value must match (anywhere; anchor with `^…$`).
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericMatch {
    pub key: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRange {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesRange {
    #[serde(default)]
    pub min: Option<ByteSize>,
    #[serde(default)]
    pub max: Option<ByteSize>,
}

/// A span status as written in config; OTLP's `STATUS_CODE_*` spellings are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StatusCodeName {
    #[serde(alias = "unset", alias = "UNSET", alias = "STATUS_CODE_UNSET")]
    Unset,
    #[serde(alias = "ok", alias = "OK", alias = "STATUS_CODE_OK")]
    Ok,
    #[serde(alias = "error", alias = "ERROR", alias = "STATUS_CODE_ERROR")]
    Error,
}

impl StatusCodeName {
    /// The OTLP `Status.code` number.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A token bucket per value of `key` (a resource attribute), refilled every second, bursting one
/// second's worth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub name: String,
    pub signal: SignalKind,
    #[serde(default = "defaults::rate_limit_key")]
    pub key: String,
    pub items_per_second: f64,
    #[serde(default)]
    pub bytes_per_second: Option<ByteSize>,
    /// Most key values with a bucket of their own; the least recently used are forgotten beyond it
    /// (counted in `weir_ratelimit_evicted_keys_total`), since clients choose the values.
    #[serde(default = "defaults::rate_limit_max_keys")]
    pub max_keys: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSampling {
    /// Head sampling by trace id (OpenTelemetry-compatible thresholds); 1.0 keeps every trace.
    #[serde(default = "defaults::one")]
    pub probability: f64,
}

impl Default for TraceSampling {
    fn default() -> Self {
        TraceSampling { probability: 1.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSampling {
    /// First match wins.
    #[serde(default)]
    pub rules: Vec<LogRuleConfig>,
    /// For records no rule matches.
    #[serde(default = "defaults::one")]
    pub default_probability: f64,
}

impl Default for LogSampling {
    fn default() -> Self {
        LogSampling {
            rules: Vec::new(),
            default_probability: 1.0,
        }
    }
}

/// OTLP severity ranges by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// The severity numbers of this level: TRACE is 1–4, DEBUG 5–8, … FATAL 21–24.
    pub fn range(self) -> (i32, i32) {
        let lo = 1 + 4 * self as i32;
        (lo, lo + 3)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRuleConfig {
    /// Used in the `rule` label of `weir_sampled_out_items_total`; default `rule<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches this level and above.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Matches exactly this level.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Matches the resource's `service.name`.
    #[serde(default)]
    pub service: Option<String>,
    pub probability: f64,
}

/// What becomes of a span whose trace or span id is all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InvalidSpans {
    /// Keep it, marked `weir.trace_context.invalid = true`, so nothing disappears by default.
    #[default]
    Flag,
    /// Drop it (counted).
    Drop,
}

/// W3C trace-context normalisation, on by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default)]
    pub invalid_spans: InvalidSpans,
    /// Remove `traceparent`, `b3`, … attributes from log records once their context is filled in.
    #[serde(default)]
    pub remove_source_attributes: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            enabled: true,
            invalid_spans: InvalidSpans::Flag,
            remove_source_attributes: false,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            intake_queue: defaults::intake_queue(),
            enqueue_timeout: defaults::enqueue_timeout(),
            normalize: NormalizeConfig::default(),
            sample: SampleConfig::default(),
            redact: crate::redact::RedactConfig::default(),
            span_metrics: None,
        }
    }
}

/// Capacity of a bounded queue, in telemetry items (spans, log records, data points) and in encoded bytes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLimits {
    pub max_items: usize,
    pub max_bytes: ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Traces,
    Logs,
    Metrics,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics];
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Logs => "logs",
            SignalKind::Metrics => "metrics",
        }
    }
}

/// One exporter: exactly one destination kind (`file`, `blackhole`) plus delivery settings shared by all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    pub file: Option<FileExporter>,
    pub blackhole: Option<BlackholeExporter>,
    pub clickhouse: Option<ClickHouseExporter>,
    pub loki: Option<LokiExporter>,
    pub otlp: Option<OtlpExporter>,
    /// Signals this exporter receives; default: all it supports.
    pub signals: Option<Vec<SignalKind>>,
    #[serde(default)]
    pub queue: ExporterQueue,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Requests sent at once by this exporter, per signal.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// Limit for one send attempt.
    #[serde(default = "defaults::send_timeout")]
    pub timeout: Duration,
    /// Allows credentials (a password, a token, headers) to go in clear over `http://` to a host
    /// beyond loopback; refused otherwise.
    #[serde(default)]
    pub insecure: bool,
}

/// Which destination an exporter writes to, once validated.
#[derive(Debug, Clone)]
pub enum ExporterKind<'a> {
    File(&'a FileExporter),
    Blackhole(&'a BlackholeExporter),
    ClickHouse(&'a ClickHouseExporter),
    Loki(&'a LokiExporter),
    Otlp(&'a OtlpExporter),
}

impl ExporterConfig {
    /// The configured destination; `None` when zero or several are set (validation rejects that).
    pub fn kind(&self) -> Option<ExporterKind<'_>> {
        if self.destinations() != 1 {
            return None;
        }
        if let Some(f) = &self.file {
            Some(ExporterKind::File(f))
        } else if let Some(b) = &self.blackhole {
            Some(ExporterKind::Blackhole(b))
        } else if let Some(c) = &self.clickhouse {
            Some(ExporterKind::ClickHouse(c))
        } else if let Some(l) = &self.loki {
            Some(ExporterKind::Loki(l))
        } else {
            self.otlp.as_ref().map(ExporterKind::Otlp)
        }
    }

    /// How many destinations are set (validation wants exactly one).
    pub fn destinations(&self) -> usize {
        [
            self.file.is_some(),
            self.blackhole.is_some(),
            self.clickhouse.is_some(),
            self.loki.is_some(),
            self.otlp.is_some(),
        ]
        .iter()
        .filter(|d| **d)
        .count()
    }

    /// Batching with the destination's defaults for unset fields: ClickHouse wants few, large inserts
    /// (tens of thousands of rows, about one per second or slower per table); files and blackholes
    /// want low latency.
    pub fn batch(&self) -> Batching {
        let (items, bytes, age) = match self.kind() {
            Some(ExporterKind::ClickHouse(_)) => (50_000, ByteSize::mib(32), Duration::secs(5)),
            // Loki wants requests of about 1 MiB of lines; the exporter splits larger batches.
            Some(ExporterKind::Loki(_)) => (20_000, ByteSize::mib(4), Duration::secs(1)),
            _ => (
                defaults::batch_items(),
                defaults::batch_bytes(),
                defaults::batch_age(),
            ),
        };
        Batching {
            max_items: self.batch.max_items.unwrap_or(items),
            max_bytes: self.batch.max_bytes.unwrap_or(bytes),
            max_age: self.batch.max_age.unwrap_or(age),
        }
    }

    /// Signals the destination can take.
    pub fn supports(&self, signal: SignalKind) -> bool {
        match self.kind() {
            Some(ExporterKind::Loki(_)) => signal == SignalKind::Logs,
            _ => true,
        }
    }

    pub fn receives(&self, signal: SignalKind) -> bool {
        self.supports(signal) && self.signals.as_ref().is_none_or(|s| s.contains(&signal))
    }
}

/// Forwards OTLP to other collectors (a gateway fleet): spans of one trace, and logs carrying its id,
/// always go to the same backend, chosen by rendezvous hashing over the live backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporter {
    /// Static backends: `host:port` or `http://host:port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Backends from DNS: `name:port`, every address the name resolves to (a Kubernetes headless
    /// Service), re-resolved every `resolve_interval`.
    #[serde(default)]
    pub resolve: Option<String>,
    #[serde(default = "defaults::resolve_interval")]
    pub resolve_interval: Duration,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    #[serde(default)]
    pub compression: OtlpCompression,
    /// What decides the backend: `trace_id` (logs without one fall back to their resource), `service`
    /// (the resource's `service.name`) or `resource` (all resource attributes).
    #[serde(default)]
    pub routing: Routing,
    /// Sent with every request (e.g. `authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Consecutive failed attempts after which a backend's keys move to the others.
    #[serde(default = "defaults::eject_after")]
    pub eject_after: u32,
    /// How long an ejected backend is left alone before it is tried again.
    #[serde(default = "defaults::eject_for")]
    pub eject_for: Duration,
    /// TLS to the backends (also implied by `https://` endpoints).
    #[serde(default)]
    pub tls: Option<TlsClient>,
}

/// TLS on an exporter's connections. Without `ca_file` the system's CA bundle is trusted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClient {
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM) for servers that require mTLS.
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    /// The name to verify the server's certificate against, when it differs from the endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    None,
    Gzip,
    #[default]
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    #[default]
    TraceId,
    Service,
    Resource,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporter {
    /// Directory for `traces.jsonl`, `logs.jsonl`, `metrics.jsonl` (OTLP/JSON, one request per line).
    pub path: String,
    /// A file is rotated to `<signal>.1.jsonl` … once it reaches this size.
    #[serde(default = "defaults::rotate_bytes")]
    pub rotate_bytes: ByteSize,
    /// Rotated files kept per signal; older ones are deleted so the disk use stays bounded.
    #[serde(default = "defaults::max_files")]
    pub max_files: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeExporter {}

/// What becomes of log attributes that are not labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// Every attribute not promoted to a label is structured metadata.
    #[default]
    All,
    /// Only those listed in `structured_metadata_keys`.
    Allowlist,
    /// None (trace context and severity are still sent).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// The body as is; maps and arrays as compact JSON.
    #[default]
    Raw,
    /// A JSON object with `body` and the record's attributes.
    Json,
}

/// How a Loki push body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LokiEncoding {
    /// Protobuf in snappy block format: what Loki's own clients send; smallest and fastest.
    #[default]
    Protobuf,
    /// Loki's JSON push format, for gateways and proxies that only speak JSON.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OversizeLine {
    /// Cut at `max_line_bytes` (on a UTF-8 boundary) and keep the record.
    #[default]
    Truncate,
    /// Drop the record (counted).
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiExporter {
    /// Base URL, e.g. `http://127.0.0.1:3100`; records go to `/loki/api/v1/push`.
    pub endpoint: String,
    /// For `https://` endpoints.
    #[serde(default)]
    pub tls: Option<TlsClient>,
    /// `X-Scope-OrgID` for every request.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A resource attribute naming the tenant (overrides `tenant` where present): one request per tenant.
    #[serde(default)]
    pub tenant_attribute: Option<String>,
    /// Resource attributes promoted to labels (`.` becomes `_`).
    #[serde(default = "defaults::loki_resource_labels")]
    pub resource_labels: Vec<String>,
    /// Log-record attributes promoted to labels; keep this short, labels are Loki's index.
    #[serde(default)]
    pub attribute_labels: Vec<String>,
    /// Adds `level` (from severity) as a label.
    #[serde(default)]
    pub severity_label: bool,
    #[serde(default)]
    pub structured_metadata: MetadataMode,
    #[serde(default)]
    pub structured_metadata_keys: Vec<String>,
    #[serde(default)]
    pub line_format: LineFormat,
    #[serde(default = "defaults::loki_max_line")]
    pub max_line_bytes: ByteSize,
    #[serde(default)]
    pub oversize_lines: OversizeLine,
    #[serde(default)]
    pub encoding: LokiEncoding,
    /// Σ(line + structured metadata) per request; Loki's clients use 1 MiB.
    #[serde(default = "defaults::loki_max_request")]
    pub max_request_bytes: ByteSize,
    /// Distinct streams allowed per `stream_window`; past it the label with the most distinct values
    /// is set to `overflow` for new streams, so a runaway label cannot hit Loki's stream limit.
    #[serde(default = "defaults::loki_max_streams")]
    pub max_streams: usize,
    #[serde(default = "defaults::loki_stream_window")]
    pub stream_window: Duration,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Which ClickHouse table layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseLayout {
    /// Ask the server (`SELECT version()`): modern from 22.x on, portable before.
    #[default]
    Auto,
    /// The OpenTelemetry Collector's tables (`Map`, `DateTime64(9)`): what Grafana and ClickStack query.
    Modern,
    /// Arrays and `DateTime` + nanoseconds, for servers without `Map`/`DateTime64`.
    Portable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseCompression {
    /// ClickHouse's own compressed blocks (`decompress=1`): the cheapest for client and server.
    #[default]
    Lz4,
    Zstd,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseExporter {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub endpoint: String,
    /// More servers of the same cluster (each with the Distributed tables), taken in order after
    /// `endpoint` when the one in use fails or gives no answer within `timeout`; Weir stays on the
    /// server that works. Without them a stopped server stalls every insert until it is back.
    #[serde(default)]
    pub failover_endpoints: Vec<String>,
    /// A resource attribute naming the database per resource (e.g. `weir.tenant` from ingest auth);
    /// its value, with every character outside `[A-Za-z0-9]` written as `_xx` (hex), is the database
    /// — so different values never share one — created with its tables on first use when
    /// `create_schema` is on. Resources without it go to `database`.
    #[serde(default)]
    pub database_attribute: Option<String>,
    /// Tenant values that may have a database (a regex over the whole value); rows of others are
    /// refused and counted (`weir_exporter_failed_items_total{reason="tenant_database"}`).
    #[serde(default = "defaults::tenant_database_pattern")]
    pub database_pattern: String,
    /// Most tenant databases one exporter writes to; rows for more are refused and counted.
    #[serde(default = "defaults::max_tenant_databases")]
    pub max_databases: usize,
    /// For `https://` endpoints.
    #[serde(default)]
    pub tls: Option<TlsClient>,
    #[serde(default = "defaults::clickhouse_database")]
    pub database: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub layout: ClickHouseLayout,
    /// Create the database and tables at start (`IF NOT EXISTS`). Turn off in production where
    /// schema changes go through migrations; start-up then checks that the tables exist.
    #[serde(default = "defaults::yes")]
    pub create_schema: bool,
    #[serde(default = "defaults::clickhouse_logs_table")]
    pub logs_table: String,
    /// Also names `<traces_table>_trace_id_ts` and its materialized view.
    #[serde(default = "defaults::clickhouse_traces_table")]
    pub traces_table: String,
    /// Prefix of the five metric tables: `<prefix>_gauge`, `_sum`, `_histogram`,
    /// `_exponential_histogram`, `_summary`.
    #[serde(default = "defaults::clickhouse_metrics_table")]
    pub metrics_table: String,
    /// Rows older than this are dropped by ClickHouse (`TTL`, whole hours); unset keeps them.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// Run DDL `ON CLUSTER` this cluster, with replicated tables.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub compression: ClickHouseCompression,
    /// `async_insert=1, wait_for_async_insert=1` (servers from 21.11): for many small writers.
    #[serde(default)]
    pub async_insert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Wait for room: backpressure reaches the stage workers, then the intake queue, then clients.
    Block,
    /// Drop the incoming batch and count it, so a slow exporter never slows the others.
    DropNewest,
    /// Write the batch to this exporter's own log on disk (needs `durable:`) and deliver it from
    /// there once the exporter catches up: a slow exporter never slows the others and loses nothing.
    /// When the log reaches `spill_max_bytes`, wait for room as `block` does.
    Spill,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterQueue {
    #[serde(default = "defaults::exporter_queue_items")]
    pub max_items: usize,
    #[serde(default = "defaults::exporter_queue_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default = "defaults::overflow")]
    pub overflow: Overflow,
    /// Most bytes the spill log (`overflow: spill`) holds on disk.
    #[serde(default = "defaults::spill_max_bytes")]
    pub spill_max_bytes: ByteSize,
}

impl Default for ExporterQueue {
    fn default() -> Self {
        ExporterQueue {
            max_items: defaults::exporter_queue_items(),
            max_bytes: defaults::exporter_queue_bytes(),
            overflow: defaults::overflow(),
            spill_max_bytes: defaults::spill_max_bytes(),
        }
    }
}

impl ExporterQueue {
    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_items: self.max_items,
            max_bytes: self.max_bytes,
        }
    }
}

/// Batching as written; unset fields take the destination's defaults (see [`ExporterConfig::batch`]).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    pub max_items: Option<usize>,
    pub max_bytes: Option<ByteSize>,
    /// A partial batch is sent once its oldest item has waited this long.
    pub max_age: Option<Duration>,
}

/// Batching with every field decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_items: usize,
    pub max_bytes: ByteSize,
    pub max_age: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "defaults::initial_backoff")]
    pub initial_backoff: Duration,
    #[serde(default = "defaults::max_backoff")]
    pub max_backoff: Duration,
    /// Give up on a request after retrying this long (counted as failed, reason `retries_exhausted`).
    /// Default 5 minutes; in durable mode, never: the disk holds the backlog, bounded by its own limit.
    pub max_elapsed: Option<Duration>,
}

impl RetryConfig {
    pub fn max_elapsed(&self, durable: bool) -> Duration {
        match (self.max_elapsed, durable) {
            (Some(d), _) => d,
            (None, false) => defaults::max_elapsed(),
            (None, true) => Duration(std::time::Duration::MAX),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: defaults::initial_backoff(),
            max_backoff: defaults::max_backoff(),
            max_elapsed: None,
        }
    }
}

/// Durable mode: each signal's accepted requests go to a write-ahead log in `<dir>/<signal>` and the
/// client is acknowledged only once its request is committed there. The stage workers read from the
/// log, so an outage of a destination fills the disk, not memory; after a crash, committed requests
/// not yet delivered are replayed (at least once).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableConfig {
    pub dir: String,
    /// Disk the log of one signal may use.
    #[serde(default = "defaults::wal_max_bytes")]
    pub max_bytes: ByteSize,
    /// Size at which a segment file is closed; delivered segments are deleted whole. Default: the
    /// smaller of 64 MiB and `max_bytes / 8`.
    pub segment_bytes: Option<ByteSize>,
    #[serde(default)]
    pub fsync: Fsync,
    /// Group commit: how long the first request of a group may wait for others before the `fsync`.
    /// Zero commits as soon as the writer has nothing more queued.
    #[serde(default)]
    pub commit_interval: Duration,
    /// Group commit: `fsync` as soon as this much is written, whatever the interval.
    #[serde(default = "defaults::commit_bytes")]
    pub commit_bytes: ByteSize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// Compress requests with zstd before writing (requests that arrived zstd- or gzip-compressed are
    /// stored as they came).
    #[serde(default = "defaults::yes")]
    pub compress: bool,
    /// How often delivered records are checkpointed and their segments deleted.
    #[serde(default = "defaults::checkpoint_interval")]
    pub checkpoint_interval: Duration,
}

impl DurableConfig {
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
            .map_or_else(|| (64 << 20).min(self.max_bytes.0 / 8), |b| b.0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// One `fdatasync` per group commit.
    #[default]
    Batch,
    /// One `fdatasync` per request.
    Always,
    /// Never: survives the process crashing, not the machine.
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse new requests (retryable for clients) until delivery frees space.
    #[default]
    Backpressure,
    /// Delete the oldest undelivered segment, counting what it held as dropped.
    DropOldest,
}

/// Stage policies reload on SIGHUP, `POST /admin/reload`, and — with `watch` — when the config file
/// changes (polled, so editors that replace the file and Kubernetes ConfigMap symlink swaps are seen).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    #[serde(default = "defaults::watch_interval")]
    pub interval: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval: defaults::watch_interval(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::admin_endpoint")]
    pub endpoint: String,
    /// Bearer token for the endpoints that change state (`POST /admin/reload`), usually
    /// `"${WEIR_ADMIN_TOKEN:-}"`; empty means none. Without one, those endpoints answer only on a
    /// loopback address. `/metrics`, `/healthz` and `/readyz` stay open.
    #[serde(default)]
    pub token: Option<String>,
    /// The token as hex SHA-256 instead (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            endpoint: defaults::admin_endpoint(),
            token: None,
            token_sha256: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `weir=debug,tonic=warn`; `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: defaults::log_level(),
            format: LogFormat::Text,
        }
    }
}

/// Default values, named so that docs and `examples/default.yaml` can be checked against them.
pub mod defaults {
    use super::*;

    pub fn yes() -> bool {
        true
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn watch_interval() -> Duration {
        Duration::secs(2)
    }
    pub fn tls_reload_interval() -> Duration {
        Duration::secs(5)
    }
    pub fn tenant_attribute() -> String {
        "weir.tenant".into()
    }
    pub fn resolve_interval() -> Duration {
        Duration::secs(30)
    }
    pub fn eject_after() -> u32 {
        3
    }
    pub fn eject_for() -> Duration {
        Duration::secs(10)
    }
    pub fn decision_wait() -> Duration {
        Duration::secs(10)
    }
    pub fn root_wait() -> Duration {
        Duration::secs(1)
    }
    pub fn tail_max_traces() -> usize {
        50_000
    }
    pub fn tail_max_bytes() -> ByteSize {
        ByteSize::mib(128)
    }
    pub fn decision_cache() -> usize {
        100_000
    }
    pub fn tenant_database_pattern() -> String {
        "[A-Za-z0-9][A-Za-z0-9_.-]{0,47}".into()
    }
    pub fn max_tenant_databases() -> usize {
        100
    }
    pub fn rate_limit_max_keys() -> usize {
        10_000
    }
    pub fn rate_limit_key() -> String {
        "service.name".into()
    }
    pub fn grpc_endpoint() -> String {
        "127.0.0.1:4317".into()
    }
    pub fn http_endpoint() -> String {
        "127.0.0.1:4318".into()
    }
    pub fn admin_endpoint() -> String {
        "127.0.0.1:8888".into()
    }
    pub fn max_request_bytes() -> ByteSize {
        ByteSize::mib(16)
    }
    pub fn max_decompressed_bytes() -> ByteSize {
        ByteSize::mib(64)
    }
    pub fn max_concurrent_streams() -> u32 {
        256
    }
    pub fn max_concurrent_requests() -> usize {
        128
    }
    pub fn intake_queue() -> QueueLimits {
        QueueLimits {
            max_items: 100_000,
            max_bytes: ByteSize::mib(32),
        }
    }
    pub fn enqueue_timeout() -> Duration {
        Duration::millis(200)
    }
    pub fn exporter_queue_items() -> usize {
        100_000
    }
    pub fn exporter_queue_bytes() -> ByteSize {
        ByteSize::mib(64)
    }
    pub fn overflow() -> Overflow {
        Overflow::Block
    }

    pub fn spill_max_bytes() -> ByteSize {
        ByteSize(1 << 30)
    }
    pub fn batch_items() -> usize {
        8192
    }
    pub fn batch_bytes() -> ByteSize {
        ByteSize::mib(8)
    }
    pub fn batch_age() -> Duration {
        Duration::millis(200)
    }
    pub fn initial_backoff() -> Duration {
        Duration::millis(100)
    }
    pub fn max_backoff() -> Duration {
        Duration::secs(30)
    }
    pub fn wal_max_bytes() -> ByteSize {
        ByteSize::gib(1)
    }
    pub fn commit_bytes() -> ByteSize {
        ByteSize::mib(4)
    }
    pub fn checkpoint_interval() -> Duration {
        Duration::secs(1)
    }
    pub fn max_elapsed() -> Duration {
        Duration::secs(300)
    }
    pub fn max_in_flight() -> usize {
        4
    }
    pub fn send_timeout() -> Duration {
        Duration::secs(30)
    }
    pub fn rotate_bytes() -> ByteSize {
        ByteSize::mib(64)
    }
    pub fn max_files() -> usize {
        8
    }
    pub fn shutdown_timeout() -> Duration {
        Duration::secs(30)
    }
    /// The resource attributes Loki's own OTLP ingestion makes index labels.
    pub fn loki_resource_labels() -> Vec<String> {
        [
            "service.name",
            "service.namespace",
            "service.instance.id",
            "deployment.environment",
            "deployment.environment.name",
            "cloud.region",
            "cloud.availability_zone",
            "k8s.cluster.name",
            "k8s.namespace.name",
            "k8s.pod.name",
            "k8s.container.name",
            "container.name",
            "k8s.replicaset.name",
            "k8s.deployment.name",
            "k8s.statefulset.name",
            "k8s.daemonset.name",
            "k8s.cronjob.name",
            "k8s.job.name",
        ]
        .map(String::from)
        .to_vec()
    }
    pub fn loki_max_line() -> ByteSize {
        ByteSize::kib(256)
    }
    pub fn loki_max_request() -> ByteSize {
        ByteSize::mib(1)
    }
    pub fn loki_max_streams() -> usize {
        2000
    }
    pub fn loki_stream_window() -> Duration {
        Duration::secs(3600)
    }
    pub fn clickhouse_database() -> String {
        "otel".into()
    }
    pub fn clickhouse_logs_table() -> String {
        "otel_logs".into()
    }
    pub fn clickhouse_traces_table() -> String {
        "otel_traces".into()
    }
    pub fn clickhouse_metrics_table() -> String {
        "otel_metrics".into()
    }
    pub fn log_level() -> String {
        "info".into()
    }
}
