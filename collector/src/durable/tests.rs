use super::*;
use weir_config::DurableConfig;
use weir_pipeline::{fixtures, Logs, Receiver, Signal};

fn start(dir: &std::path::Path) -> (Durable<Logs>, Receiver<Batch<Logs>>) {
    let cfg: DurableConfig =
        serde_yaml_ng::from_str(&format!("{{dir: \"{}\"}}", dir.display())).unwrap();
    let limits = Limits {
        max_items: 100_000,
        max_bytes: usize::MAX,
    };
    let (tx, rx) = bounded(limits);
    let durable = Durable::start(&cfg, tx, limits, 1 << 20, &Registry::new()).unwrap();
    (durable, rx)
}

fn batch() -> Batch<Logs> {
    Batch::measured(fixtures::resource_logs(1, 3))
}

/// A record the log cannot hold (here: tenant metadata over 64 KiB) is refused with its own reason;
/// it used to reach an `expect` in the writer thread, killing it for every later request.
#[tokio::test]
async fn a_record_too_large_for_the_log_is_refused_and_the_writer_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let (durable, _rx) = start(dir.path());
    let huge = "t".repeat(70_000);
    let b = batch();
    let body = prost::Message::encode_to_vec(&Logs::to_request(b.resources.clone()));
    let raw = record::Raw {
        body: body.into(),
        format: crate::decode::Format::Protobuf,
        encoding: record::Encoding::None,
    };
    let refused = durable
        .append(
            b,
            Some(raw),
            crate::tenant::Stamp::Set("weir.tenant", &huge),
        )
        .await;
    assert_eq!(refused, Err(Refused::TooLarge));
    assert_eq!(
        durable
            .append(batch(), None, crate::tenant::Stamp::Keep)
            .await,
        Ok(())
    );
    assert!(durable.healthy() && !durable.writer_dead());
    assert_eq!(
        durable.inbox.available_permits(),
        durable.inbox_bytes as usize,
        "every append gave its inbox share back"
    );
    durable.finish();
}

/// If the writer thread dies, requests are refused (not left waiting) and readiness says why.
#[tokio::test]
async fn a_dead_writer_fails_readiness_and_refuses_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (durable, _rx) = start(dir.path());
    assert_eq!(
        durable
            .append(batch(), None, crate::tenant::Stamp::Keep)
            .await,
        Ok(())
    );
    durable.tx.send(Msg::Crash).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !durable.writer_dead() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!durable.healthy());
    assert_eq!(
        durable
            .append(batch(), None, crate::tenant::Stamp::Keep)
            .await,
        Err(Refused::Closed)
    );
    durable.finish();
}
