use super::*;

fn tenancy(max: usize) -> Tenancy {
    Tenancy {
        attribute: "weir.tenant".into(),
        tables: Vec::new(),
        ddl: Vec::new(),
        layout: Layout::Modern,
        modern_server: true,
        pattern: regex::Regex::new(&format!(
            "^(?:{})$",
            weir_config::ClickHouseExporter::DEFAULT_DATABASE_PATTERN
        ))
        .unwrap(),
        max,
        shared: "otel".into(),
        prepared: Mutex::default(),
    }
}

#[test]
fn different_tenants_never_share_a_database() {
    let t = tenancy(100);
    let names: Vec<String> = ["team-a", "team_a", "team.a", "Team-A", "teama"]
        .iter()
        .map(|v| t.database_for(v).unwrap())
        .collect();
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    assert_eq!(names[0], "team_2da");
    assert!(names
        .iter()
        .all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
}

#[test]
fn reserved_unmatched_and_surplus_tenants_get_no_database() {
    let t = tenancy(2);
    for bad in [
        "system", "SYSTEM", "default", "otel", "", "-x", "a b", "../etc",
    ] {
        assert!(t.database_for(bad).is_err(), "{bad:?}");
    }
    assert!(t.database_for("information_schema").is_err());
    assert!(t.database_for("INFORMATION_SCHEMA").is_err());
    assert!(t.database_for("one").is_ok());
    assert!(t.database_for("two").is_ok());
    assert!(
        t.database_for("one").is_ok(),
        "a known tenant is not a new one"
    );
    let e = t.database_for("three").unwrap_err();
    assert!(e.contains("max_databases"), "{e}");
}

/// A server that answers `SELECT version()` and hangs on the first schema statement (its next
/// connection works): the background connect must give that attempt up and try again, not wait
/// for ever.
#[tokio::test]
async fn a_connect_that_hangs_after_the_version_is_given_up_and_tried_again() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    static HUNG_ONCE: AtomicBool = AtomicBool::new(false);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || loop {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let body = if head.contains("version") {
                    "18.16.1\n"
                } else if !HUNG_ONCE.swap(true, Ordering::SeqCst) {
                    // Holds the connection, never answering.
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    return;
                } else {
                    ""
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if conn.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    let yaml = format!("exporters:\n  ch:\n    clickhouse: {{endpoint: \"http://{addr}\"}}\n");
    let cfg = weir_config::parse(&yaml, "test", |_| None).unwrap();
    let cfg = cfg.exporters["ch"].clickhouse.clone().unwrap();
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        ClickHouse::connect_retrying(
            &cfg,
            SignalKind::Logs,
            "ch",
            std::time::Duration::from_millis(500),
        ),
    )
    .await;
    assert!(HUNG_ONCE.load(Ordering::SeqCst), "the server never hung");
    assert!(connected.is_ok(), "still waiting on the hung attempt");
}
