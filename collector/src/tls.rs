//! TLS for the receivers: a rustls server config built from PEM files and swapped atomically when the
//! files change (certificate rotation without a restart), and an accept loop that completes
//! handshakes off the accept path and hands ready connections to the gRPC or HTTP server.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use weir_config::TlsServer;

/// Builds the server config; errors name the file and what is wrong with it.
pub fn load(c: &TlsServer, alpn: &[&[u8]], path: &str) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert_file)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("{path}.cert_file: {}: {e}", c.cert_file))?;
    if certs.is_empty() {
        return Err(format!("{path}.cert_file: {}: no certificate", c.cert_file));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .map_err(|e| format!("{path}.key_file: {}: {e}", c.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{path}: {e}"))?;
    let builder = match &c.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{path}.client_ca_file: {ca}: {e}"))?
            {
                let cert = cert.map_err(|e| format!("{path}.client_ca_file: {ca}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{path}.client_ca_file: {ca}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{path}.client_ca_file: {ca}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{path}: certificate and key do not fit: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn modified(c: &TlsServer) -> Vec<Option<SystemTime>> {
    [
        Some(&c.cert_file),
        Some(&c.key_file),
        c.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
    .collect()
}

/// A TLS listener: the live config, and a task that swaps it when the files change.
pub struct Tls {
    config: Arc<ArcSwap<ServerConfig>>,
}

impl Tls {
    pub fn start(
        c: &TlsServer,
        alpn: &'static [&'static [u8]],
        path: &'static str,
    ) -> Result<Self, String> {
        let config = Arc::new(ArcSwap::from_pointee(load(c, alpn, path)?));
        let (watched, c) = (config.clone(), c.clone());
        tokio::spawn(async move {
            let mut seen = modified(&c);
            let mut tick =
                tokio::time::interval(c.reload_interval.0.max(Duration::from_millis(100)));
            loop {
                tick.tick().await;
                if Arc::strong_count(&watched) == 1 {
                    return; // the listener is gone
                }
                let now = modified(&c);
                if now == seen {
                    continue;
                }
                seen = now;
                match load(&c, alpn, path) {
                    Ok(fresh) => {
                        watched.store(Arc::new(fresh));
                        tracing::info!(
                            receiver = path,
                            "TLS certificate reloaded; new connections use it"
                        );
                    }
                    Err(e) => {
                        tracing::error!(receiver = path, error = %e, "TLS files changed but do not load; the previous certificate stays")
                    }
                }
            }
        });
        Ok(Tls { config })
    }

    /// Accepts TCP connections and completes their handshakes concurrently (bounded by a timeout, so
    /// a client that never finishes cannot hold a slot); ready connections come out of the channel.
    pub fn accept(
        &self,
        listener: TcpListener,
        path: &'static str,
    ) -> mpsc::Receiver<(TlsConn, SocketAddr)> {
        let (tx, rx) = mpsc::channel(64);
        let config = self.config.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(receiver = path, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let _ = tcp.set_nodelay(true);
                let acceptor = tokio_rustls::TlsAcceptor::from(config.load_full());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((TlsConn(stream), peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(receiver = path, %peer, error = %e, "TLS handshake refused")
                        }
                        Err(_) => {
                            tracing::debug!(receiver = path, %peer, "TLS handshake timed out")
                        }
                    }
                });
            }
        });
        rx
    }
}

/// A server-side TLS connection, as the gRPC and HTTP servers take it.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

/// The HTTP receiver's listener over TLS connections.
pub struct TlsListener {
    pub incoming: mpsc::Receiver<(TlsConn, SocketAddr)>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept loop only ends with the process; wait rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
