//! `overflow: spill` with the real binary: an exporter whose destination is stuck spills to its own
//! log while the other exporter keeps delivering, and gets everything once its destination is back,
//! across a kill -9 in between.

mod common;

use common::{http_request, mkfifo, span_ids, span_request, FifoReader, Options, Weir};
use prost::Message;
use std::collections::BTreeSet;
use std::path::Path;

/// The memory limit is the derived default: feeding spilled batches must not push the heap past it
/// (zstd's bulk API once allocated 1 GiB per spilled batch, and requests were refused).
fn options(wal: &Path, slow: &Path, overflow: &str) -> Options {
    Options {
        pipeline: format!(
            "pipeline:\n  workers: 1\n  intake_queue: {{max_items: 100, max_bytes: 256KiB}}\ndurable: {{dir: \"{}\", checkpoint_interval: 100ms}}\n",
            wal.display()
        ),
        exporter_extra: format!(
            "    batch: {{max_items: 100, max_age: 20ms}}\n  slow:\n    file: {{path: \"{}\"}}\n    queue: {{max_items: 100, max_bytes: 256KiB, overflow: {overflow}}}\n    batch: {{max_items: 100, max_age: 20ms}}\n",
            slow.display()
        ),
        shutdown_timeout: "10s",
        ..Options::default()
    }
}

fn post(weir: &Weir, n: usize) -> u16 {
    let body = span_request(n, 200).encode_to_vec();
    let headers = [("Content-Type", "application/x-protobuf")];
    http_request(weir.http, "POST", "/v1/traces", &headers, &body)
        .unwrap()
        .status
}

/// A weir whose exporter "slow" writes to a FIFO nobody reads, after `requests` requests of 50 spans
/// were acknowledged and delivered by the other exporter: the log dirs, the FIFO, what was sent.
struct Stuck {
    wal: tempfile::TempDir,
    slow: tempfile::TempDir,
    fifo: std::path::PathBuf,
    weir: Weir,
    acknowledged: BTreeSet<String>,
}

fn stuck(requests: usize) -> Stuck {
    let wal = tempfile::tempdir().unwrap();
    let slow = tempfile::tempdir().unwrap();
    let fifo = slow.path().join("traces.jsonl");
    mkfifo(&fifo);
    let weir = Weir::start_with(options(wal.path(), slow.path(), "spill"));
    let mut acknowledged = BTreeSet::new();
    for n in 0..requests {
        let status = post(&weir, n);
        assert_eq!(
            status,
            200,
            "request {n} refused; refusals: {:?}; log:\n{}",
            weir.metrics()
                .lines()
                .filter(|l| (l.contains("refused") || l.starts_with("weir_memory"))
                    && !l.ends_with(" 0")
                    && !l.starts_with('#'))
                .collect::<Vec<_>>(),
            weir.log()
        );
        acknowledged.extend(span_ids(&span_request(n, 200)));
    }
    assert_eq!(
        weir.wait_for(requests * 50, Weir::span_count),
        requests * 50,
        "the other exporter is not held up by the stuck one"
    );
    Stuck {
        wal,
        slow,
        fifo,
        weir,
        acknowledged,
    }
}

#[test]
fn a_stuck_exporter_spills_while_the_other_delivers_and_gets_everything_after_kill_9() {
    let Stuck {
        wal,
        slow,
        fifo,
        mut weir,
        acknowledged,
    } = stuck(100);
    let spilled = weir.metric(
        "weir_spill_written_items_total",
        &["exporter=\"slow\"", "signal=\"traces\""],
    );
    assert!(
        spilled >= 4000.0,
        "the stuck exporter's share went to disk: {spilled}"
    );
    assert!(weir.metric("weir_spill_bytes", &["exporter=\"slow\""]) > 0.0);

    weir.child.kill().unwrap();
    weir.child.wait().unwrap();
    let data = weir.data.clone();
    let dir = std::mem::replace(&mut weir.dir, tempfile::tempdir().unwrap());
    drop(weir);

    // The destination is back; the next start feeds the exporter from its spill log — even with the
    // exporter's overflow set back to `block`: a spill log left by an earlier config is still fed.
    let reader = FifoReader::start(&fifo);
    let mut weir = Weir::start_in(dir, data, options(wal.path(), slow.path(), "block"));
    let got = reader.wait_for(&acknowledged);
    assert_eq!(
        acknowledged.difference(&got).count(),
        0,
        "every acknowledged span reaches the exporter that was stuck"
    );
    assert!(weir.metric("weir_spill_read_items_total", &["exporter=\"slow\""]) >= spilled);
    assert!(weir.terminate().success());
    reader.join();
}

#[test]
fn sigterm_delivers_the_spilled_backlog_before_exiting_and_leaves_nothing_behind() {
    let Stuck {
        wal,
        slow,
        fifo,
        mut weir,
        acknowledged,
    } = stuck(60);
    assert!(weir.metric("weir_spill_written_items_total", &["exporter=\"slow\""]) > 0.0);
    let reader = FifoReader::start(&fifo);
    assert!(weir.terminate().success(), "clean exit: {}", weir.log());
    let got = reader.wait_for(&acknowledged);
    reader.join();
    assert_eq!(
        acknowledged.difference(&got).count(),
        0,
        "the backlog on disk was fed and delivered before the exit"
    );
    let spill_dir = wal.path().join("spill/slow/traces");
    let left: u64 = std::fs::read_dir(&spill_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    drop(weir);
    let weir = Weir::start_with(options(wal.path(), slow.path(), "spill"));
    assert_eq!(
        weir.metric("weir_spill_read_items_total", &["exporter=\"slow\""]),
        0.0,
        "nothing to feed again after a clean stop (spill dir held {left} bytes)"
    );
}
