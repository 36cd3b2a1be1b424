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
//! - `http`: the push handler: faults, tenant, body size and encoding, then the algorithm (labels,
//!   validation, the token bucket, the "ingester" with its stream limit and out-of-order window).
//! - `decode`: content encodings, the media type, protobuf and JSON bodies → streams of entries.
//! - `validate`: Loki's stream, entry and tenant-id rules, and its grouping of error messages.
//! - this file: the public API (limits, faults, the receiver and what it stored) and the store.

mod decode;
mod http;
pub mod labels;
pub mod proto;
mod validate;

use axum::routing::post;
use axum::Router;
use http::push;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
