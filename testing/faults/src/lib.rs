//! A fault-injecting TCP proxy for Weir's fault tests. It sits between a Weir exporter and its real
//! destination (another Weir, the Loki test receiver, a ClickHouse server) and, per connection,
//! behaves the way real outages do rather than the polite "connection refused":
//!
//! - [`Fault::Hang`]: accepts, reads everything, never answers (a hung upstream, a black-holed route);
//! - [`Fault::Delay`]: holds the connection for a while, then passes it through (a slow peer);
//! - [`Fault::StallResponse`]: passes the request, then stops the answer after N bytes (a peer that
//!   dies mid-response);
//! - [`Fault::ResetAfter`]: reads N bytes of the request, then resets the connection (RST mid-body);
//! - [`Fault::Answer`]: answers every HTTP/1.1 request with the given bytes (a 200 with a body the
//!   client cannot parse, a 429 with a garbage `Retry-After`, a lying load balancer);
//! - [`Fault::Refuse`]: resets every connection as soon as it is accepted.
//!
//! A connection keeps the fault it was accepted under, as a real hung peer keeps its socket: healing
//! the proxy ([`Proxy::set`] with [`Fault::Pass`]) helps only clients that notice and reconnect.
//! [`Proxy::cut`] closes every open connection.
//!
//! Threads, not async: the tests that use it are plain `#[test]` functions driving real processes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does with a connection it accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Hang,
    Delay(Duration),
    StallResponse { after: usize },
    ResetAfter { request_bytes: usize },
    Answer(Vec<u8>),
    Refuse,
}

impl Fault {
    /// An HTTP/1.1 response with `status`, extra header lines and `body`.
    pub fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Fault {
        let mut r = format!(
            "HTTP/1.1 {status} Fault\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        Fault::Answer(bytes)
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Pass => write!(f, "Pass"),
            Fault::Hang => write!(f, "Hang"),
            Fault::Delay(d) => write!(f, "Delay({d:?})"),
            Fault::StallResponse { after } => write!(f, "StallResponse(after {after} bytes)"),
            Fault::ResetAfter { request_bytes } => {
                write!(f, "ResetAfter({request_bytes} request bytes)")
            }
            Fault::Answer(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let head: Vec<&str> = text.split("\r\n").take_while(|l| !l.is_empty()).collect();
                write!(f, "Answer({:?})", head.join(" | "))
            }
            Fault::Refuse => write!(f, "Refuse"),
        }
    }
}

/// What the proxy's acceptor and connection threads share.
struct ProxyState {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    stop: AtomicBool,
    /// Bumped by `cut`: connections accepted before it close.
    generation: AtomicU64,
    accepted: AtomicU64,
    answered: AtomicU64,
}

/// The proxy; stops (and closes every connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyState>,
    acceptor: Option<thread::JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(50);

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` while the fault is [`Fault::Pass`].
    pub fn start(upstream: SocketAddr, fault: Fault) -> Proxy {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            upstream,
            fault,
        )
    }

    /// Like [`Proxy::start`] on a listener the caller bound (a port handed out by its own harness).
    pub fn start_on(listener: TcpListener, upstream: SocketAddr, fault: Fault) -> Proxy {
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(ProxyState {
            upstream,
            fault: Mutex::new(fault),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = thread::spawn(move || accept_loop(&listener, &s));
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fault for connections accepted from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// Closes every connection open now (a peer that restarts, a NAT that forgets).
    pub fn cut(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Requests answered under [`Fault::Answer`].
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<ProxyState>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let fault = shared
                    .fault
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let s = shared.clone();
                thread::spawn(move || {
                    let _ = client.set_nonblocking(false);
                    let _ = client.set_nodelay(true);
                    serve(client, fault, &s);
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Whether a connection accepted in `generation` should go on.
fn alive(shared: &ProxyState, generation: u64) -> bool {
    !shared.stop.load(Ordering::SeqCst) && shared.generation.load(Ordering::SeqCst) == generation
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn serve(client: TcpStream, fault: Fault, shared: &Arc<ProxyState>) {
    let generation = shared.generation.load(Ordering::SeqCst);
    let _ = client.set_read_timeout(Some(POLL));
    match fault {
        Fault::Pass => pass(client, usize::MAX, shared, generation),
        Fault::Hang => drain(&client, usize::MAX, shared, generation),
        Fault::Delay(d) => {
            let until = Instant::now() + d;
            while Instant::now() < until && alive(shared, generation) {
                thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
            }
            pass(client, usize::MAX, shared, generation);
        }
        Fault::StallResponse { after } => pass(client, after, shared, generation),
        Fault::ResetAfter { request_bytes } => {
            drain(&client, request_bytes, shared, generation);
            reset(&client);
        }
        Fault::Answer(bytes) => answer(client, &bytes, shared, generation),
        Fault::Refuse => reset(&client),
    }
}

/// Reads and discards until `limit` bytes, EOF, or the proxy lets go.
fn drain(mut s: &TcpStream, limit: usize, shared: &ProxyState, generation: u64) {
    let (mut buf, mut seen) = ([0u8; 16 << 10], 0usize);
    while seen < limit && alive(shared, generation) {
        match s.read(&mut buf[..(limit - seen).min(16 << 10)]) {
            Ok(0) => return,
            Ok(n) => seen += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Forwards both ways; the answer stops after `answer_limit` bytes (the connection then stays open
/// and silent).
fn pass(client: TcpStream, answer_limit: usize, shared: &Arc<ProxyState>, generation: u64) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2)) else {
        reset(&client);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = upstream.set_read_timeout(Some(POLL));
    let (c2, u2) = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return,
    };
    let s = shared.clone();
    let up = thread::spawn(move || copy(&c2, &u2, usize::MAX, &s, generation));
    copy(&upstream, &client, answer_limit, shared, generation);
    if answer_limit != usize::MAX {
        // Stalled: the answer never completes, but the socket stays open.
        drain(&upstream, usize::MAX, shared, generation);
    }
    let _ = up.join();
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

fn copy(
    mut from: &TcpStream,
    mut to: &TcpStream,
    limit: usize,
    shared: &ProxyState,
    generation: u64,
) {
    let (mut buf, mut done) = ([0u8; 32 << 10], 0usize);
    while done < limit && alive(shared, generation) {
        match from.read(&mut buf[..(limit - done).min(32 << 10)]) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                done += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    if done < limit {
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// Reads HTTP/1.1 requests (headers and a `content-length` body) and answers each with `bytes`.
fn answer(mut client: TcpStream, bytes: &[u8], shared: &ProxyState, generation: u64) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 32 << 10];
    while alive(shared, generation) {
        if let Some(len) = request_len(&buf) {
            if buf.len() >= len {
                buf.drain(..len);
                shared.answered.fetch_add(1, Ordering::SeqCst);
                if client.write_all(bytes).is_err() {
                    return;
                }
                continue;
            }
        }
        match client.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// The length of the first complete request's head plus body, once its head has arrived.
fn request_len(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    let body = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some(head + body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn roundtrip(addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        s.write_all(msg)?;
        let mut out = vec![0u8; msg.len()];
        let mut got = 0;
        while got < out.len() {
            match s.read(&mut out[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
        out.truncate(got);
        Ok(out)
    }

    #[test]
    fn passes_hangs_stalls_and_heals() {
        let p = Proxy::start(echo_server(), Fault::Pass);
        assert_eq!(roundtrip(p.addr(), b"hello").unwrap(), b"hello");
        p.set(Fault::Hang);
        assert!(roundtrip(p.addr(), b"hello").is_err(), "no answer");
        p.set(Fault::StallResponse { after: 2 });
        let e = roundtrip(p.addr(), b"hello");
        assert!(e.is_err(), "the answer stops after two bytes: {e:?}");
        p.set(Fault::Pass);
        assert_eq!(roundtrip(p.addr(), b"again").unwrap(), b"again");
    }

    #[test]
    fn answers_http_requests_and_resets() {
        let p = Proxy::start(
            echo_server(),
            Fault::http(429, &[("retry-after", "-1")], b"no"),
        );
        let mut s = TcpStream::connect(p.addr()).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc")
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 429"));
        assert_eq!(p.answered(), 1);
        p.set(Fault::Refuse);
        let r = roundtrip(p.addr(), b"x");
        assert!(r.is_err() || r.unwrap().is_empty());
    }
}
