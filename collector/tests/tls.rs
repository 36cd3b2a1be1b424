//! TLS and mTLS on both receivers, with certificates made in the test (rcgen): a plain client, a client
//! that trusts another CA, and a client without a certificate are all refused; a client with one gets
//! through over OTLP/HTTP and OTLP/gRPC; a rotated certificate is served without a restart.

mod common;

use bytes::Bytes;
use common::{Options, Weir};
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// (certificate PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client_config(
    trust: &Ca,
    identity: Option<&(String, String)>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.cert.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// POSTs one log record over HTTP/1.1 on TLS; the status, or why there was none.
async fn https_post(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<u16, String> {
    let mut tls = connect(addr, config).await?;
    let body = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"over tls"}}]}]}]}"#;
    let request = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

/// One OTLP/gRPC logs export over HTTP/2 on TLS; the `grpc-status`.
async fn grpc_export(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    let tls = connect(addr, config).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let message = ExportLogsServiceRequest::default().encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = hyper::Request::post(
        "https://localhost/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    )
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from(frame)))
    .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing");
    Ok(status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_on_both_receivers_and_rotation_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let trusted = ca("weir test CA");
    let other = ca("some other CA");
    let (server_cert, server_key) = leaf(&trusted, "weir", ExtendedKeyUsagePurpose::ServerAuth);
    let client = leaf(&trusted, "client", ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(file("server.pem"), &server_cert).unwrap();
    std::fs::write(file("server.key"), &server_key).unwrap();
    std::fs::write(file("ca.pem"), trusted.cert.pem()).unwrap();
    let tls = format!(
        ", tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\", reload_interval: 100ms}}",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    );
    let weir = Weir::start_with(Options {
        grpc_extra: tls.clone(),
        http_extra: tls,
        ..Options::default()
    });

    let good = client_config(&trusted, Some(&client), &[]);
    assert_eq!(https_post(weir.http, good.clone()).await, Ok(200));
    assert!(
        https_post(weir.http, client_config(&trusted, None, &[]))
            .await
            .is_err(),
        "no client certificate"
    );
    assert!(
        https_post(weir.http, client_config(&other, Some(&client), &[]))
            .await
            .is_err(),
        "server not trusted"
    );
    // A plain-text client gets no HTTP answer from a TLS port.
    let mut plain = tokio::net::TcpStream::connect(weir.http).await.unwrap();
    plain
        .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    let h2 = client_config(&trusted, Some(&client), &[b"h2"]);
    assert_eq!(grpc_export(weir.grpc, h2.clone()).await, Ok("0".into()));
    assert!(
        grpc_export(weir.grpc, client_config(&trusted, None, &[b"h2"]))
            .await
            .is_err()
    );
    assert_eq!(weir.wait_for(1, Weir::log_count), 1);

    // Rotation: new files, same paths; the next connection sees the new certificate.
    let (rotated_cert, rotated_key) = leaf(
        &trusted,
        "weir rotated",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(file("server.key.new"), &rotated_key).unwrap();
    std::fs::write(file("server.pem.new"), &rotated_cert).unwrap();
    std::fs::rename(file("server.key.new"), file("server.key")).unwrap();
    std::fs::rename(file("server.pem.new"), file("server.pem")).unwrap();
    let rotated_der = CertificateDer::from_pem_slice(rotated_cert.as_bytes()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stream = connect(weir.http, good.clone()).await.unwrap();
        let served = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        if served == rotated_der {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        https_post(weir.http, good).await,
        Ok(200),
        "still serving after rotation"
    );
    assert!(
        weir.log().contains("TLS certificate reloaded"),
        "{}",
        weir.log()
    );
}

/// The OTLP exporter's client side: a sidecar forwards over gRPC with mTLS, and over HTTP/protobuf
/// with TLS, to gateways that require client certificates.
#[test]
fn the_otlp_exporter_forwards_over_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let trusted = ca("weir test CA");
    let (server_cert, server_key) = leaf(&trusted, "gateway", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = leaf(&trusted, "sidecar", ExtendedKeyUsagePurpose::ClientAuth);
    for (name, pem) in [
        ("server.pem", &server_cert),
        ("server.key", &server_key),
        ("client.pem", &client_cert),
        ("client.key", &client_key),
    ] {
        std::fs::write(file(name), pem).unwrap();
    }
    std::fs::write(file("ca.pem"), trusted.cert.pem()).unwrap();
    let server_tls = format!(
        ", tls: {{cert_file: \"{}\", key_file: \"{}\", client_ca_file: \"{}\"}}",
        file("server.pem"),
        file("server.key"),
        file("ca.pem")
    );
    let gateway = Weir::start_with(Options {
        grpc_extra: server_tls.clone(),
        http_extra: server_tls,
        ..Options::default()
    });
    let client_tls = format!(
        "tls: {{ca_file: \"{}\", cert_file: \"{}\", key_file: \"{}\"}}",
        file("ca.pem"),
        file("client.pem"),
        file("client.key")
    );
    for (protocol, port) in [("grpc", gateway.grpc.port()), ("http", gateway.http.port())] {
        let sidecar = Weir::start_with(Options {
            destination: Some(format!(
                "    otlp: {{endpoints: [\"localhost:{port}\"], protocol: {protocol}, {client_tls}}}"
            )),
            ..Options::default()
        });
        let before = gateway.log_count();
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"via {protocol}"}}}}]}}]}}]}}"#
        );
        let r = common::http_request(
            sidecar.http,
            "POST",
            "/v1/logs",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            gateway.wait_for(before + 1, Weir::log_count),
            before + 1,
            "{protocol}: sidecar log:\n{}",
            sidecar.log()
        );
    }
    // server_name is what the certificate is checked against, on both protocols: a name the
    // gateway's certificate does not carry is refused even though the endpoint's host would pass.
    for (protocol, port) in [("grpc", gateway.grpc.port()), ("http", gateway.http.port())] {
        let client_tls = client_tls.replace('}', ", server_name: \"wrong.example\"}");
        let sidecar = Weir::start_with(Options {
            destination: Some(format!(
                "    otlp: {{endpoints: [\"localhost:{port}\"], protocol: {protocol}, {client_tls}}}"
            )),
            ..Options::default()
        });
        let r = common::http_request(
            sidecar.http,
            "POST",
            "/v1/logs",
            &[("Content-Type", "application/json")],
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.status, 200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sidecar.metric("weir_exporter_retries_total", &["signal=\"logs\""]) < 1.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{protocol}: no failed attempt"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            sidecar.metric("weir_exporter_sent_items_total", &["signal=\"logs\""]),
            0.0,
            "{protocol}: delivered to a server whose certificate does not name wrong.example"
        );
    }
}
