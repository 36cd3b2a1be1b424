//! Authenticated, multi-tenant ingest: a missing or wrong token is refused (`UNAUTHENTICATED` on gRPC,
//! 401 with `WWW-Authenticate` on HTTP) and counted; a known token's tenant is stamped on the data and
//! reaches the exporters — Loki receives it as `X-Scope-OrgID`.

mod common;

use common::{http_request, Options, Weir};
use loki_receiver::{Limits, Receiver};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use std::io::Write;

/// `printf %s team-b-key | sha256sum`
fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn logs_json(body: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#,
        now_nanos()
    )
    .into_bytes()
}

fn grpc_logs(body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now_nanos(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(body.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn grpc_send(url: &str, token: Option<&str>, body: &str) -> Result<(), tonic::Code> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(grpc_logs(body));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec: tonic_prost::ProstCodec<ExportLogsServiceRequest, ExportLogsServiceResponse> =
        tonic_prost::ProstCodec::default();
    grpc.unary(
        request,
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
            .parse()
            .unwrap(),
        codec,
    )
    .await
    .map(|_| ())
    .map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_the_tenant_reaches_loki() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let mut f = std::fs::File::create(&tokens).unwrap();
    writeln!(f, "# tenant: token\nteam-a: team-a-key").unwrap();
    let loki = Receiver::start(Limits {
        auth_enabled: true,
        ..Limits::default()
    })
    .await;
    let weir = Weir::start_with(Options {
        // Indented: these lines continue the harness's `receivers:` section.
        pipeline: format!(
            "  auth:\n    tokens_file: \"{}\"\n    tokens:\n      - {{tenant: team-b, token_sha256: {}}}\npipeline: {{workers: 2}}\n",
            tokens.display(),
            sha256_hex("team-b-key")
        ),
        exporter_extra: format!(
            "    batch: {{max_age: 20ms}}\n  loki:\n    loki: {{endpoint: \"{}\", tenant_attribute: weir.tenant}}\n    batch: {{max_age: 20ms}}\n",
            loki.url()
        ),
        ..Options::default()
    });
    let json = [("Content-Type", "application/json")];

    let r = http_request(
        weir.http,
        "POST",
        "/v1/logs",
        &json,
        &logs_json("anonymous"),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"weir\""));
    let wrong = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer nope"),
    ];
    assert_eq!(
        http_request(weir.http, "POST", "/v1/logs", &wrong, &logs_json("wrong"))
            .unwrap()
            .status,
        401
    );
    let a = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer team-a-key"),
    ];
    assert_eq!(
        http_request(
            weir.http,
            "POST",
            "/v1/logs",
            &a,
            &logs_json("from a over http")
        )
        .unwrap()
        .status,
        200
    );
    let b = [
        ("Content-Type", "application/json"),
        ("X-API-Key", "team-b-key"),
    ];
    assert_eq!(
        http_request(
            weir.http,
            "POST",
            "/v1/logs",
            &b,
            &logs_json("from b over http")
        )
        .unwrap()
        .status,
        200
    );

    let url = weir.grpc_url();
    assert_eq!(
        grpc_send(&url, None, "anonymous").await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        grpc_send(&url, Some("nope"), "wrong").await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        grpc_send(&url, Some("team-b-key"), "from b over grpc").await,
        Ok(())
    );

    assert_eq!(weir.wait_for(3, Weir::log_count), 3, "{}", weir.log());
    let tenants: Vec<(String, String)> = weir
        .logs()
        .iter()
        .flat_map(|r| r.resource_logs.clone())
        .map(|rl| {
            let attr = rl
                .resource
                .unwrap()
                .attributes
                .into_iter()
                .find(|kv| kv.key == "weir.tenant")
                .and_then(|kv| match kv.value?.value? {
                    Value::StringValue(s) => Some(s),
                    _ => None,
                })
                .unwrap();
            let body = match rl.scope_logs[0].log_records[0]
                .body
                .clone()
                .unwrap()
                .value
                .unwrap()
            {
                Value::StringValue(s) => s,
                _ => panic!(),
            };
            (body, attr)
        })
        .collect();
    for (body, tenant) in &tenants {
        assert!(
            body.starts_with(&format!("from {}", &tenant[5..])),
            "{body} stamped {tenant}"
        );
    }
    assert_eq!(
        weir.metric(
            "weir_receiver_refused_requests_total",
            &["reason=\"unauthenticated\""]
        ),
        4.0
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while loki.entry_count("team-a") + loki.entry_count("team-b") < 3
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        loki.entry_count("team-a"),
        1,
        "X-Scope-OrgID from the token's tenant; requests {:?}; log:\n{}",
        loki.requests(),
        weir.log()
    );
    assert_eq!(loki.entry_count("team-b"), 2);
}

/// A log request whose resource claims `weir.tenant: <claimed>`, over OTLP/HTTP JSON.
fn spoofed_logs(claimed: &str, body: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"weir.tenant","value":{{"stringValue":"{claimed}"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","body":{{"stringValue":"{body}"}}}}]}}]}}]}}"#,
        now_nanos()
    )
    .into_bytes()
}

fn post_logs(weir: &Weir, token: Option<&str>, body: &[u8]) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http_request(weir.http, "POST", "/v1/logs", &headers, body)
        .unwrap()
        .status
}

async fn wait_entries(loki: &Receiver, tenant: &str, want: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while loki.entry_count(tenant) < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    loki.entry_count(tenant)
}

/// Nobody picks another tenant's Loki org by writing `weir.tenant` into a resource: without auth the
/// attribute is removed; with auth it is overwritten by the token's tenant; only an upstream named in
/// `trusted_tenant_from` passes its resources' tenants on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_tenant_never_chooses_the_loki_org() {
    let loki = Receiver::start(Limits {
        auth_enabled: true,
        ..Limits::default()
    })
    .await;
    let loki_exporter = format!(
        "    batch: {{max_age: 20ms}}\n  loki:\n    loki: {{endpoint: \"{}\", tenant: shared, tenant_attribute: weir.tenant}}\n",
        loki.url()
    );
    // No auth: the claim is stripped; the record lands in the exporter's own tenant.
    let open = Weir::start_with(Options {
        exporter_extra: loki_exporter.clone(),
        ..Options::default()
    });
    assert_eq!(post_logs(&open, None, &spoofed_logs("victim", "anon")), 200);
    assert_eq!(wait_entries(&loki, "shared", 1).await, 1);
    assert_eq!(loki.entry_count("victim"), 0);
    assert_eq!(
        open.metric(
            "weir_receiver_tenant_overridden_total",
            &["signal=\"logs\""]
        ),
        1.0
    );
    // Auth: team-a's token with a claim of victim lands in team-a; the trusted edge's claim stands.
    let pipeline = format!(
        "  auth:\n    tokens:\n      - {{tenant: team-a, token_sha256: \"{}\"}}\n      - {{tenant: edges, token_sha256: \"{}\"}}\n    trusted_tenant_from: [edges]\npipeline: {{workers: 2}}\n",
        sha256_hex("team-a-key"),
        sha256_hex("edge-key")
    );
    let gated = Weir::start_with(Options {
        exporter_extra: loki_exporter,
        pipeline,
        ..Options::default()
    });
    assert_eq!(
        post_logs(&gated, Some("team-a-key"), &spoofed_logs("victim", "a")),
        200
    );
    assert_eq!(
        post_logs(
            &gated,
            Some("edge-key"),
            &spoofed_logs("team-b", "via-edge")
        ),
        200
    );
    assert_eq!(wait_entries(&loki, "team-a", 1).await, 1);
    assert_eq!(wait_entries(&loki, "team-b", 1).await, 1);
    assert_eq!(loki.entry_count("victim"), 0, "{}", gated.log());
}

/// The same claim against ClickHouse's per-tenant databases: no database is made for it.
#[test]
fn a_client_sent_tenant_never_chooses_the_clickhouse_database() {
    let Some(url) = common::clickhouse_url() else {
        return;
    };
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let query = |sql: &str| {
        let r = http_request(addr, "POST", "/", &[], sql.as_bytes()).unwrap();
        String::from_utf8_lossy(&r.body).trim().to_string()
    };
    let pid = std::process::id();
    let (shared, victim) = (format!("weir_shared_{pid}"), format!("victim{pid}"));
    let weir = Weir::start_with(Options {
        destination: Some(format!(
            "    clickhouse: {{endpoint: \"{url}\", database: {shared}, database_attribute: weir.tenant}}"
        )),
        ..Options::default()
    });
    assert_eq!(post_logs(&weir, None, &spoofed_logs(&victim, "anon")), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while query(&format!("SELECT count() FROM {shared}.otel_logs")) != "1" {
        assert!(std::time::Instant::now() < deadline, "{}", weir.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        query(&format!(
            "SELECT count() FROM system.databases WHERE name = '{victim}'"
        )),
        "0"
    );
    query(&format!("DROP DATABASE IF EXISTS {shared}"));
}
