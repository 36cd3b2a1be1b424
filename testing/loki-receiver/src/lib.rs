//! A Grafana Loki push-API receiver for tests, following the acceptance algorithm of
//! `shared/reference/loki-push.md` §7 with Loki's defaults: routing, tenant header, content
//! encodings and types, snappy-block protobuf and JSON bodies, label grammar, `service_name`
//! discovery, stream and entry validation with partial acceptance, the tenant token bucket, the
//! per-tenant stream limit, the out-of-order window and duplicate suppression — plus fault injection
//! (scripted status codes, `Retry-After`, connection resets) for exporter tests.
//!
//! # Layout
//! - [`labels`]: the label-set grammar.
//! - [`proto`]: the push protobuf.
//! - this file: the server, the store and the algorithm.

pub mod labels;
pub mod proto;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use labels::Labels;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Loki's defaults (v3.7).
#[derive(Debug, Clone)]
pub struct Limits {
    pub auth_enabled: bool,
    pub max_label_names: usize,
    pub max_label_name_len: usize,
    pub max_label_value_len: usize,
    pub reject_old_after: Duration,
    pub creation_grace: Duration,
    pub max_line: usize,
    pub max_sm_bytes: usize,
    pub max_sm_entries: usize,
    pub rate_bytes_per_sec: f64,
    pub burst_bytes: f64,
    pub max_streams_per_tenant: usize,
    pub out_of_order_window: Duration,
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auth_enabled: false,
            max_label_names: 15,
            max_label_name_len: 1024,
            max_label_value_len: 2048,
            reject_old_after: Duration::from_secs(7 * 24 * 3600),
            creation_grace: Duration::from_secs(600),
            max_line: 262_144,
            max_sm_bytes: 65_536,
            max_sm_entries: 128,
            rate_bytes_per_sec: 4.0 * 1_048_576.0,
            burst_bytes: 6.0 * 1_048_576.0,
            max_streams_per_tenant: 5000,
            out_of_order_window: Duration::from_secs(3600),
            max_body: 100 << 20,
        }
    }
}

/// A scripted answer, used instead of processing the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    Status {
        code: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// Close the connection without answering (the request is not stored).
    Reset,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ts: i128,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

#[derive(Default)]
struct Stream {
    entries: Vec<Entry>,
    highest: i128,
}

#[derive(Default)]
struct Tenant {
    streams: HashMap<String, Stream>,
    tokens: f64,
    refilled: Option<Instant>,
}

#[derive(Default)]
struct Store {
    tenants: HashMap<String, Tenant>,
    faults: VecDeque<Fault>,
    /// Every request seen: (tenant header, status answered).
    requests: Vec<(Option<String>, u16)>,
}

#[derive(Clone)]
pub struct Receiver {
    limits: Arc<Limits>,
    store: Arc<Mutex<Store>>,
    pub addr: SocketAddr,
}

impl Receiver {
    /// Starts on a free loopback port.
    pub async fn start(limits: Limits) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            limits: Arc::new(limits),
            store: Arc::new(Mutex::new(Store::default())),
            addr,
        };
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next requests with these faults, in order, before normal processing resumes.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.store().faults.extend(faults);
    }

    /// Stored streams of `tenant` (`fake` when auth is off): rendered labels → entries in stored order.
    pub fn streams(&self, tenant: &str) -> HashMap<String, Vec<Entry>> {
        self.store()
            .tenants
            .get(tenant)
            .map(|t| {
                t.streams
                    .iter()
                    .map(|(k, s)| (k.clone(), s.entries.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn entry_count(&self, tenant: &str) -> usize {
        self.streams(tenant).values().map(Vec::len).sum()
    }

    /// (tenant header, status) of every request so far.
    pub fn requests(&self) -> Vec<(Option<String>, u16)> {
        self.store().requests.clone()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn text(status: u16, body: impl Into<String>) -> Response {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn push(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = r.store().faults.pop_front();
    let tenant_header = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = match fault {
        Some(Fault::Reset) => {
            r.store().requests.push((tenant_header, 0));
            // Dropping the connection mid-request: panic the handler so hyper closes it unanswered.
            std::panic::resume_unwind(Box::new("injected connection reset"));
        }
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => {
            let mut resp = text(code, body);
            if let Some(s) = retry_after {
                resp.headers_mut().insert("retry-after", s.into());
            }
            resp
        }
        None => handle(&r, &headers, &body),
    };
    r.store()
        .requests
        .push((tenant_header, response.status().as_u16()));
    response
}

/// §7 of the reference.
fn handle(r: &Receiver, headers: &HeaderMap, body: &[u8]) -> Response {
    let limits = &r.limits;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // 2. Tenant.
    let tenant = if limits.auth_enabled {
        let t = header("x-scope-orgid");
        if t.is_empty() {
            return text(401, "no org id");
        }
        if let Err(e) = valid_tenant(t) {
            return text(400, e);
        }
        t.to_string()
    } else {
        "fake".to_string()
    };
    // 3. Decode.
    if body.len() > limits.max_body {
        return text(
            413,
            format!(
                "request body too large: message size too large than max ({} vs {})",
                body.len(),
                limits.max_body
            ),
        );
    }
    let body: Vec<u8> = match header("content-encoding") {
        "" | "snappy" => body.to_vec(),
        "gzip" => match inflate(flate2::read::GzDecoder::new(body)) {
            Ok(b) => b,
            Err(e) => return text(400, e),
        },
        "deflate" => match inflate(flate2::read::DeflateDecoder::new(body)) {
            Ok(b) => b,
            Err(e) => return text(400, e),
        },
        other => return text(400, format!("Content-Encoding {other:?} not supported")),
    };
    let content_type = header("content-type");
    let media = match media_type(content_type) {
        Ok(m) => m,
        Err(e) => return text(400, e),
    };
    let streams = if media == "application/json" {
        match json_streams(&body) {
            Ok(s) => s,
            Err(e) => return text(400, e),
        }
    } else {
        match proto_streams(&body) {
            Ok(s) => s,
            Err(e) => return text(400, e),
        }
    };
    // 5. Zero streams.
    if streams.is_empty() {
        return text(
            422,
            "error at least one valid stream is required for ingestion",
        );
    }
    // 4 + 6. Labels, then stream and entry validation; errors are collected, valid data kept.
    let now = now_nanos();
    let mut errors: Vec<String> = Vec::new();
    let mut accepted: Vec<(Labels, Vec<Entry>)> = Vec::new();
    for (label_text, entries) in streams {
        let mut labels = match labels::parse(&label_text) {
            Ok(l) => l,
            Err(e) => return text(400, format!("couldn't parse labels: {e}")),
        };
        if !labels.iter().any(|(k, _)| k == "service_name") {
            let discovered = [
                "service",
                "app",
                "application",
                "app_name",
                "name",
                "app_kubernetes_io_name",
                "container",
                "container_name",
                "k8s_container_name",
                "component",
                "workload",
                "job",
                "k8s_job_name",
            ]
            .iter()
            .find_map(|k| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
            labels.push((
                "service_name".into(),
                discovered.unwrap_or_else(|| "unknown_service".into()),
            ));
            labels.sort();
        }
        if entries.is_empty() {
            continue;
        }
        let rendered = labels::render(&labels);
        if let Err(e) = check_stream(limits, &labels, &rendered) {
            errors.push(e);
            continue;
        }
        let mut kept = Vec::new();
        for e in entries {
            match check_entry(limits, &e, &rendered, now) {
                Ok(()) => kept.push(e),
                Err(msg) => errors.push(msg),
            }
        }
        if !kept.is_empty() {
            accepted.push((labels, kept));
        }
    }
    if accepted.is_empty() {
        return if errors.is_empty() {
            text(204, "")
        } else {
            text(400, grouped(&errors))
        };
    }
    // 8. Tenant token bucket: all or nothing.
    let cost: f64 = accepted
        .iter()
        .flat_map(|(_, es)| es)
        .map(|e| {
            (e.line.len()
                + e.metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()) as f64
        })
        .sum();
    let mut store = r.store();
    let t = store.tenants.entry(tenant.clone()).or_default();
    let elapsed = t.refilled.map_or(f64::MAX, |i| i.elapsed().as_secs_f64());
    t.tokens = (t.tokens + elapsed * limits.rate_bytes_per_sec).min(limits.burst_bytes);
    t.refilled = Some(Instant::now());
    if cost > t.tokens {
        let lines: usize = accepted.iter().map(|(_, es)| es.len()).sum();
        return text(429, format!("ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased", limits.rate_bytes_per_sec as u64, cost as u64));
    }
    t.tokens -= cost;
    // 9. "Ingester".
    let mut status = 204;
    let mut ingester_errors = Vec::new();
    for (labels, entries) in accepted {
        let key = labels::render(&labels);
        if !t.streams.contains_key(&key) && t.streams.len() >= limits.max_streams_per_tenant {
            status = 429;
            ingester_errors.push(format!("maximum active stream limit exceeded when trying to create stream {key}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'"));
            continue;
        }
        let stream = t.streams.entry(key.clone()).or_default();
        for e in entries {
            if stream.entries.last() == Some(&e) {
                continue;
            }
            if e.ts < stream.highest - limits.out_of_order_window.as_nanos() as i128 {
                if status == 204 {
                    status = 400;
                }
                ingester_errors.push(format!("entry with timestamp {} ignored, reason: 'entry too far behind', for stream: {key}", e.ts));
                continue;
            }
            stream.highest = stream.highest.max(e.ts);
            stream.entries.push(e);
        }
    }
    drop(store);
    if !ingester_errors.is_empty() {
        return text(status, ingester_errors.join("\n"));
    }
    if !errors.is_empty() {
        return text(400, grouped(&errors));
    }
    text(204, "")
}

fn check_stream(l: &Limits, labels: &Labels, rendered: &str) -> Result<(), String> {
    if labels.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let counted = labels.iter().filter(|(k, _)| k != "service_name").count();
    if counted > l.max_label_names {
        return Err(format!(
            "entry for stream '{rendered}' has {counted} label names; limit {}",
            l.max_label_names
        ));
    }
    let mut previous: Option<&str> = None;
    for (name, value) in labels {
        if name.len() > l.max_label_name_len {
            return Err(format!(
                "stream '{rendered}' has label name too long: '{name}'"
            ));
        }
        if value.len() > l.max_label_value_len {
            return Err(format!(
                "stream '{rendered}' has label value too long: '{value}'"
            ));
        }
        if previous == Some(name.as_str()) {
            return Err(format!(
                "stream '{rendered}' has duplicate label name: '{name}'"
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

fn check_entry(l: &Limits, e: &Entry, rendered: &str, now: i128) -> Result<(), String> {
    if e.ts < now - l.reject_old_after.as_nanos() as i128 {
        return Err(format!(
            "entry for stream '{rendered}' has timestamp too old: {}",
            e.ts
        ));
    }
    if e.ts > now + l.creation_grace.as_nanos() as i128 {
        return Err(format!(
            "entry for stream '{rendered}' has timestamp too new: {}",
            e.ts
        ));
    }
    if e.line.len() > l.max_line {
        return Err(format!("max entry size '{}' bytes exceeded for stream '{rendered}' while adding an entry with length '{}' bytes", l.max_line, e.line.len()));
    }
    let sm_bytes: usize = e
        .metadata
        .iter()
        .filter(|(k, _)| k != "detected_level")
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if sm_bytes > l.max_sm_bytes {
        return Err(format!("stream '{rendered}' has structured metadata too large: '{sm_bytes}' bytes, limit: '{}' bytes", l.max_sm_bytes));
    }
    if e.metadata.len() > l.max_sm_entries {
        return Err(format!(
            "stream '{rendered}' has too many structured metadata labels: '{}', limit: '{}'",
            e.metadata.len(),
            l.max_sm_entries
        ));
    }
    Ok(())
}

/// One message seen once: itself; otherwise "<n> errors like: <msg>" clauses.
fn grouped(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match counts.iter_mut().find(|(m, _)| m == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.clone(), 1)),
        }
    }
    if counts.len() == 1 && counts[0].1 == 1 {
        return counts[0].0.clone();
    }
    counts
        .iter()
        .map(|(m, n)| format!("{n} errors like: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn valid_tenant(t: &str) -> Result<(), String> {
    if t.contains('|') {
        return Err("multiple org IDs present".into());
    }
    if t.len() > 150 {
        return Err("tenant ID is too long: max 150 characters".to_string());
    }
    if t == "." || t == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
    {
        return Err(format!(
            "tenant ID '{t}' contains unsupported character '{c}'"
        ));
    }
    Ok(())
}

fn media_type(content_type: &str) -> Result<String, String> {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    if media.is_empty() {
        return Err("mime: no media type".into());
    }
    if !media.contains('/') {
        return Err("mime: expected slash after first token".into());
    }
    for p in parts {
        if !p.trim().is_empty() && !p.contains('=') {
            return Err("mime: invalid media parameter".into());
        }
    }
    Ok(media)
}

fn inflate(mut r: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn proto_streams(body: &[u8]) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|_| "snappy: corrupt input".to_string())?;
    let req: proto::PushRequest =
        prost::Message::decode(raw.as_slice()).map_err(|e| e.to_string())?;
    req.streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.timestamp.unwrap_or_default();
                    if !(0..1_000_000_000).contains(&ts.nanos)
                        || !(-62_135_596_800..253_402_300_800).contains(&ts.seconds)
                    {
                        return Err(format!("timestamp out of range: {ts:?}"));
                    }
                    Ok(Entry {
                        ts: if e.timestamp.is_none() {
                            i128::MIN / 2
                        } else {
                            i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos)
                        },
                        line: e.line,
                        metadata: e
                            .structured_metadata
                            .into_iter()
                            .map(|p| (p.name, p.value))
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((s.labels, entries))
        })
        .collect()
}

fn json_streams(body: &[u8]) -> Result<Vec<(String, Vec<Entry>)>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(streams) = v.get("streams").and_then(|s| s.as_array()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in streams {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(map) = s.get("stream").and_then(|m| m.as_object()) {
            for (k, v) in map {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("label {k} is not a string"))?;
                pairs.push((k.clone(), v.to_string()));
            }
        }
        pairs.sort();
        let label_text = format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut entries = Vec::new();
        for value in s
            .get("values")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let Some(arr) = value.as_array() else {
                continue;
            };
            let ts = arr
                .first()
                .and_then(|t| t.as_str())
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("Value is string, but can't find closing '\"' symbol")?;
            let line = match arr.get(1) {
                None => String::new(),
                Some(l) => l.as_str().ok_or("log line is not a string")?.to_string(),
            };
            let mut metadata = Vec::new();
            if let Some(sm) = arr.get(2) {
                let obj = sm
                    .as_object()
                    .ok_or("structured metadata is not an object")?;
                for (k, v) in obj {
                    metadata.push((
                        k.clone(),
                        v.as_str()
                            .ok_or("structured metadata value is not a string")?
                            .to_string(),
                    ));
                }
            }
            entries.push(Entry {
                ts: i128::from(ts),
                line,
                metadata,
            });
        }
        out.push((label_text, entries));
    }
    Ok(out)
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
