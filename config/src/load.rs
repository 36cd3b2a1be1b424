//! Turning config text into a checked [`Config`]: substitute variables, parse YAML strictly, validate.
//! Every error names where it is: the file, the line when known, and the key path.

use crate::env::{self, SubstError};
use crate::model::{Config, ExporterConfig, QueueLimits};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// Why a configuration was refused. `Display` gives one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: {source}")]
    Env { origin: String, source: SubstErr },
    #[error("{origin}{}: {path}{}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), if path.is_empty() { "" } else { ": " })]
    Parse {
        origin: String,
        line: Option<usize>,
        path: String,
        message: String,
    },
    #[error("{origin}: {path}: {message}")]
    Invalid {
        origin: String,
        path: String,
        message: String,
    },
}

/// Wrapper so [`SubstError`] can be a `thiserror` source.
#[derive(Debug)]
pub struct SubstErr(pub SubstError);

impl fmt::Display for SubstErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for SubstErr {}

/// Reads and checks a config file, substituting variables from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, &origin, |k| std::env::var(k).ok())
}

/// Parses and checks config text; `origin` names it in errors (a path, or `<embedded default>`).
pub fn parse(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = env::substitute(text, lookup).map_err(|e| ConfigError::Env {
        origin: origin.to_string(),
        source: SubstErr(e),
    })?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        // serde_yaml_ng appends "at line X column Y"; the line is already in front of the message.
        let message = inner.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        // It sometimes starts with the key path too, which the error already shows.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map_or(message.clone(), str::to_string);
        ConfigError::Parse {
            origin: origin.to_string(),
            line,
            path: if path == "." { String::new() } else { path },
            message,
        }
    })?;
    validate(&config).map_err(|(path, message)| ConfigError::Invalid {
        origin: origin.to_string(),
        path,
        message,
    })?;
    Ok(config)
}

type Invalid = (String, String);

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    (path.into(), message.into())
}

fn admin(a: &crate::AdminConfig) -> Result<(), Invalid> {
    let token = a.token.as_deref().is_some_and(|t| !t.is_empty());
    if token && a.token_sha256.is_some() {
        return Err(invalid("admin", "set token or token_sha256, not both"));
    }
    if let Some(h) = &a.token_sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "admin.token_sha256",
                "must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
            ));
        }
    }
    Ok(())
}

fn durable(d: &crate::DurableConfig) -> Result<(), Invalid> {
    if d.dir.trim().is_empty() {
        return Err(invalid("durable.dir", "must name a directory"));
    }
    if d.segment_bytes.is_some_and(|s| s.0 < 64 * 1024) {
        return Err(invalid("durable.segment_bytes", "must be at least 64KiB"));
    }
    if d.max_bytes.0 < 2 * d.segment_bytes().max(64 * 1024) {
        return Err(invalid(
            "durable.max_bytes",
            "must hold at least two segments (segment_bytes defaults to max_bytes / 8)",
        ));
    }
    positive("durable.commit_bytes", d.commit_bytes.0)?;
    if d.checkpoint_interval.0.is_zero() {
        return Err(invalid(
            "durable.checkpoint_interval",
            "must be greater than 0",
        ));
    }
    Ok(())
}

fn validate(c: &Config) -> Result<(), Invalid> {
    if c.memory_limit.is_some_and(|m| m.0 < 16 << 20) {
        return Err(invalid(
            "memory_limit",
            "must be at least 16MiB (the process itself needs about 10MiB)",
        ));
    }
    let r = &c.receivers;
    if !r.grpc.enabled && !r.http.enabled {
        return Err(invalid(
            "receivers",
            "at least one of grpc and http must be enabled",
        ));
    }
    if r.grpc.enabled {
        socket_addr("receivers.grpc.endpoint", &r.grpc.endpoint)?;
        positive(
            "receivers.grpc.max_request_bytes",
            r.grpc.max_request_bytes.0,
        )?;
        positive(
            "receivers.grpc.max_concurrent_streams",
            u64::from(r.grpc.max_concurrent_streams),
        )?;
    }
    if r.http.enabled {
        socket_addr("receivers.http.endpoint", &r.http.endpoint)?;
        positive(
            "receivers.http.max_request_bytes",
            r.http.max_request_bytes.0,
        )?;
        positive(
            "receivers.http.max_decompressed_bytes",
            r.http.max_decompressed_bytes.0,
        )?;
    }
    positive(
        "receivers.max_concurrent_requests",
        r.max_concurrent_requests as u64,
    )?;
    if c.reload.watch && c.reload.interval.0.is_zero() {
        return Err(invalid("reload.interval", "must be greater than 0"));
    }
    if let Some(auth) = &r.auth {
        if auth.tokens.is_empty() && auth.tokens_file.is_none() {
            return Err(invalid("receivers.auth", "set `tokens` or `tokens_file`"));
        }
        for (i, t) in auth.tokens.iter().enumerate() {
            let path = format!("receivers.auth.tokens[{i}]");
            if t.tenant.is_empty() {
                return Err(invalid(format!("{path}.tenant"), "must not be empty"));
            }
            match (&t.token_env, &t.token_sha256) {
                (Some(_), None) => {}
                (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => {
                    return Err(invalid(
                        format!("{path}.token_sha256"),
                        "must be 64 hex digits",
                    ))
                }
                _ => {
                    return Err(invalid(
                        path,
                        "set exactly one of token_env and token_sha256",
                    ))
                }
            }
        }
    }
    if c.admin.enabled {
        socket_addr("admin.endpoint", &c.admin.endpoint)?;
        admin(&c.admin)?;
    }
    if let Some(d) = &c.durable {
        durable(d)?;
    }
    queue_limits("pipeline.intake_queue", &c.pipeline.intake_queue)?;
    let sample = &c.pipeline.sample;
    probability(
        "pipeline.sample.traces.probability",
        sample.traces.probability,
    )?;
    probability(
        "pipeline.sample.logs.default_probability",
        sample.logs.default_probability,
    )?;
    for (i, limit) in sample.rate_limits.iter().enumerate() {
        let path = format!("pipeline.sample.rate_limits[{i}]");
        if limit.items_per_second.is_nan() || limit.items_per_second <= 0.0 {
            return Err(invalid(
                format!("{path}.items_per_second"),
                "must be greater than 0",
            ));
        }
        if limit.max_keys == 0 {
            return Err(invalid(format!("{path}.max_keys"), "must be at least 1"));
        }
        if limit.signal == crate::SignalKind::Metrics {
            return Err(invalid(
                format!("{path}.signal"),
                "rate limits apply to traces and logs",
            ));
        }
        if sample.rate_limits[..i].iter().any(|l| l.name == limit.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is used twice", limit.name),
            ));
        }
    }
    for (i, rule) in sample.logs.rules.iter().enumerate() {
        probability(
            &format!("pipeline.sample.logs.rules[{i}].probability"),
            rule.probability,
        )?;
        if rule.min_severity.is_some() && rule.severity.is_some() {
            return Err(invalid(
                format!("pipeline.sample.logs.rules[{i}]"),
                "set min_severity or severity, not both",
            ));
        }
    }
    if let Some(tail) = &sample.tail {
        tail_sampling(tail)?;
    }
    if sample.policy_attribute.as_deref() == Some("") {
        return Err(invalid(
            "pipeline.sample.policy_attribute",
            "must not be empty",
        ));
    }
    redaction(&c.pipeline.redact)?;
    crate::span_metrics::check(c)?;
    if c.exporters.is_empty() {
        return Err(invalid("exporters", "at least one exporter is required"));
    }
    for (name, e) in &c.exporters {
        exporter(&format!("exporters.{name}"), e)?;
        if e.queue.overflow == crate::Overflow::Spill {
            spill(name, e, c.durable.is_some())?;
        }
    }
    let with_trace = sample
        .tail
        .as_ref()
        .is_some_and(|t| t.logs == crate::TailLogs::WithTrace);
    if with_trace
        && !c
            .exporters
            .values()
            .any(|e| e.receives(crate::SignalKind::Traces))
    {
        return Err(invalid(
            "pipeline.sample.tail.logs",
            "with_trace holds logs until their trace is decided, so an exporter must take traces",
        ));
    }
    Ok(())
}

fn tail_sampling(t: &crate::TailSamplingConfig) -> Result<(), Invalid> {
    const PATH: &str = "pipeline.sample.tail";
    positive(&format!("{PATH}.max_traces"), t.max_traces as u64)?;
    positive(&format!("{PATH}.max_bytes"), t.max_bytes.0)?;
    if t.decision_wait.0.is_zero() {
        return Err(invalid(
            format!("{PATH}.decision_wait"),
            "must be greater than 0",
        ));
    }
    if t.root_wait > t.decision_wait {
        return Err(invalid(
            format!("{PATH}.root_wait"),
            "must not be longer than decision_wait",
        ));
    }
    if t.policies.is_empty() {
        return Err(invalid(
            format!("{PATH}.policies"),
            "at least one policy is required (traces no policy keeps are dropped)",
        ));
    }
    for (i, p) in t.policies.iter().enumerate() {
        let path = format!("{PATH}.policies[{i}]");
        if p.name.is_empty() || t.policies[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is empty or used twice", p.name),
            ));
        }
        tail_condition(&path, p)?;
        for (key, rate) in [("rate", p.rate), ("traces_per_second", p.traces_per_second)] {
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                return Err(invalid(format!("{path}.{key}"), "must be greater than 0"));
            }
        }
        if p.drop == Some(false) {
            return Err(invalid(
                format!("{path}.drop"),
                "`drop: false` is the default; remove it",
            ));
        }
        if p.drop.is_some() && (p.rate.is_some() || p.traces_per_second.is_some()) {
            return Err(invalid(
                format!("{path}.drop"),
                "a drop policy takes no budget (rate, traces_per_second)",
            ));
        }
        if p.reads_logs() && t.logs != crate::TailLogs::WithTrace {
            return Err(invalid(
                path,
                "log_severity and log_attribute see log records only with `logs: with_trace`",
            ));
        }
    }
    Ok(())
}

/// Checks one condition: exactly one kind set, and its values usable. Entries of `and` carry a
/// condition only.
fn tail_condition(path: &str, p: &crate::TailPolicyConfig) -> Result<(), Invalid> {
    const KINDS: &str = "error, latency, attribute, numeric_attribute, status_code, span_count, \
                         trace_bytes, log_severity, log_attribute, probability, rate, and";
    if p.conditions().len() != 1 {
        return Err(invalid(path, format!("set exactly one of {KINDS}")));
    }
    if p.error == Some(false) {
        return Err(invalid(
            format!("{path}.error"),
            "`error: false` matches nothing; remove the policy or use `error: true`",
        ));
    }
    if let Some(prob) = p.probability {
        probability(&format!("{path}.probability"), prob)?;
    }
    for (key, a) in [
        ("attribute", &p.attribute),
        ("log_attribute", &p.log_attribute),
    ] {
        let Some(a) = a else { continue };
        if a.key.is_empty() {
            return Err(invalid(format!("{path}.{key}.key"), "must not be empty"));
        }
        if let Some(re) = &a.regex {
            if !a.values.is_empty() {
                return Err(invalid(
                    format!("{path}.{key}"),
                    "set values or regex, not both",
                ));
            }
            if let Err(e) = regex::Regex::new(re) {
                return Err(invalid(format!("{path}.{key}.regex"), e.to_string()));
            }
        }
    }
    if let Some(n) = &p.numeric_attribute {
        let at = format!("{path}.numeric_attribute");
        if n.key.is_empty() {
            return Err(invalid(format!("{at}.key"), "must not be empty"));
        }
        ordered(&at, n.min, n.max)?;
    }
    if let Some(c) = &p.span_count {
        ordered(&format!("{path}.span_count"), c.min, c.max)?;
    }
    if let Some(b) = &p.trace_bytes {
        ordered(
            &format!("{path}.trace_bytes"),
            b.min.map(|v| v.0),
            b.max.map(|v| v.0),
        )?;
    }
    if p.status_code.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            format!("{path}.status_code"),
            "list at least one of ok, error, unset",
        ));
    }
    if let Some(all) = &p.and {
        if all.len() < 2 {
            return Err(invalid(
                format!("{path}.and"),
                "list at least two conditions (one needs no `and`)",
            ));
        }
        for (j, c) in all.iter().enumerate() {
            let at = format!("{path}.and[{j}]");
            if !c.name.is_empty()
                || c.drop.is_some()
                || c.traces_per_second.is_some()
                || c.rate.is_some()
            {
                return Err(invalid(
                    at,
                    "entries of `and` are conditions: name, drop, rate and traces_per_second \
                     belong to the policy",
                ));
            }
            tail_condition(&at, c)?;
        }
    }
    Ok(())
}

/// A `[min, max]` range: at least one bound, and `min <= max`.
fn ordered<T: PartialOrd + Copy>(
    path: &str,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), Invalid> {
    match (min, max) {
        (None, None) => Err(invalid(path, "set min, max or both")),
        (Some(lo), Some(hi)) if lo > hi => Err(invalid(path, "min must not exceed max")),
        _ => Ok(()),
    }
}

fn redaction(r: &crate::redact::RedactConfig) -> Result<(), Invalid> {
    const PATH: &str = "pipeline.redact";
    if r.mask.replacement.is_empty() {
        return Err(invalid(
            format!("{PATH}.mask.replacement"),
            "must not be empty (an empty mask could not be told from a value)",
        ));
    }
    for (i, k) in r.keys.iter().enumerate() {
        if k.key.trim_matches('*').is_empty() {
            return Err(invalid(
                format!("{PATH}.keys[{i}].key"),
                "needs at least one character besides `*`",
            ));
        }
    }
    for (i, p) in r.patterns.iter().enumerate() {
        let path = format!("{PATH}.patterns[{i}]");
        if p.name.is_empty() || r.patterns[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is empty or used twice", p.name),
            ));
        }
        match regex::Regex::new(&p.regex) {
            Ok(re) if re.is_match("") => {
                return Err(invalid(
                    format!("{path}.regex"),
                    "matches the empty string, so it would match everywhere",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(invalid(format!("{path}.regex"), e.to_string())),
        }
    }
    let hashes = r.actions().any(|a| a == crate::redact::Action::Hash);
    match &r.hash {
        None if hashes => {
            return Err(invalid(
                format!("{PATH}.hash"),
                "a rule uses `hash`; set hash.key_env to the variable holding the secret key",
            ))
        }
        Some(h) if h.key_env.is_empty() => {
            return Err(invalid(
                format!("{PATH}.hash.key_env"),
                "must name an environment variable",
            ))
        }
        Some(h) if !(8..=64).contains(&h.length) => {
            return Err(invalid(
                format!("{PATH}.hash.length"),
                "must be between 8 and 64 hex characters",
            ))
        }
        _ => {}
    }
    if r.summary_attribute.as_deref() == Some("") {
        return Err(invalid(
            format!("{PATH}.summary_attribute"),
            "must not be empty",
        ));
    }
    Ok(())
}

/// The spill log lives in `<durable.dir>/spill/<exporter>/<signal>`.
fn spill(name: &str, e: &ExporterConfig, durable: bool) -> Result<(), Invalid> {
    let path = format!("exporters.{name}.queue");
    if !durable {
        return Err(invalid(
            format!("{path}.overflow"),
            "`spill` writes to disk under durable.dir: configure `durable:` too",
        ));
    }
    let safe = |ch: char| ch.is_ascii_alphanumeric() || "-_.".contains(ch);
    if !name.chars().all(safe) || name.starts_with('.') {
        return Err(invalid(
            format!("{path}.overflow"),
            "with `spill` the exporter's name names a directory: use letters, digits, `-`, `_` and `.`",
        ));
    }
    if e.queue.spill_max_bytes.0 < 1 << 20 {
        return Err(invalid(
            format!("{path}.spill_max_bytes"),
            "must be at least 1MiB",
        ));
    }
    Ok(())
}

/// Whether `host` (no port, brackets allowed) is this machine.
fn loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of `http://host:port/...`, `https://…` or `host:port`.
fn host_of(endpoint: &str) -> &str {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Credentials must not cross the network in clear: refused unless `insecure: true`. And `tls:`
/// with an `http://` endpoint would be silently ignored, so it is an error.
fn transport_security(
    path: &str,
    what: &str,
    endpoint: &str,
    plaintext: bool,
    tls: bool,
    credentials: Option<&str>,
    insecure: bool,
) -> Result<(), Invalid> {
    if tls && endpoint.starts_with("http://") {
        return Err(invalid(
            format!("{path}.{what}.tls"),
            format!("`{endpoint}` is http://: use https:// with tls, or drop tls"),
        ));
    }
    if let Some(creds) = credentials {
        if plaintext && !insecure && !loopback_host(host_of(endpoint)) {
            return Err(invalid(
                format!("{path}.{what}"),
                format!("{creds} would go in clear to `{endpoint}`: use https:// (or tls), or set `{path}.insecure: true`"),
            ));
        }
    }
    Ok(())
}

fn exporter(path: &str, e: &ExporterConfig) -> Result<(), Invalid> {
    match e.destinations() {
        1 => {}
        0 => {
            return Err(invalid(
                path,
                "no destination: set exactly one of `file: {path: …}`, `clickhouse: {endpoint: …}`, `loki: {endpoint: …}`, `otlp: {endpoints: […]}` or `blackhole: {}`",
            ))
        }
        _ => {
            return Err(invalid(
                path,
                "set exactly one destination (file, clickhouse, loki, otlp or blackhole), not several",
            ))
        }
    }
    if let Some(o) = &e.otlp {
        let p = format!("{path}.otlp");
        match (o.endpoints.is_empty(), &o.resolve) {
            (true, None) => {
                return Err(invalid(
                    p,
                    "set `endpoints: [host:port, …]` or `resolve: name:port` (DNS)",
                ))
            }
            (false, Some(_)) => return Err(invalid(p, "set `endpoints` or `resolve`, not both")),
            _ => {}
        }
        for (i, ep) in o.endpoints.iter().enumerate() {
            let host_port = ep
                .strip_prefix("http://")
                .or_else(|| ep.strip_prefix("https://"))
                .unwrap_or(ep);
            if host_port
                .rsplit_once(':')
                .is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(invalid(
                    format!("{p}.endpoints[{i}]"),
                    format!("`{ep}` is not host:port"),
                ));
            }
        }
        if let Some(r) = &o.resolve {
            if r.rsplit_once(':')
                .is_none_or(|(h, port)| h.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(invalid(
                    format!("{p}.resolve"),
                    format!("`{r}` is not name:port"),
                ));
            }
        }
        positive(&format!("{p}.eject_after"), u64::from(o.eject_after))?;
    }
    if let Some(o) = &e.otlp {
        let creds = (!o.headers.is_empty()).then_some("headers");
        for ep in o.endpoints.iter().chain(o.resolve.as_ref()) {
            let plaintext = o.tls.is_none() && !ep.starts_with("https://");
            transport_security(
                path,
                "otlp",
                ep,
                plaintext,
                o.tls.is_some(),
                creds,
                e.insecure,
            )?;
        }
    }
    if let Some(c) = &e.clickhouse {
        let creds = c.password.is_some().then_some("the password");
        let tls = c.tls.is_some();
        for endpoint in std::iter::once(&c.endpoint).chain(&c.failover_endpoints) {
            let plaintext = endpoint.starts_with("http://");
            transport_security(
                path,
                "clickhouse",
                endpoint,
                plaintext,
                tls,
                creds,
                e.insecure,
            )?;
        }
    }
    if let Some(l) = &e.loki {
        let creds = if l.password.is_some() || l.username.is_some() {
            Some("basic auth")
        } else if l.bearer_token.is_some() {
            Some("the bearer token")
        } else {
            (!l.headers.is_empty()).then_some("headers")
        };
        let plaintext = l.endpoint.starts_with("http://");
        transport_security(
            path,
            "loki",
            &l.endpoint,
            plaintext,
            l.tls.is_some(),
            creds,
            e.insecure,
        )?;
    }
    if let Some(c) = &e.clickhouse {
        let p = format!("{path}.clickhouse");
        let failover = c.failover_endpoints.iter().enumerate();
        for (key, url) in std::iter::once(("endpoint".to_string(), &c.endpoint))
            .chain(failover.map(|(i, u)| (format!("failover_endpoints[{i}]"), u)))
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    format!("{p}.{key}"),
                    format!("`{url}` must be an http:// or https:// URL of the HTTP interface"),
                ));
            }
        }
        for (key, v) in [
            ("database", &c.database),
            ("logs_table", &c.logs_table),
            ("traces_table", &c.traces_table),
            ("metrics_table", &c.metrics_table),
        ] {
            if v.is_empty() {
                return Err(invalid(format!("{p}.{key}"), "must not be empty"));
            }
        }
        if c.database_attribute.is_some() {
            if let Err(e) = regex::Regex::new(&format!("^(?:{})$", c.database_pattern)) {
                return Err(invalid(format!("{p}.database_pattern"), e.to_string()));
            }
            positive(&format!("{p}.max_databases"), c.max_databases as u64)?;
        }
    }
    if let Some(l) = &e.loki {
        let p = format!("{path}.loki");
        if !(l.endpoint.starts_with("http://") || l.endpoint.starts_with("https://")) {
            return Err(invalid(
                format!("{p}.endpoint"),
                format!("`{}` must be an http:// or https:// URL", l.endpoint),
            ));
        }
        positive(&format!("{p}.max_request_bytes"), l.max_request_bytes.0)?;
        positive(&format!("{p}.max_streams"), l.max_streams as u64)?;
        if l.bearer_token.is_some() && l.username.is_some() {
            return Err(invalid(
                p,
                "set either username/password or bearer_token, not both",
            ));
        }
        if let Some(s) = &e.signals {
            if s.iter().any(|s| *s != crate::SignalKind::Logs) {
                return Err(invalid(
                    format!("{path}.signals"),
                    "the loki exporter takes only logs",
                ));
            }
        }
    }
    if let Some(f) = &e.file {
        if f.path.trim().is_empty() {
            return Err(invalid(format!("{path}.file.path"), "must not be empty"));
        }
        positive(&format!("{path}.file.rotate_bytes"), f.rotate_bytes.0)?;
    }
    if let Some(signals) = &e.signals {
        if signals.is_empty() {
            return Err(invalid(
                format!("{path}.signals"),
                "must list at least one signal",
            ));
        }
    }
    queue_limits(&format!("{path}.queue"), &e.queue.limits())?;
    let batch = e.batch();
    positive(&format!("{path}.batch.max_items"), batch.max_items as u64)?;
    positive(&format!("{path}.batch.max_bytes"), batch.max_bytes.0)?;
    positive(&format!("{path}.max_in_flight"), e.max_in_flight as u64)?;
    if e.retry.initial_backoff.0.is_zero() || e.retry.max_backoff < e.retry.initial_backoff {
        return Err(invalid(
            format!("{path}.retry"),
            "initial_backoff must be > 0 and ≤ max_backoff",
        ));
    }
    if e.timeout.0.is_zero() {
        return Err(invalid(format!("{path}.timeout"), "must be > 0"));
    }
    Ok(())
}

/// The queue counts items and bytes in one 64-bit word: 24 bits of items, 40 bits of bytes.
const QUEUE_MAX_ITEMS: u64 = (1 << 24) - 1;
const QUEUE_MAX_BYTES: u64 = (1 << 40) - 1;

fn queue_limits(path: &str, q: &QueueLimits) -> Result<(), Invalid> {
    positive(&format!("{path}.max_items"), q.max_items as u64)?;
    positive(&format!("{path}.max_bytes"), q.max_bytes.0)?;
    if q.max_items as u64 > QUEUE_MAX_ITEMS {
        return Err(invalid(
            format!("{path}.max_items"),
            format!("must be at most {QUEUE_MAX_ITEMS}"),
        ));
    }
    if q.max_bytes.0 > QUEUE_MAX_BYTES {
        return Err(invalid(format!("{path}.max_bytes"), "must be at most 1TiB"));
    }
    Ok(())
}

fn probability(path: &str, p: f64) -> Result<(), Invalid> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("{p} is not a probability between 0 and 1"),
        ))
    }
}

fn positive(path: &str, v: u64) -> Result<(), Invalid> {
    if v == 0 {
        Err(invalid(path, "must be greater than 0"))
    } else {
        Ok(())
    }
}

fn socket_addr(path: &str, v: &str) -> Result<(), Invalid> {
    v.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        invalid(
            path,
            format!("`{v}` is not an address:port such as 127.0.0.1:4317 or [::1]:4317"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Overflow;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn err(text: &str) -> String {
        parse(text, "test.yaml", no_env).unwrap_err().to_string()
    }

    #[test]
    fn credentials_in_clear_beyond_loopback_are_refused_unless_insecure() {
        let refused = [
            (
                "clickhouse: {endpoint: \"http://ch.example:8123\", password: p}",
                "exporters.x.clickhouse",
            ),
            (
                "loki: {endpoint: \"http://loki:3100\", bearer_token: t}",
                "exporters.x.loki",
            ),
            (
                "loki: {endpoint: \"http://loki:3100\", username: u, password: p}",
                "exporters.x.loki",
            ),
            (
                "otlp: {endpoints: [\"gw:4317\"], headers: {authorization: secret}}",
                "exporters.x.otlp",
            ),
            (
                "otlp: {resolve: \"gw.svc:4317\", headers: {x-api-key: k}}",
                "exporters.x.otlp",
            ),
        ];
        for (dest, key) in refused {
            let yaml = format!("exporters:\n  x:\n    {dest}\n");
            let e = err(&yaml);
            assert!(
                e.contains(key) && e.contains("insecure: true"),
                "{dest}: {e}"
            );
            let ok = format!("exporters:\n  x:\n    {dest}\n    insecure: true\n");
            assert!(parse(&ok, "t.yaml", no_env).is_ok(), "{dest} with insecure");
        }
        for fine in [
            "clickhouse: {endpoint: \"http://127.0.0.1:8123\", password: p}",
            "clickhouse: {endpoint: \"https://ch.example:8443\", password: p}",
            "loki: {endpoint: \"http://localhost:3100\", bearer_token: t}",
            "otlp: {endpoints: [\"[::1]:4317\"], headers: {authorization: s}}",
            "otlp: {endpoints: [\"gw:4317\"], headers: {authorization: s}, tls: {}}",
            "clickhouse: {endpoint: \"http://ch.example:8123\"}",
        ] {
            let yaml = format!("exporters:\n  x:\n    {fine}\n");
            assert!(
                parse(&yaml, "t.yaml", no_env).is_ok(),
                "{fine}: {}",
                err(&yaml)
            );
        }
    }

    #[test]
    fn tls_with_an_http_endpoint_is_an_error() {
        for dest in [
            "clickhouse: {endpoint: \"http://ch:8123\", tls: {}}",
            "loki: {endpoint: \"http://loki:3100\", tls: {}}",
            "otlp: {endpoints: [\"http://gw:4317\"], tls: {}}",
        ] {
            let e = err(&format!("exporters:\n  x:\n    {dest}\n"));
            assert!(e.contains(".tls") && e.contains("https://"), "{dest}: {e}");
        }
    }

    #[test]
    fn embedded_default_parses() {
        let c = parse(crate::DEFAULT_CONFIG_YAML, "<embedded default>", no_env).unwrap();
        assert_eq!(c.receivers.grpc.endpoint, "127.0.0.1:4317");
        assert_eq!(c.receivers.http.endpoint, "127.0.0.1:4318");
        assert_eq!(c.admin.endpoint, "127.0.0.1:8888");
        let file = c.exporters.values().find_map(|e| e.file.as_ref()).unwrap();
        assert_eq!(file.path, "./weir-data");
    }

    #[test]
    fn embedded_default_reads_the_documented_variables() {
        let env = |k: &str| match k {
            "WEIR_GRPC_ADDR" => Some("127.0.0.1:14317".to_string()),
            "WEIR_HTTP_ADDR" => Some("127.0.0.1:14318".to_string()),
            "WEIR_ADMIN_ADDR" => Some("127.0.0.1:18888".to_string()),
            "WEIR_DATA_DIR" => Some("/tmp/w".to_string()),
            _ => None,
        };
        let c = parse(crate::DEFAULT_CONFIG_YAML, "d", env).unwrap();
        assert_eq!(c.receivers.grpc.endpoint, "127.0.0.1:14317");
        assert_eq!(c.receivers.http.endpoint, "127.0.0.1:14318");
        assert_eq!(c.admin.endpoint, "127.0.0.1:18888");
        assert_eq!(
            c.exporters
                .values()
                .find_map(|e| e.file.as_ref())
                .unwrap()
                .path,
            "/tmp/w"
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_path() {
        let e = err(
            "receivers:\n  grpc:\n    endpont: 1.2.3.4:1\nexporters:\n  b:\n    blackhole: {}\n",
        );
        assert!(e.starts_with("test.yaml:3:"), "{e}");
        assert!(e.contains("receivers.grpc"), "{e}");
        assert!(e.contains("unknown field `endpont`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("exporters:\n  f:\n    blackhole: {}\n    queue:\n      max_items: lots\n");
        assert!(e.contains("exporters.f.queue.max_items"), "{e}");
        assert!(e.contains(":5"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        assert!(err("exporters:\n  x: {}\n").contains("exporters.x: no destination"));
        assert!(
            err("exporters:\n  x:\n    blackhole: {}\n    file: {path: /tmp}\n")
                .contains("exactly one")
        );
        assert!(
            err("receivers:\n  grpc: {endpoint: nowhere}\nexporters:\n  b: {blackhole: {}}\n")
                .contains("receivers.grpc.endpoint")
        );
        assert!(err("exporters: {}\n").contains("at least one exporter"));
        assert!(
            err("exporters:\n  b: {blackhole: {}, batch: {max_items: 0}}\n")
                .contains("exporters.b.batch.max_items: must be greater than 0")
        );
    }

    #[test]
    fn missing_variable_is_reported_with_line() {
        let e = err("exporters:\n  f:\n    file: {path: ${NOT_SET_ANYWHERE}}\n");
        assert!(
            e.contains("line 3") && e.contains("NOT_SET_ANYWHERE"),
            "{e}"
        );
    }

    #[test]
    fn full_exporter_config_parses() {
        let c = parse(
            "exporters:\n  f:\n    file: {path: /d, rotate_bytes: 1MiB, max_files: 2}\n    signals: [logs]\n    queue: {max_items: 10, max_bytes: 1KiB, overflow: drop_newest}\n    batch: {max_items: 5, max_bytes: 100, max_age: 50ms}\n    retry: {initial_backoff: 10ms, max_backoff: 1s, max_elapsed: 1m}\n",
            "t",
            no_env,
        )
        .unwrap();
        let f = &c.exporters["f"];
        assert_eq!(f.queue.overflow, Overflow::DropNewest);
        assert_eq!(f.batch().max_age.0, std::time::Duration::from_millis(50));
        assert_eq!(f.batch().max_bytes, crate::ByteSize(100));
        assert!(f.receives(crate::SignalKind::Logs) && !f.receives(crate::SignalKind::Traces));
    }

    #[test]
    fn clickhouse_gets_its_own_batch_defaults_and_checks_its_url() {
        let c = parse(
            "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://127.0.0.1:8123\"}\n    batch: {max_age: 1s}\n",
            "t",
            no_env,
        )
        .unwrap();
        let ch = &c.exporters["ch"];
        let b = ch.batch();
        assert_eq!(
            (b.max_items, b.max_bytes),
            (50_000, crate::ByteSize::mib(32))
        );
        assert_eq!(b.max_age.0, std::time::Duration::from_secs(1));
        let cfg = ch.clickhouse.as_ref().unwrap();
        assert_eq!(
            (cfg.database.as_str(), cfg.logs_table.as_str()),
            ("otel", "otel_logs")
        );
        assert!(cfg.create_schema);
        assert!(
            err("exporters:\n  ch:\n    clickhouse: {endpoint: \"127.0.0.1:8123\"}\n")
                .contains("exporters.ch.clickhouse.endpoint")
        );
        assert!(
            err("exporters:\n  ch:\n    clickhouse: {endpoint: \"http://x\", layout: new}\n")
                .contains("exporters.ch.clickhouse.layout")
        );
        assert!(cfg.failover_endpoints.is_empty());
        assert!(err(
            "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://a:8123\", failover_endpoints: [\"b:8123\"]}\n"
        )
        .contains("exporters.ch.clickhouse.failover_endpoints[0]"));
        // Every server gets the password, so each one is checked for sending it in clear.
        assert!(err(
            "exporters:\n  ch:\n    clickhouse: {endpoint: \"http://127.0.0.1:8123\", failover_endpoints: [\"http://ch2:8123\"], password: p}\n"
        )
        .contains("`http://ch2:8123`"));
    }

    #[test]
    fn sampling_rules_parse_and_are_checked() {
        let c = parse(
            "pipeline:\n  sample:\n    traces: {probability: 0.25}\n    logs:\n      rules:\n        - {min_severity: warn, probability: 1}\n        - {name: info, severity: info, service: checkout, probability: 0.1}\nexporters:\n  b: {blackhole: {}}\n",
            "t",
            no_env,
        )
        .unwrap();
        let s = &c.pipeline.sample;
        assert_eq!(s.traces.probability, 0.25);
        assert_eq!(s.logs.rules[1].severity.unwrap().range(), (9, 12));
        assert_eq!(s.logs.rules[0].min_severity.unwrap().range().0, 13);
        let e = err("pipeline:\n  sample:\n    logs:\n      rules:\n        - {probability: 1.5}\nexporters:\n  b: {blackhole: {}}\n");
        assert!(
            e.contains("pipeline.sample.logs.rules[0].probability"),
            "{e}"
        );
        let e = err("pipeline:\n  sample:\n    logs:\n      rules:\n        - {severity: loud, probability: 1}\nexporters:\n  b: {blackhole: {}}\n");
        assert!(e.contains("pipeline.sample.logs.rules[0].severity"), "{e}");
    }

    #[test]
    fn tail_policies_parse_and_are_checked() {
        let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  sample:\n    tail:\n";
        let c = parse(
            &format!("{base}      decision_wait: 5s\n      policies:\n        - {{name: errors, error: true}}\n        - {{name: slow, latency: 300ms, traces_per_second: 10}}\n        - {{name: vip, attribute: {{key: tier, values: [gold]}}}}\n        - {{name: some, probability: 0.1}}\n        - {{name: trickle, rate: 5}}\n"),
            "t.yaml",
            no_env,
        )
        .unwrap();
        let t = c.pipeline.sample.tail.unwrap();
        assert_eq!(t.decision_wait, crate::Duration::secs(5));
        assert_eq!(t.root_wait, crate::Duration::secs(1));
        assert_eq!(t.policies.len(), 5);
        assert_eq!(t.policies[1].traces_per_second, Some(10.0));

        let e = err(&format!(
            "{base}      policies:\n        - {{name: a, error: true, rate: 3}}\n"
        ));
        assert!(
            e.contains("pipeline.sample.tail.policies[0]: set exactly one"),
            "{e}"
        );
        let e = err(&format!("{base}      policies:\n        - {{name: a, error: true}}\n        - {{name: a, rate: 1}}\n"));
        assert!(e.contains("policies[1].name"), "{e}");
        let e = err(&format!("{base}      policies: []\n"));
        assert!(e.contains("pipeline.sample.tail.policies"), "{e}");
        let e = err(&format!(
            "{base}      root_wait: 20s\n      policies:\n        - {{name: a, error: true}}\n"
        ));
        assert!(e.contains("root_wait"), "{e}");
        let e = err(&format!(
            "{base}      policies:\n        - {{name: a, probability: 2}}\n"
        ));
        assert!(e.contains("policies[0].probability"), "{e}");
        let e = err(&format!(
            "{base}      policies:\n        - {{name: a, latncy: 1s}}\n"
        ));
        assert!(e.contains("latncy"), "{e}");
    }

    #[test]
    fn richer_tail_policies_and_logs_with_trace_are_checked() {
        let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  sample:\n    tail:\n";
        let with_trace = format!("{base}      logs: with_trace\n      policies:\n");
        let ok = |policies: &str| {
            parse(&format!("{with_trace}{policies}"), "t.yaml", no_env)
                .unwrap_or_else(|e| panic!("{policies}: {e}"))
        };
        let c = ok("        - {name: h, drop: true, attribute: {key: http.route, regex: \"^/health\", invert: false}}\n        - {name: e, status_code: [error, STATUS_CODE_UNSET]}\n        - {name: l, log_severity: error}\n        - {name: big, span_count: {min: 50}}\n        - {name: n, numeric_attribute: {key: retries, min: 1, max: 9}}\n        - {name: s, trace_bytes: {max: 2MiB}}\n        - {name: a, log_attribute: {key: audit, values: [x]}}\n        - name: both\n          and:\n            - {error: true}\n            - {latency: 1s}\n");
        let t = c.pipeline.sample.tail.unwrap();
        assert_eq!(t.logs, crate::TailLogs::WithTrace);
        assert_eq!(
            t.policies[1].status_code,
            Some(vec![
                crate::StatusCodeName::Error,
                crate::StatusCodeName::Unset
            ])
        );
        assert_eq!(t.policies[7].and.as_ref().unwrap().len(), 2);

        let bad = |policies: &str, want: &str| {
            let e = err(&format!("{with_trace}{policies}"));
            assert!(e.contains(want), "{policies}: {e}");
        };
        bad(
            "        - {name: x, attribute: {key: k, regex: \"(\"}}\n",
            "pipeline.sample.tail.policies[0].attribute.regex",
        );
        bad(
            "        - {name: x, attribute: {key: k, values: [a], regex: a}}\n",
            "set values or regex, not both",
        );
        bad(
            "        - {name: x, span_count: {min: 5, max: 2}}\n",
            "policies[0].span_count: min must not exceed max",
        );
        bad(
            "        - {name: x, numeric_attribute: {key: k}}\n",
            "policies[0].numeric_attribute: set min, max or both",
        );
        bad("        - {name: x, status_code: [loud]}\n", "status_code");
        bad(
            "        - {name: x, drop: true, error: true, traces_per_second: 5}\n",
            "policies[0].drop: a drop policy takes no budget",
        );
        bad(
            "        - name: x\n          and: [{error: true}]\n",
            "policies[0].and: list at least two",
        );
        bad(
            "        - name: x\n          and: [{error: true}, {name: y, latency: 1s}]\n",
            "policies[0].and[1]: entries of `and` are conditions",
        );
        bad(
            "        - name: x\n          and: [{error: true}, {latency: 1s, error: true}]\n",
            "policies[0].and[1]: set exactly one",
        );
        let e = err(&format!(
            "{base}      policies:\n        - {{name: x, log_severity: error}}\n"
        ));
        assert!(e.contains("only with `logs: with_trace`"), "{e}");
        let e = err("exporters:\n  l: {loki: {endpoint: \"http://127.0.0.1:3100\"}}\npipeline:\n  sample:\n    tail:\n      logs: with_trace\n      policies: [{name: a, error: true}]\n");
        assert!(
            e.contains("pipeline.sample.tail.logs") && e.contains("an exporter must take traces"),
            "{e}"
        );
    }

    #[test]
    fn redaction_config_parses_and_is_checked() {
        let base = "exporters:\n  b: {blackhole: {}}\npipeline:\n  redact:\n    enabled: true\n";
        let c = parse(
            &format!("{base}    keys:\n      - {{key: \"*password*\", action: drop}}\n    detectors: {{email: hash, ipv4: off}}\n    patterns:\n      - {{name: order, regex: \"ORD-[0-9]{{6}}\"}}\n    hash: {{key_env: K, algorithm: blake3}}\n    mask: {{keep_suffix: 4}}\n"),
            "r.yaml",
            no_env,
        )
        .unwrap();
        let r = &c.pipeline.redact;
        use crate::redact::{Action, Switch};
        assert_eq!(r.detectors.email, Switch::On(Action::Hash));
        assert_eq!(r.detectors.ipv4, Switch::Off);
        assert_eq!(
            r.detectors.jwt,
            Switch::On(Action::Mask),
            "the rest default to mask"
        );
        assert_eq!(r.patterns[0].action, Action::Mask);

        let e = err(&format!("{base}    detectors: {{email: hash}}\n"));
        assert!(e.contains("pipeline.redact.hash"), "{e}");
        let e = err(&format!(
            "{base}    patterns:\n      - {{name: x, regex: \"(unclosed\"}}\n"
        ));
        assert!(e.contains("pipeline.redact.patterns[0].regex"), "{e}");
        let e = err(&format!(
            "{base}    patterns:\n      - {{name: x, regex: \"a*\"}}\n"
        ));
        assert!(e.contains("empty string"), "{e}");
        let e = err(&format!("{base}    detectors: {{email: scramble}}\n"));
        assert!(
            e.contains("pipeline.redact.detectors.email") && e.contains("scramble"),
            "{e}"
        );
        let e = err(&format!("{base}    detectors: {{emial: mask}}\n"));
        assert!(e.contains("emial"), "{e}");
        let e = err(&format!(
            "{base}    keys:\n      - {{key: \"**\", action: mask}}\n"
        ));
        assert!(e.contains("keys[0].key"), "{e}");
    }

    #[test]
    fn spill_needs_durable_and_a_name_fit_for_a_directory() {
        let spilling = |name: &str| {
            format!(
                "exporters:\n  \"{name}\":\n    blackhole: {{}}\n    queue: {{overflow: spill}}\n"
            )
        };
        let e = err(&spilling("slow"));
        assert!(
            e.contains("exporters.slow.queue.overflow") && e.contains("durable"),
            "{e}"
        );
        let durable = "durable: {dir: /tmp/w}\n";
        let e = err(&format!("{durable}{}", spilling("../x")));
        assert!(e.contains("names a directory"), "{e}");
        let e = err(&format!(
            "{durable}{}",
            spilling("slow").replace("spill}", "spill, spill_max_bytes: 1KiB}")
        ));
        assert!(e.contains("exporters.slow.queue.spill_max_bytes"), "{e}");
        let c = parse(&format!("{durable}{}", spilling("slow")), "t", |_| None).unwrap();
        assert_eq!(c.exporters["slow"].queue.overflow, crate::Overflow::Spill);
        assert_eq!(c.exporters["slow"].queue.spill_max_bytes.0, 1 << 30);
    }

    #[test]
    fn memory_limit_is_checked_and_derived_from_what_the_queues_hold() {
        let e = err("memory_limit: 1MiB\nexporters: {x: {blackhole: {}}}\n");
        assert!(e.contains("memory_limit") && e.contains("16MiB"), "{e}");
        let c = parse(
            "memory_limit: 128MiB\nexporters: {x: {blackhole: {}}}\n",
            "t",
            no_env,
        )
        .unwrap();
        assert_eq!(c.memory_limit.unwrap().0, 128 << 20);
        // Logs only: one intake queue (32MiB) and one exporter queue (64MiB), plus 64MiB to work in.
        let logs = parse(
            "exporters: {x: {blackhole: {}, signals: [logs]}}\n",
            "t",
            no_env,
        )
        .unwrap();
        assert_eq!(logs.derived_memory_limit(), (32 + 64 + 64) << 20);
        let tail = parse(
            "pipeline: {sample: {tail: {max_bytes: 10MiB, policies: [{name: all, probability: 1.0}]}}}\n\
             exporters: {x: {blackhole: {}, signals: [traces]}}\n",
            "t",
            no_env,
        )
        .unwrap();
        assert_eq!(tail.derived_memory_limit(), (32 + 64 + 10 + 64) << 20);
    }

    #[test]
    fn broken_yaml_is_an_error_not_a_panic() {
        let e = err("exporters: [\n");
        assert!(e.starts_with("test.yaml"), "{e}");
    }
}
