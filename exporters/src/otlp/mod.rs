//! The OTLP exporter: forwards to other collectors over OTLP/gRPC or OTLP/HTTP, with trace-aware load
//! balancing across a backend set (static, or re-resolved from DNS).
//!
//! A batch is split by backend when it is encoded (see [`route`]); the request remembers which parts
//! each backend has taken, so a retry resends only what failed, never duplicates what succeeded. When a
//! backend is ejected (too many failed attempts in a row) or leaves the DNS answer, the parts it still
//! owes are split again over the backends that remain.

pub mod backend;
pub mod route;

use crate::exporter::{Encoded, ExportError, Exporter, Retry};
use backend::Backend;
use bytes::Bytes;
use prost::Message;
use route::OtlpRoute;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};
use weir_config::{OtlpExporter, Routing};
use weir_pipeline::Batch;

type Members = RwLock<Arc<Vec<Arc<Backend>>>>;

pub struct Otlp<S: OtlpRoute> {
    name: String,
    routing: Routing,
    timeout: Duration,
    members: Arc<Members>,
    _signal: std::marker::PhantomData<fn() -> S>,
}

/// One request: what each backend still owes.
pub struct Forward<S: OtlpRoute> {
    state: tokio::sync::Mutex<Owed>,
    _signal: std::marker::PhantomData<fn() -> S>,
}

/// What a request still owes, and what it gave up on.
struct Owed {
    parts: Vec<Part>,
    /// Items of parts a backend refused for good.
    refused_items: usize,
    refused: Option<ExportError>,
}

struct Part {
    /// `None` until split (no backend was known when the batch was encoded).
    backend: Option<Arc<Backend>>,
    /// The part as an uncompressed OTLP request: kept instead of the decoded resources, which take
    /// several times the memory, and decoded again only if the part has to be split anew.
    raw: Bytes,
    items: usize,
    /// What goes on the wire: `raw` itself, or compressed for the backend.
    body: Bytes,
    /// The backend took it during an attempt that was then cancelled (the delivery loop's timeout
    /// fired while other parts were still out): it stays until the attempt's bookkeeping runs, but is
    /// never sent again.
    delivered: bool,
}

impl Part {
    /// Memory the part holds: its request, and the compressed copy when there is one.
    fn bytes(&self) -> usize {
        let compressed = if self.body.as_ptr() == self.raw.as_ptr() {
            0
        } else {
            self.body.len()
        };
        self.raw.len() + compressed
    }
}

impl<S: OtlpRoute> Otlp<S> {
    /// Builds the exporter; with `resolve` set, starts the task that keeps the backend set current.
    pub async fn new(cfg: &OtlpExporter, name: &str, timeout: Duration) -> Result<Self, String> {
        let build = |addr: &str| Backend::new(addr, cfg, S::KIND, name, timeout).map(Arc::new);
        let initial = match &cfg.resolve {
            None => cfg
                .endpoints
                .iter()
                .map(|a| build(a))
                .collect::<Result<Vec<_>, _>>()?,
            Some(name_port) => resolve(name_port)
                .await
                .iter()
                .map(|a| build(a))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if initial.is_empty() {
            tracing::warn!(
                exporter = name,
                "no backend resolved yet; requests wait and retry until one appears"
            );
        }
        let members: Arc<Members> = Arc::new(RwLock::new(Arc::new(initial)));
        if let Some(name_port) = cfg.resolve.clone() {
            tokio::spawn(keep_resolving(
                Arc::downgrade(&members),
                name_port,
                cfg.clone(),
                S::KIND,
                name.to_string(),
                timeout,
            ));
        }
        Ok(Otlp {
            name: name.to_string(),
            routing: cfg.routing,
            timeout,
            members,
            _signal: std::marker::PhantomData,
        })
    }

    /// The backends that take keys now: every live one, or all of them if none is live.
    fn serving(&self) -> Vec<Arc<Backend>> {
        let all = self
            .members
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Instant::now();
        let live: Vec<Arc<Backend>> = all.iter().filter(|b| b.alive(now)).cloned().collect();
        if live.is_empty() {
            all.to_vec()
        } else {
            live
        }
    }

    fn no_backend(&self) -> ExportError {
        ExportError::retryable(
            "no_backend",
            format!("exporter {}: no backend to send to", self.name),
        )
    }

    fn split(
        &self,
        resources: Vec<S::Resource>,
        backends: &[Arc<Backend>],
    ) -> Result<Vec<Part>, ExportError> {
        if backends.is_empty() {
            return Err(self.no_backend());
        }
        let hashes: Vec<u64> = backends.iter().map(|b| b.hash).collect();
        let choose = |key: u64| route::pick(key, &hashes);
        S::split(resources, self.routing, backends.len(), &choose)
            .into_iter()
            .zip(backends)
            .filter(|(r, _)| !r.is_empty())
            .map(|(resources, backend)| {
                let items = resources.iter().map(S::count).sum();
                let raw = Bytes::from(S::to_request(resources).encode_to_vec());
                Ok(Part {
                    backend: Some(backend.clone()),
                    items,
                    body: backend.wire_body(&raw)?,
                    raw,
                    delivered: false,
                })
            })
            .collect()
    }
}

impl<S: OtlpRoute> Exporter<S> for Otlp<S> {
    type Request = Forward<S>;

    fn kind(&self) -> &'static str {
        "otlp"
    }

    fn encode(&self, batch: Batch<S>) -> Result<Vec<Encoded<Forward<S>>>, ExportError> {
        let items = batch.items();
        let backends = self.serving();
        // With no backend known yet (DNS), keep the batch whole; the first send splits it.
        let parts = if backends.is_empty() {
            vec![Part {
                backend: None,
                items,
                raw: Bytes::from(S::to_request(batch.resources).encode_to_vec()),
                body: Bytes::new(),
                delivered: false,
            }]
        } else {
            self.split(batch.resources, &backends)?
        };
        let bytes = parts.iter().map(Part::bytes).sum();
        Ok(vec![Encoded {
            request: Forward {
                state: tokio::sync::Mutex::new(Owed {
                    parts,
                    refused_items: 0,
                    refused: None,
                }),
                _signal: std::marker::PhantomData,
            },
            items,
            bytes,
        }])
    }

    async fn send(&self, request: &Forward<S>) -> Result<(), ExportError> {
        let mut state = request.state.lock().await;
        let serving = self.serving();
        if serving.is_empty() {
            let owed: usize = state.parts.iter().map(|p| p.items).sum();
            return Err(self.no_backend().for_items(owed + state.refused_items));
        }
        // Parts owed by a backend that is no longer serving go to the ones that are. No await until
        // the parts are back in the request: the delivery loop may cancel this attempt at any await
        // (its timeout), and whatever is not in the request then would be lost while counted as sent.
        for part in std::mem::take(&mut state.parts) {
            let owner = part.backend.as_ref();
            if part.delivered || owner.is_some_and(|o| serving.iter().any(|b| Arc::ptr_eq(b, o))) {
                state.parts.push(part);
                continue;
            }
            let items = part.items;
            let resources = S::decode(&part.raw).map(S::into_resources).map_err(|e| {
                ExportError::permanent("encode", format!("cannot split a part again: {e}"))
            });
            match resources.and_then(|r| self.split(r, &serving)) {
                Ok(parts) => state.parts.extend(parts),
                Err(e) => {
                    tracing::error!(exporter = %self.name, error = %e, items, "cannot encode part of a request; that part is dropped");
                    state.refused_items += items;
                    state.refused = Some(e);
                }
            }
        }
        let mut attempts = tokio::task::JoinSet::new();
        for (i, part) in state.parts.iter().enumerate() {
            let Some(backend) = part.backend.clone().filter(|_| !part.delivered) else {
                continue;
            };
            let (body, timeout) = (part.body.clone(), self.timeout);
            attempts.spawn(async move { (i, backend.send(body, timeout).await) });
        }
        let mut outcomes: Vec<Option<Result<(), ExportError>>> =
            (0..state.parts.len()).map(|_| None).collect();
        while let Some(joined) = attempts.join_next().await {
            if let Ok((i, r)) = joined {
                state.parts[i].delivered = r.is_ok();
                outcomes[i] = Some(r);
            }
        }
        // Only now, with every outcome known, does a part leave the request.
        let (mut retry_after, mut last_retryable) = (None, None);
        for (part, outcome) in std::mem::take(&mut state.parts).into_iter().zip(outcomes) {
            if part.delivered {
                continue;
            }
            match outcome
                .unwrap_or_else(|| Err(ExportError::retryable("internal", "send task failed")))
            {
                Ok(()) => {}
                Err(e) if e.retry == Retry::Never => {
                    let backend = part.backend.as_ref().map_or("", |b| b.addr.as_str());
                    tracing::error!(exporter = %self.name, backend, error = %e, items = part.items, "a backend refused part of a request for good; that part is dropped");
                    state.refused_items += part.items;
                    state.refused = Some(e);
                }
                Err(e) => {
                    if let Retry::After(Some(d)) = e.retry {
                        retry_after = Some(retry_after.map_or(d, |r: Duration| r.max(d)));
                    }
                    last_retryable = Some(e);
                    state.parts.push(part);
                }
            }
        }
        // Errors say how many items they concern, so the delivery loop counts the rest as sent.
        let owed: usize = state.parts.iter().map(|p| p.items).sum();
        match (last_retryable, state.refused.clone()) {
            (Some(e), _) => Err(ExportError::retry_after(
                e.reason,
                format!(
                    "{} of the request's parts to retry: {}",
                    state.parts.len(),
                    e.message
                ),
                retry_after,
            )
            .for_items(owed + state.refused_items)),
            (None, Some(e)) => Err(e.for_items(state.refused_items)),
            (None, None) => Ok(()),
        }
    }
}

/// Every address `name:port` resolves to, sorted, as `ip:port` strings.
async fn resolve(name_port: &str) -> Vec<String> {
    match tokio::net::lookup_host(name_port).await {
        Ok(addrs) => {
            let mut v: Vec<String> = addrs.map(|a| a.to_string()).collect();
            v.sort();
            v.dedup();
            v
        }
        Err(e) => {
            tracing::warn!(name = name_port, error = %e, "cannot resolve the OTLP backends");
            Vec::new()
        }
    }
}

/// Re-resolves until the exporter is gone; keeps the Backend (and its connection and health) of every
/// address that stays.
async fn keep_resolving(
    members: Weak<Members>,
    name_port: String,
    cfg: OtlpExporter,
    signal: weir_config::SignalKind,
    exporter: String,
    timeout: Duration,
) {
    let mut tick = tokio::time::interval(cfg.resolve_interval.0.max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(members) = members.upgrade() else {
            return;
        };
        let addrs = resolve(&name_port).await;
        if addrs.is_empty() {
            continue; // Keep the last known set rather than drop everything on a DNS hiccup.
        }
        let current = members.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current
            .iter()
            .map(|b| b.addr.as_str())
            .eq(addrs.iter().map(String::as_str))
        {
            continue;
        }
        let next: Vec<Arc<Backend>> = addrs
            .iter()
            .filter_map(|a| match current.iter().find(|b| &b.addr == a) {
                Some(b) => Some(b.clone()),
                None => Backend::new(a, &cfg, signal, &exporter, timeout)
                    .ok()
                    .map(Arc::new),
            })
            .collect();
        tracing::info!(exporter = %exporter, backends = ?addrs, "OTLP backend set changed");
        *members.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipeline::{fixtures, Logs};

    fn exporter(members: Vec<Arc<Backend>>) -> Otlp<Logs> {
        Otlp {
            name: "gw".into(),
            routing: Routing::TraceId,
            timeout: Duration::from_millis(500),
            members: Arc::new(RwLock::new(Arc::new(members))),
            _signal: std::marker::PhantomData,
        }
    }

    fn owed(request: &Forward<Logs>) -> usize {
        request
            .state
            .try_lock()
            .unwrap()
            .parts
            .iter()
            .map(|p| p.items)
            .sum()
    }

    /// `resolve:` answered nothing yet: the attempt fails, saying about how many items, and the request
    /// still owes every one of them — once a backend appears they are sent.
    #[tokio::test]
    async fn no_backend_keeps_every_part_in_the_request() {
        let otlp = exporter(Vec::new());
        let batch = Batch::<Logs>::measured(fixtures::resource_logs(2, 5));
        let request = otlp.encode(batch).unwrap().remove(0).request;
        for _ in 0..2 {
            let e = otlp.send(&request).await.unwrap_err();
            assert_eq!((e.reason, e.items), ("no_backend", Some(10)));
            assert_eq!(owed(&request), 10);
        }
        // A backend appears but refuses connections: still owed, now split onto it.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let cfg: OtlpExporter =
            serde_yaml_ng::from_str(&format!("endpoints: [\"{addr}\"]")).unwrap();
        let backend = Backend::new(
            &addr,
            &cfg,
            weir_config::SignalKind::Logs,
            "gw",
            otlp.timeout,
        );
        *otlp.members.write().unwrap() = Arc::new(vec![Arc::new(backend.unwrap())]);
        let e = otlp.send(&request).await.unwrap_err();
        assert_ne!(e.retry, Retry::Never);
        assert_eq!(owed(&request), 10);
    }

    /// The delivery loop's timeout cancels an attempt at an await: nothing may leave the request.
    #[tokio::test]
    async fn a_cancelled_attempt_leaves_every_part_in_the_request() {
        let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = hung.local_addr().unwrap().to_string();
        let cfg: OtlpExporter =
            serde_yaml_ng::from_str(&format!("endpoints: [\"{addr}\"]")).unwrap();
        let backend = Backend::new(
            &addr,
            &cfg,
            weir_config::SignalKind::Logs,
            "gw",
            Duration::from_secs(30),
        );
        let otlp = exporter(vec![Arc::new(backend.unwrap())]);
        let batch = Batch::<Logs>::measured(fixtures::resource_logs(1, 7));
        let request = otlp.encode(batch).unwrap().remove(0).request;
        let attempt = tokio::time::timeout(Duration::from_millis(200), otlp.send(&request)).await;
        assert!(attempt.is_err(), "the listener never answers");
        assert_eq!(owed(&request), 7);
        drop(hung);
    }
}
