//! Test harness: starts the real `weir` binary on free loopback ports with a file exporter in a temp
//! directory, and reads back what it wrote.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Weir {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The ClickHouse server `scripts/test.sh` starts, from `WEIR_CLICKHOUSE_URL`; `None` (the test then
/// says it skipped) outside CI, a panic in CI, where the script must have set it.
pub fn clickhouse_url() -> Option<String> {
    match std::env::var("WEIR_CLICKHOUSE_URL") {
        Ok(u) => Some(u),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("WEIR_CLICKHOUSE_URL must be set in CI")
        }
        Err(_) => {
            eprintln!("skipped: WEIR_CLICKHOUSE_URL is not set (scripts/test.sh sets it)");
            None
        }
    }
}

pub fn free_addr() -> SocketAddr {
    free_addrs::<1>()[0]
}

/// `N` distinct free ports, never one this test binary handed out before: the kernel may offer a port
/// again as soon as the probe closes it, before the weir it was meant for binds it.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::new();
    while held.len() < N {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        if handed_out.insert(l.local_addr().unwrap().port()) {
            held.push(l);
        }
    }
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

/// The YAML a test starts from; `extra_exporter_yaml` is appended under the `file` exporter and
/// `pipeline_yaml` replaces the pipeline section.
pub struct Options {
    /// Replaces the file exporter's destination line (e.g. `    blackhole: {}`).
    pub destination: Option<String>,
    /// Appended inside the gRPC and HTTP receivers' maps (e.g. `, tls: {…}`).
    pub grpc_extra: String,
    pub http_extra: String,
    pub exporter_extra: String,
    pub pipeline: String,
    pub shutdown_timeout: &'static str,
    /// Appended inside the admin map (e.g. `, token: s3cret`).
    pub admin_extra: String,
    /// Binds the admin endpoint on 0.0.0.0 (the tests still talk to it on 127.0.0.1).
    pub admin_any_address: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            destination: None,
            grpc_extra: String::new(),
            http_extra: String::new(),
            exporter_extra: "    batch: {max_age: 20ms}\n".into(),
            pipeline: "pipeline: {workers: 2}\n".into(),
            shutdown_timeout: "20s",
            admin_extra: String::new(),
            admin_any_address: false,
        }
    }
}

impl Weir {
    pub fn start() -> Weir {
        Weir::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Weir {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        Weir::start_in(dir, data, opts)
    }

    /// Starts with a data directory prepared by the caller (e.g. holding FIFOs).
    pub fn start_in(dir: tempfile::TempDir, data: PathBuf, opts: Options) -> Weir {
        let [grpc, http, admin] = free_addrs::<3>();
        let destination = opts
            .destination
            .clone()
            .unwrap_or_else(|| format!("    file: {{path: \"{}\"}}", data.display()));
        let config = format!(
            "receivers:\n  grpc: {{endpoint: \"{grpc}\"{}}}\n  http: {{endpoint: \"{http}\", max_request_bytes: 1MiB, max_decompressed_bytes: 4MiB{}}}\n{}exporters:\n  out:\n{destination}\n{}admin: {{endpoint: \"{}\"{}}}\nlog: {{level: \"info\"}}\nshutdown_timeout: {}\n",
            opts.grpc_extra,
            opts.http_extra,
            opts.pipeline,
            opts.exporter_extra,
            if opts.admin_any_address {
                format!("0.0.0.0:{}", admin.port())
            } else {
                admin.to_string()
            },
            opts.admin_extra,
            opts.shutdown_timeout,
        );
        let config_path = dir.path().join("weir.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("weir.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let weir = Weir {
            child,
            grpc,
            http,
            admin,
            data,
            dir,
        };
        weir.wait_ready();
        weir
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = http_request(self.admin, "GET", "/readyz", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("weir did not become ready; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weir.log")).unwrap_or_default()
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn metrics(&self) -> String {
        String::from_utf8(
            http_request(self.admin, "GET", "/metrics", &[], b"")
                .unwrap()
                .body,
        )
        .unwrap()
    }

    /// The value of one metric series, by name and a label filter like `signal="logs"`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self.metrics();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|f| l.contains(f)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weir did not exit after SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        read_lines(&self.data, "traces")
    }
    pub fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        read_lines(&self.data, "logs")
    }
    pub fn metrics_out(&self) -> Vec<ExportMetricsServiceRequest> {
        read_lines(&self.data, "metrics")
    }

    /// Waits until `count()` reaches `want` (or the time runs out) and returns the last count.
    pub fn wait_for(&self, want: usize, count: impl Fn(&Weir) -> usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n = count(self);
            if n >= want || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn span_count(&self) -> usize {
        self.traces()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }

    pub fn log_count(&self) -> usize {
        self.logs()
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line of `<signal>.jsonl` and its rotated files, oldest first.
pub fn read_lines<T: serde::de::DeserializeOwned>(dir: &Path, signal: &str) -> Vec<T> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let rest = name.strip_prefix(signal)?.strip_suffix("jsonl")?;
            let generation = rest.trim_matches('.').parse().unwrap_or(0);
            Some((generation, p))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut out = Vec::new();
    for (_, path) in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // A line still being written has no newline yet: read it next time.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        for line in complete.lines().filter(|l| !l.is_empty()) {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad line in {}: {e}", path.display())),
            );
        }
    }
    out
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client (one request per connection) so tests control every byte sent.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // The server may answer (413) and close before reading a large body; that is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no HTTP response: {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if len == 0 {
            break;
        }
        out.extend_from_slice(&b[pos + 2..pos + 2 + len]);
        b = &b[pos + 2 + len + 2..];
    }
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Request `n` of 50 spans with ids unique to `n`, and `pad` bytes of attribute per span.
pub fn span_request(n: usize, pad: usize) -> ExportTraceServiceRequest {
    let mut rs: Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans> =
        weir_pipeline::fixtures::resource_spans(1, 50);
    for (i, span) in rs[0].scope_spans[0].spans.iter_mut().enumerate() {
        span.span_id = ((n as u64) << 16 | i as u64 | 1 << 62)
            .to_be_bytes()
            .to_vec();
        if pad > 0 {
            span.attributes
                .push(weir_pipeline::fixtures::kv("pad", &"p".repeat(pad)));
        }
    }
    ExportTraceServiceRequest { resource_spans: rs }
}

pub fn span_ids(req: &ExportTraceServiceRequest) -> Vec<String> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| hex::encode(&s.span_id))
        .collect()
}

/// Makes `path` a FIFO: a file exporter writing to it blocks until [`FifoReader::start`] reads it.
pub fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Reads a FIFO the file exporter writes to, on a thread, keeping everything read.
pub struct FifoReader {
    received: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FifoReader {
    pub fn start(path: &Path) -> FifoReader {
        let received = Arc::new(Mutex::new(Vec::<u8>::new()));
        let thread = {
            let received = received.clone();
            let path = path.to_path_buf();
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(path).unwrap();
                let mut buf = [0u8; 64 * 1024];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        FifoReader {
            received,
            thread: Some(thread),
        }
    }

    /// Span ids in the complete lines read so far, with repeats.
    pub fn span_ids(&self) -> Vec<String> {
        let bytes = self.received.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .flat_map(|l| span_ids(&serde_json::from_str::<ExportTraceServiceRequest>(l).unwrap()))
            .collect()
    }

    /// Waits until every id of `want` was read (or 30 s pass); returns the distinct ids read.
    pub fn wait_for(&self, want: &BTreeSet<String>) -> BTreeSet<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got: BTreeSet<String> = self.span_ids().into_iter().collect();
            if want.is_subset(&got) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the writer to close the FIFO (weir exited).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
