//! ClickHouse's HTTP interface: one client per exporter with a connection pool, ClickHouse's own
//! compressed block format (`decompress=1`), and errors classified for retry by the server's code.
//!
//! A client may know several servers of one cluster (`endpoint`, then `failover_endpoints`). It sends
//! to one at a time and moves to the next when that one fails in a way a retry could fix or leaves
//! an attempt unanswered (the delivery loop's `timeout` drops it): a stopped server accepts TCP
//! connections and never answers, so without this every insert would wait on it until it came back.

use super::rowbinary;
use crate::exporter::{ExportError, Retry};
use crate::http::{self, HttpClient};
use bytes::Bytes;
use http_body_util::Full;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weir_config::ClickHouseCompression;

/// Uncompressed bytes per compressed block (ClickHouse's own `max_compress_block_size`).
const BLOCK: usize = 1 << 20;

#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    /// The servers, in failover order; each has the same tables.
    bases: Arc<[String]>,
    /// Index into `bases` of the server requests go to.
    current: Arc<AtomicUsize>,
    auth: Option<(String, String)>,
}

impl Client {
    /// `endpoints`: the servers in the order they are tried (at least one).
    pub fn new(
        endpoints: &[String],
        username: Option<&str>,
        password: Option<&str>,
        tls: Option<&weir_config::TlsClient>,
    ) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err("no ClickHouse endpoint".into());
        }
        let http = http::client(tls)?;
        let auth = username.map(|u| (u.to_string(), password.unwrap_or_default().to_string()));
        Ok(Client {
            http,
            bases: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            current: Arc::default(),
            auth,
        })
    }

    /// How many servers this client knows.
    pub fn servers(&self) -> usize {
        self.bases.len()
    }

    /// The server requests go to now.
    pub fn current(&self) -> &str {
        &self.bases[self.current.load(Ordering::Acquire) % self.bases.len()]
    }

    /// Runs `query` with `body` as its data; `params` are extra URL settings. Returns the response body.
    pub async fn post(
        &self,
        query: &str,
        params: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Bytes, ExportError> {
        let index = self.current.load(Ordering::Acquire) % self.bases.len();
        // Armed until the server gives an answer that holds on every server (success, or a rejection
        // of the request itself); dropped armed — failed, or abandoned by a timeout — it moves on.
        let mut failover = Failover {
            client: self,
            from: index,
            armed: true,
        };
        let result = self.post_to(&self.bases[index], query, params, body).await;
        if matches!(
            &result,
            Ok(_)
                | Err(ExportError {
                    retry: Retry::Never,
                    ..
                })
        ) {
            failover.armed = false;
        }
        result
    }

    async fn post_to(
        &self,
        base: &str,
        query: &str,
        params: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Bytes, ExportError> {
        let mut url = format!("{base}/?query={}", url_encode(query));
        for (k, v) in params {
            url.push('&');
            url.push_str(k);
            url.push('=');
            url.push_str(&url_encode(v));
        }
        // 18.x refuses a POST without Content-Length, and hyper omits it for an empty body.
        let mut req = hyper::Request::post(&url).header("Content-Length", body.len());
        if let Some((user, password)) = &self.auth {
            req = req
                .header("X-ClickHouse-User", user.as_str())
                .header("X-ClickHouse-Key", password.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| {
            ExportError::permanent("config", format!("bad ClickHouse request: {e}"))
        })?;
        let resp = http::send(&self.http, req, &format!("ClickHouse at {base}")).await?;
        let (status, body) = (resp.status, resp.body);
        if status.is_success() {
            return Ok(body);
        }
        Err(classify(status.as_u16(), &body))
    }

    /// The server's version as (major, minor).
    pub async fn version(&self) -> Result<(u32, u32), ExportError> {
        let body = self.post("SELECT version()", &[], Bytes::new()).await?;
        let text = String::from_utf8_lossy(&body);
        let mut parts = text
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
    }
}

/// Moves the client to the next server when dropped armed.
struct Failover<'a> {
    client: &'a Client,
    from: usize,
    armed: bool,
}

impl Drop for Failover<'_> {
    fn drop(&mut self) {
        let n = self.client.bases.len();
        if !self.armed || n < 2 {
            return;
        }
        let to = (self.from + 1) % n;
        // The requests in flight to a failing server all fail: the first moves the client on, and
        // the others (which see it moved already) do not move it again, past a working server.
        if self
            .client
            .current
            .compare_exchange(self.from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                from = %self.client.bases[self.from],
                to = %self.client.bases[to],
                "ClickHouse server failed or did not answer; switching to the next one"
            );
        }
    }
}

/// Retry class of a ClickHouse error, from the `Code: N` the server puts first, then the HTTP status.
pub fn classify(status: u16, body: &[u8]) -> ExportError {
    let text = String::from_utf8_lossy(body);
    let message: String = text.trim().chars().take(2000).collect();
    let code = text
        .trim_start()
        .strip_prefix("Code: ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok());
    let retry = match code {
        // TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES,
        // NETWORK_ERROR, SOCKET_TIMEOUT, ALL_REPLICAS_ARE_STALE, READONLY (replica restarting).
        Some(252) => Retry::After(Some(Duration::from_secs(1))),
        Some(241 | 159 | 202 | 210 | 209 | 425 | 164 | 242 | 319) => Retry::After(None),
        // Schema, type, syntax, parse, auth and unknown-setting errors never succeed on retry.
        Some(_) if status <= 500 => Retry::Never,
        Some(_) => Retry::After(None),
        None if status == 408 || status == 429 || status >= 500 => Retry::After(None),
        None => Retry::Never,
    };
    ExportError {
        retry,
        reason: match (code, retry) {
            (Some(252), _) => "too_many_parts",
            (_, Retry::Never) => "rejected",
            _ => "server_error",
        },
        message: format!("ClickHouse answered {status}: {message}"),
        items: None,
    }
}

/// Splits `data` into ClickHouse compressed blocks: 16-byte CityHash128 (v1.0.2) of the rest,
/// method byte, compressed size (header included) and uncompressed size, then the payload.
pub fn compress(data: &[u8], method: ClickHouseCompression) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    for chunk in data.chunks(BLOCK) {
        let start = out.len();
        out.extend_from_slice(&[0u8; 16]);
        let (code, payload): (u8, std::borrow::Cow<'_, [u8]>) = match method {
            ClickHouseCompression::Lz4 => (0x82, lz4_flex::compress(chunk).into()),
            ClickHouseCompression::Zstd => (
                0x90,
                zstd::bulk::compress(chunk, 1)
                    .unwrap_or_else(|_| chunk.to_vec())
                    .into(),
            ),
            ClickHouseCompression::None => (0x02, chunk.into()),
        };
        out.push(code);
        rowbinary::u32(&mut out, (payload.len() + 9) as u32);
        rowbinary::u32(&mut out, chunk.len() as u32);
        out.extend_from_slice(&payload);
        let hash = cityhash_rs::cityhash_102_128(&out[start + 16..]);
        // cityhash-rs puts CityHash128's first word in the high half; ClickHouse writes it first.
        out[start..start + 8].copy_from_slice(&((hash >> 64) as u64).to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&(hash as u64).to_le_bytes());
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code() {
        let e = classify(
            500,
            b"Code: 60, e.displayText() = DB::Exception: Table otel.x doesn't exist",
        );
        assert_eq!((e.retry, e.reason), (Retry::Never, "rejected"));
        let e = classify(
            500,
            b"Code: 252, e.displayText() = DB::Exception: Too many parts",
        );
        assert_eq!(e.retry, Retry::After(Some(Duration::from_secs(1))));
        let e = classify(503, b"Service Unavailable");
        assert_eq!(e.retry, Retry::After(None));
        let e = classify(400, b"bad request");
        assert_eq!(e.retry, Retry::Never);
        let e = classify(500, b"Code: 241, DB::Exception: Memory limit exceeded");
        assert_eq!(e.retry, Retry::After(None));
    }

    #[test]
    fn compressed_blocks_have_the_expected_header() {
        let data = vec![7u8; BLOCK + 10];
        let out = compress(&data, ClickHouseCompression::Lz4);
        assert_eq!(out[16], 0x82);
        let first = u32::from_le_bytes(out[17..21].try_into().unwrap()) as usize;
        assert_eq!(
            u32::from_le_bytes(out[21..25].try_into().unwrap()) as usize,
            BLOCK
        );
        let second = &out[16 + first..];
        assert_eq!(u32::from_le_bytes(second[21..25].try_into().unwrap()), 10);
        let none = compress(b"abc", ClickHouseCompression::None);
        assert_eq!(
            &none[16..],
            &[0x02, 12, 0, 0, 0, 3, 0, 0, 0, b'a', b'b', b'c']
        );
    }

    #[tokio::test]
    async fn a_hung_or_unreachable_server_moves_the_client_to_the_next_one() {
        use weir_faults::{Fault, Proxy};
        let nowhere = "127.0.0.1:9".parse().unwrap();
        let hung = Proxy::start(nowhere, Fault::Hang);
        let good = Proxy::start(nowhere, Fault::http(200, &[], b"1\n"));
        let rejecting = Proxy::start(
            nowhere,
            Fault::http(
                500,
                &[],
                b"Code: 60, e.displayText() = DB::Exception: Table x doesn't exist",
            ),
        );
        let url = |p: &Proxy| format!("http://{}", p.addr());
        let query = |c: &Client| {
            let c = c.clone();
            async move { c.post("SELECT 1", &[], Bytes::new()).await }
        };

        // A stopped server takes the request and never answers; the delivery loop's timeout drops
        // the attempt, and the next one goes to the next server.
        let c = Client::new(&[url(&hung), url(&good)], None, None, None).unwrap();
        let attempt = tokio::time::timeout(Duration::from_millis(300), query(&c)).await;
        assert!(attempt.is_err(), "the hung server answered?");
        assert_eq!(c.current(), url(&good));
        assert_eq!(query(&c).await.unwrap().as_ref(), b"1\n");
        assert_eq!(c.current(), url(&good), "a working server is kept");

        // A rejection is about the request and would be the same on every server: no switch.
        let c = Client::new(&[url(&rejecting), url(&good)], None, None, None).unwrap();
        assert_eq!(query(&c).await.unwrap_err().retry, Retry::Never);
        assert_eq!(c.current(), url(&rejecting));

        // A refused connection moves on too, wrapping from the last server to the first.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let c = Client::new(&[url(&good), refused.clone()], None, None, None).unwrap();
        c.current.store(1, Ordering::SeqCst);
        assert_eq!(query(&c).await.unwrap_err().reason, "network");
        assert_eq!(c.current(), url(&good));

        // Requests in flight together to a failed server move the client once, not once each.
        let c = Client::new(&[url(&hung), url(&good), url(&rejecting)], None, None, None).unwrap();
        let attempts = (0..4).map(|_| tokio::time::timeout(Duration::from_millis(300), query(&c)));
        for a in futures_util::future::join_all(attempts).await {
            assert!(a.is_err());
        }
        assert_eq!(c.current(), url(&good));
    }

    #[test]
    fn url_encoding_escapes_everything_but_unreserved() {
        assert_eq!(
            url_encode("INSERT INTO a.b (x) FORMAT RowBinary"),
            "INSERT%20INTO%20a.b%20%28x%29%20FORMAT%20RowBinary"
        );
    }
}
