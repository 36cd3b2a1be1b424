//! The push endpoint: a scripted fault when one is queued, otherwise §7 of the reference, step by
//! step, answering as Loki does (status and message).

use crate::decode::{inflate, json_streams, media_type, proto_streams};
use crate::labels::{self, Labels};
use crate::validate::{check_entry, check_stream, grouped, valid_tenant};
use crate::{Entry, Fault, Receiver};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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

pub(crate) async fn push(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
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

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
