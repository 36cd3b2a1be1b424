//! The Loki exporter: encodes with [`super::encode`], sends one push per request with the tenant,
//! auth and custom headers, and classifies Loki's answers the way Loki's own clients do: any 2xx is
//! success; 429, 5xx and transport errors are retried (honouring `Retry-After`); every other 4xx —
//! including a 400 that partially accepted the push — is final, counted, and logged with Loki's reason.

use super::encode::{encode, Outcome, Push, Rules};
use super::streams::StreamGuard;
use crate::exporter::{Encoded, ExportError, Exporter};
use crate::http::{self, HttpClient};
use crate::text::base64;
use http_body_util::Full;
use std::sync::Arc;
use weir_config::LokiExporter as Config;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::{Batch, Logs};

pub struct Loki {
    rules: Rules,
    guard: StreamGuard,
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    truncated: Counter,
    dropped_too_long: Counter,
    overflowed: Counter,
}

impl Loki {
    /// Builds the exporter; only TLS settings can fail, and without them this cannot.
    pub fn new(cfg: &Config, registry: &Arc<Registry>, name: &str) -> Self {
        Self::try_new(cfg, registry, name).expect("a Loki exporter without TLS files always builds")
    }

    pub fn try_new(cfg: &Config, registry: &Arc<Registry>, name: &str) -> Result<Self, String> {
        let mut headers: Vec<(String, String)> = cfg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(user) = &cfg.username {
            let mut token = String::new();
            base64(
                format!("{user}:{}", cfg.password.as_deref().unwrap_or_default()).as_bytes(),
                &mut token,
            );
            headers.push(("Authorization".into(), format!("Basic {token}")));
        }
        if let Some(token) = &cfg.bearer_token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        let l: &[(&'static str, &str)] = &[("exporter", name)];
        Ok(Loki {
            rules: Rules::new(cfg),
            guard: StreamGuard::new(cfg.max_streams, cfg.stream_window.0),
            client: http::client(cfg.tls.as_ref())?,
            url: format!("{}/loki/api/v1/push", cfg.endpoint.trim_end_matches('/')),
            headers,
            truncated: registry.counter(
                "weir_loki_lines_truncated_total",
                "Log lines cut to max_line_bytes before sending.",
                l,
            ),
            dropped_too_long: registry.counter(
                "weir_exporter_dropped_items_total",
                "Items that never reached an exporter's queue, by reason (queue_full under overflow: drop_newest).",
                &[("exporter", name), ("signal", "logs"), ("reason", "line_too_long")],
            ),
            overflowed: registry.counter(
                "weir_loki_stream_overflow_total",
                "Records whose labels were folded into an overflow stream by the cardinality guard.",
                l,
            ),
        })
    }

    fn count(&self, o: &Outcome) {
        self.truncated.add(o.truncated as u64);
        self.dropped_too_long.add(o.dropped_too_long as u64);
        self.overflowed.add(o.overflowed as u64);
    }
}

impl Exporter<Logs> for Loki {
    type Request = Push;

    fn kind(&self) -> &'static str {
        "loki"
    }

    fn encode(&self, batch: Batch<Logs>) -> Result<Vec<Encoded<Push>>, ExportError> {
        let (pushes, outcome) = encode(&self.rules, &self.guard, &batch.resources);
        self.count(&outcome);
        Ok(pushes
            .into_iter()
            .map(|p| Encoded {
                items: p.entries,
                bytes: p.body.len(),
                request: p,
            })
            .collect())
    }

    async fn send(&self, push: &Push) -> Result<(), ExportError> {
        let mut req = hyper::Request::post(&self.url)
            .header("Content-Type", push.content_type)
            .header("Content-Length", push.body.len());
        if let Some(t) = &push.tenant {
            req = req.header("X-Scope-OrgID", t.as_str());
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(push.body.clone()))
            .map_err(|e| ExportError::permanent("config", format!("bad Loki request: {e}")))?;
        let resp = http::send(&self.client, req, "Loki").await?;
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            return Ok(());
        }
        let reason_text = String::from_utf8_lossy(&resp.body)
            .trim()
            .chars()
            .take(1000)
            .collect::<String>();
        let message = format!("Loki answered {status}: {reason_text}");
        Err(match status {
            429 | 500..=599 => ExportError::retry_after(
                if status == 429 {
                    "rate_limited"
                } else {
                    "server_error"
                },
                message,
                crate::http::retry_after(&resp.headers),
            ),
            _ => ExportError::permanent("rejected", message),
        })
    }
}
