//! What every exporter shares: `timeout`, `sending_queue` (queue bounds, consumers, persistent
//! storage, exporter-side batching) and `retry_on_failure`.

use super::report::{text, Obj};
use super::yaml::{Map, Node};
use super::{units, Ctx};

/// `timeout`, `sending_queue`, `retry_on_failure`, shared by every exporter.
pub fn delivery(cx: &mut Ctx, o: &mut Obj, wpath: &str, e: &mut Map) {
    if let Some(t) = o.str("timeout") {
        match units::duration(&t) {
            Ok(d) => {
                e.set("timeout", Node::str(&d));
                cx.report
                    .translated(&o.at("timeout"), &format!("{wpath}.timeout"), d);
            }
            Err(err) => cx.report.unsupported(&o.at("timeout"), err),
        }
    }
    let mut q = o.child("sending_queue");
    if !q.is_empty() {
        queue(cx, &mut q, wpath, e);
    }
    let mut r = o.child("retry_on_failure");
    if !r.is_empty() {
        retry(cx, &mut r, wpath, e);
    }
}

pub fn queue(cx: &mut Ctx, q: &mut Obj, wpath: &str, e: &mut Map) {
    match q.bool("enabled") {
        Some(false) => cx.report.unsupported(&q.at("enabled"), "Weir always queues per exporter (exporters.NAME.queue, bounded by max_items and max_bytes)"),
        Some(true) => cx.report.not_needed(&q.at("enabled"), "Weir always queues per exporter"),
        None => {}
    }
    if let Some(n) = q.get("num_consumers").and_then(units::number) {
        e.set("max_in_flight", n);
        cx.report.translated(
            &q.at("num_consumers"),
            &format!("{wpath}.max_in_flight"),
            "requests in flight per signal",
        );
    }
    let sizer = q.str("sizer").unwrap_or_else(|| "requests".into());
    if let Some(size) = q.get("queue_size") {
        match sizer.as_str() {
            "items" => {
                if let Some(n) = units::number(size) {
                    e.map("queue").set("max_items", n);
                    cx.report.translated(&q.at("queue_size"), &format!("{wpath}.queue.max_items"), "");
                }
            }
            "bytes" => {
                if let Some(n) = units::number(size) {
                    e.map("queue").set("max_bytes", n);
                    cx.report.approximate(&q.at("queue_size"), Some(&format!("{wpath}.queue.max_bytes")), "Weir counts a batch's memory (about 2.4 × its encoded size for logs), not its encoded bytes");
                }
            }
            _ => cx.report.not_needed(&q.at("queue_size"), "counted in requests: Weir's queue is bounded in items and memory (100 000 items, 64MiB by default; exporters.NAME.queue)"),
        }
    }
    if q.has("sizer") {
        q.get("sizer");
    }
    for key in ["blocking", "block_on_overflow"] {
        if q.get(key).is_some() {
            cx.report.not_needed(&q.at(key), "Weir waits for room when a queue is full (queue.overflow: block), pushing back to clients");
        }
    }
    if let Some(s) = q.str("storage") {
        let dir = cx
            .extension(&s)
            .and_then(|v| v.get("directory"))
            .and_then(text)
            .unwrap_or_else(|| "/var/lib/otelcol/file_storage".into());
        let dir = format!("{}/weir-wal", dir.trim_end_matches('/'));
        cx.report.approximate(&q.at("storage"), Some("durable.dir"), format!("{dir}: Weir's durable mode commits every accepted request to a write-ahead log before acknowledging it, for all exporters at once; delivery retries never give up while the disk holds the backlog"));
        cx.report
            .translated(&format!("extensions.{s}"), "durable.dir", "");
        cx.durable_dir.get_or_insert(dir);
    }
    let mut b = q.child("batch");
    if q.has("batch") {
        let mut m = Map::default();
        if let Some(t) = b.str("flush_timeout") {
            if let Ok(d) = units::duration(&t) {
                m.set("max_age", Node::str(d));
            }
        }
        let key = if b.str("sizer").unwrap_or_else(|| "items".into()) == "bytes" {
            "max_bytes"
        } else {
            "max_items"
        };
        if let Some(n) = b.get("min_size").and_then(units::number) {
            m.set(key, n);
        }
        b.get("max_size");
        cx.report.translated(
            &b.path,
            &format!("{wpath}.batch"),
            "flush_timeout → max_age, min_size → max_items (or max_bytes)",
        );
        e.set("batch", Node::Map(m));
    }
    cx.report.rest(&b, "");
    cx.report.rest(
        q,
        "Weir's exporter queue has max_items, max_bytes and overflow",
    );
}

pub fn retry(cx: &mut Ctx, r: &mut Obj, wpath: &str, e: &mut Map) {
    if r.bool("enabled") == Some(false) {
        cx.report.unsupported(&r.at("enabled"), "Weir always retries what the destination says is retryable; set retry.max_elapsed to give up sooner");
    } else if r.has("enabled") {
        cx.report
            .not_needed(&r.at("enabled"), "Weir retries by default");
    }
    let mut parsed = [None, None];
    for (i, (from, to)) in [
        ("initial_interval", "initial_backoff"),
        ("max_interval", "max_backoff"),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = r.str(from) {
            match units::duration(&v) {
                Ok(d) => {
                    parsed[i] = units::go_duration(&v);
                    e.map("retry").set(to, Node::str(&d));
                    cx.report
                        .translated(&r.at(from), &format!("{wpath}.retry.{to}"), d);
                }
                Err(err) => cx.report.unsupported(&r.at(from), err),
            }
        }
    }
    // Weir wants initial_backoff ≤ max_backoff (defaults 100ms and 30s).
    match parsed {
        [Some(i), None] if i > 30_000_000_000 => {
            let d = units::format_duration(i);
            e.map("retry").set("max_backoff", Node::str(&d));
            cx.report.translated(&r.at("max_interval"), &format!("{wpath}.retry.max_backoff"), format!("{d}: raised to initial_backoff, as Weir wants initial ≤ max (its default max is 30s)"));
        }
        [None, Some(m)] if m < 100_000_000 => {
            let d = units::format_duration(m);
            e.map("retry").set("initial_backoff", Node::str(&d));
            cx.report.translated(&r.at("initial_interval"), &format!("{wpath}.retry.initial_backoff"), format!("{d}: lowered to max_backoff, as Weir wants initial ≤ max (its default initial is 100ms)"));
        }
        _ => {}
    }
    if let Some(v) = r.str("max_elapsed_time") {
        match units::go_duration(&v) {
            Some(0) => {
                e.map("retry").set("max_elapsed", Node::str("8760h"));
                cx.report.approximate(&r.at("max_elapsed_time"), Some(&format!("{wpath}.retry.max_elapsed")), "0 (never give up): 8760h, a year; in durable mode Weir never gives up by default");
            }
            _ => match units::duration(&v) {
                Ok(d) => {
                    e.map("retry").set("max_elapsed", Node::str(&d));
                    cx.report.translated(
                        &r.at("max_elapsed_time"),
                        &format!("{wpath}.retry.max_elapsed"),
                        d,
                    );
                }
                Err(err) => cx.report.unsupported(&r.at("max_elapsed_time"), err),
            },
        }
    }
    for key in ["multiplier", "randomization_factor"] {
        if r.get(key).is_some() {
            cx.report.not_needed(&r.at(key), "Weir's backoff is exponential with jitter, fixed shape; it honours Retry-After and RetryInfo");
        }
    }
    cx.report.rest(
        r,
        "Weir's retry has initial_backoff, max_backoff and max_elapsed",
    );
}
