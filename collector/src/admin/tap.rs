//! `GET /admin/tap`: streams the items a live tap follows as JSON lines until the client goes away
//! (see `weir_pipeline::tap`). Query: `signal`, `service`, `trace_id` (32 hex digits),
//! `attribute=key=value`, `point` (comma-separated: `receive`, stage names, `export`), `rate`
//! (items per second, 1–1000, default 10). A heartbeat line every few seconds lets a tap whose
//! client vanished be noticed and detached even when nothing matches.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::time::Duration;
use tokio_stream::StreamExt;
use weir_pipeline::tap::{self, Filter};

const MAX_RATE: u64 = 1000;
/// Lines a reader may lag behind before lines are lost (counted in `lost_before`).
const BUFFER: usize = 1024;
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The filter and rate a query asks for, or what is wrong with it.
pub fn parse(query: Option<&str>) -> Result<(Filter, u64), String> {
    let mut filter = Filter::default();
    let mut rate = 10;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = unescape(value).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
        match key {
            "signal" => {
                filter.signal = Some(
                    weir_config::SignalKind::ALL
                        .into_iter()
                        .find(|s| s.as_str() == value)
                        .ok_or_else(|| {
                            format!("signal: `{value}` is not traces, logs or metrics")
                        })?,
                )
            }
            "service" => filter.service = Some(value),
            "trace_id" => {
                let id = hex::decode(&value)
                    .ok()
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| format!("trace_id: `{value}` is not 32 hex digits"))?;
                filter.trace_id = Some(id);
            }
            "attribute" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("attribute: `{value}` is not key=value"))?;
                filter.attribute = Some((k.to_string(), v.to_string()));
            }
            "point" => filter
                .points
                .extend(value.split(',').filter(|p| !p.is_empty()).map(String::from)),
            "rate" => {
                rate = value
                    .parse()
                    .ok()
                    .filter(|r| (1..=MAX_RATE).contains(r))
                    .ok_or_else(|| format!("rate: `{value}` is not 1 to {MAX_RATE}"))?
            }
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    Ok((filter, rate))
}

/// The stream of tap lines; the tap detaches when the response body is dropped.
pub fn stream(filter: Filter, rate: u64) -> Response {
    let describe = serde_json::json!({
        "tap": "attached",
        "rate": rate,
        "signal": filter.signal.map(|s| s.as_str()),
        "service": filter.service,
        "points": filter.points,
    });
    let (attached, rx) = tap::attach(filter, rate, BUFFER);
    tracing::info!(%describe, "tap attached");
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx);
    let beats = tokio_stream::wrappers::IntervalStream::new(tokio::time::interval(HEARTBEAT))
        .map(|_| serde_json::json!({ "heartbeat": unix_seconds() }).to_string());
    let first = tokio_stream::once(describe.to_string());
    let body = first.chain(lines.merge(beats)).map(move |line| {
        let _held = &attached;
        Ok::<_, std::convert::Infallible>(Bytes::from(line + "\n"))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Percent-decoding (and `+` as space) of one query value.
fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_becomes_a_filter_and_mistakes_name_the_parameter() {
        let (f, rate) = parse(Some(
            "signal=logs&service=check%20out&attribute=http.route%3D%2Fpay&point=receive,redact&rate=50",
        ))
        .unwrap();
        assert_eq!(f.signal, Some(weir_config::SignalKind::Logs));
        assert_eq!(f.service.as_deref(), Some("check out"));
        assert_eq!(f.attribute, Some(("http.route".into(), "/pay".into())));
        assert_eq!(f.points, ["receive", "redact"]);
        assert_eq!(rate, 50);
        assert_eq!(parse(None).unwrap().1, 10);
        for (q, says) in [
            ("signal=spans", "signal"),
            ("trace_id=abc", "trace_id"),
            ("rate=0", "rate"),
            ("rate=5000", "rate"),
            ("attribute=x", "attribute"),
            ("colour=red", "colour"),
            ("service=%zz", "service"),
        ] {
            assert!(parse(Some(q)).unwrap_err().contains(says), "{q}");
        }
    }
}
