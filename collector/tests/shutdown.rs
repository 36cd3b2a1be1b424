//! SIGTERM under load: receivers stop, queues drain, exporters flush; every acknowledged item is on disk.

mod common;

use common::Weir;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_pipeline::fixtures;

fn request(client: usize, n: usize) -> (ExportLogsServiceRequest, Vec<String>) {
    let mut rl = fixtures::resource_logs(1, 20);
    let mut ids = Vec::new();
    for (i, rec) in rl[0].scope_logs[0].log_records.iter_mut().enumerate() {
        let id = format!("{client}-{n}-{i}");
        rec.attributes.push(fixtures::kv("test.id", &id));
        ids.push(id);
    }
    (ExportLogsServiceRequest { resource_logs: rl }, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_acknowledged_item() {
    let mut weir = Weir::start();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for c in 0..4 {
        let (url, acknowledged, stop) = (weir.grpc_url(), acknowledged.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(url).await.unwrap();
            let mut refused = 0;
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (req, ids) = request(c, n);
                match client.export(req).await {
                    Ok(_) => acknowledged.lock().unwrap().extend(ids),
                    // Refused or cut off by the shutdown: not acknowledged, so not owed.
                    Err(_) => {
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_term = acknowledged.lock().unwrap().len();
    assert!(
        before_term > 1000,
        "load was running: {before_term} acknowledged"
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = weir.terminate();
        (s, weir)
    })
    .await
    .unwrap();
    let (status, weir) = status;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(status.success(), "clean exit; log:\n{}", weir.log());
    assert!(weir.log().contains("shutdown complete"), "{}", weir.log());

    let mut delivered = BTreeSet::new();
    let mut total = 0;
    for req in weir.logs() {
        for rec in req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            let id = rec
                .attributes
                .iter()
                .find(|kv| kv.key == "test.id")
                .unwrap();
            if let Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(id)) =
                id.value.clone().unwrap().value
            {
                delivered.insert(id);
                total += 1;
            }
        }
    }
    let acknowledged = acknowledged.lock().unwrap();
    let missing: Vec<_> = acknowledged.difference(&delivered).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged, missing (first 5): {missing:?}",
        acknowledged.len()
    );
    assert_eq!(total, delivered.len(), "no record written twice");
}

/// An exporter stuck for good (a FIFO nobody reads) cannot hold shutdown hostage: at the deadline weir
/// exits non-zero and says how many acknowledged items it could not deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_exporter_cannot_hold_shutdown_past_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(data.join("logs.jsonl"))
        .status()
        .unwrap()
        .success());
    let mut weir = Weir::start_in(
        dir,
        data,
        common::Options {
            shutdown_timeout: "2s",
            ..common::Options::default()
        },
    );
    let mut client = LogsServiceClient::connect(weir.grpc_url()).await.unwrap();
    for n in 0..5 {
        client.export(request(0, n).0).await.unwrap();
    }
    let started = std::time::Instant::now();
    let (status, weir) = tokio::task::spawn_blocking(move || (weir.terminate(), weir))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!status.success(), "an unclean shutdown is not a success");
    let log = weir.log();
    assert!(
        log.contains("shutdown deadline passed: these items were not delivered"),
        "{log}"
    );
    assert!(
        log.contains("items=100"),
        "all 5×20 acknowledged records are accounted for: {log}"
    );
}
