//! In process, end to end, on the payload `weir-loadtest` sends by default (500 log records, 6
//! attributes, 120-byte bodies, half with trace context): decode alone, then decode → normalise →
//! sample → redact (all built-in detectors) → blackhole encode, so the ratio of the two is the cost
//! of Weir's stages relative to parsing. The real-network figure comes from `weir-loadtest`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use std::sync::Arc;
use weir_exporters::{Blackhole, Exporter};
use weir_pipeline::metrics::Registry;
use weir_pipeline::stages::normalize::{Normalize, NormalizePolicy};
use weir_pipeline::stages::redact::{Redact, RedactPolicy};
use weir_pipeline::stages::sample::{Sample, SamplePolicy};
use weir_pipeline::wal::{self, payload};
use weir_pipeline::{Batch, Chain, Logs, Signal};

const CONFIG: &str = "pipeline:
  sample:
    logs:
      rules:
        - {name: problems, min_severity: warn, probability: 1.0}
        - {name: info, severity: info, probability: 1.0}
  redact:
    enabled: true
    keys:
      - {key: \"*password*\", action: drop}
exporters:
  b: {blackhole: {}}
";

/// As in `weir`: decoding allocates for every string, and the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: weir_pipeline::memory::Allocator = weir_pipeline::memory::ALLOCATOR;

fn end_to_end(c: &mut Criterion) {
    for (group, workload) in [
        (
            "end_to_end_logs_500",
            weir_loadtest::workload::Workload::default(),
        ),
        (
            "end_to_end_sdk_logs_500",
            weir_loadtest::workload::Workload {
                profile: weir_loadtest::workload::Profile::Sdk,
                ..Default::default()
            },
        ),
    ] {
        decode_and_chain(c, group, &workload);
    }
    durable(c, &weir_loadtest::workload::Workload::default());
}

fn decode_and_chain(c: &mut Criterion, group: &str, workload: &weir_loadtest::workload::Workload) {
    let payload = workload.payloads().remove(0);
    let body = payload.body.to_vec();
    let cfg = weir_config::parse(CONFIG, "bench", |_| None).unwrap();
    let registry: Arc<Registry> = Registry::new();
    let chain = Chain::<Logs>::new(vec![
        Box::new(Normalize::new(
            NormalizePolicy::from(&cfg.pipeline.normalize),
            &registry,
        )),
        Box::new(Sample::new(
            SamplePolicy::from(&cfg.pipeline.sample),
            &registry,
        )),
        Box::new(Redact::new(
            RedactPolicy::compile(&cfg.pipeline.redact, |_| None).unwrap(),
            &registry,
        )),
    ]);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(payload.items));
    g.bench_function("decode", |b| b.iter(|| Logs::decode(&body[..]).unwrap()));
    // The reference the fast decoder is measured against (and must decode exactly like), with the
    // same allocator and arena.
    g.bench_function("decode_prost", |b| {
        b.iter(|| {
            weir_pipeline::memory::arena::scope(|| {
                ExportLogsServiceRequest::decode(&body[..]).unwrap()
            })
        })
    });
    g.bench_function("decode_normalize_sample_redact_blackhole", |b| {
        b.iter(|| {
            let req = Logs::decode(&body[..]).unwrap();
            let mut batch = Batch::<Logs>::new(Logs::into_resources(req), body.len());
            chain.apply(&mut batch);
            Exporter::<Logs>::encode(&Blackhole, batch).unwrap()
        })
    });
    g.finish();
}

fn durable(c: &mut Criterion, workload: &weir_loadtest::workload::Workload) {
    let payload = workload.payloads().remove(0);
    let body = payload.body.to_vec();
    // What durable mode adds per request on the receiving side: the accepted batch encoded back to one
    // request and zstd-compressed into a log record. Compare with `decode` above.
    let req = ExportLogsServiceRequest::decode(&body[..]).unwrap();
    let batch = Batch::<Logs>::new(Logs::into_resources(req), body.len());
    let mut g = c.benchmark_group("durable_record_logs_500");
    g.throughput(Throughput::Elements(payload.items));
    g.bench_function("encode", |b| b.iter(|| payload::encode(&batch, false)));
    g.bench_function("encode_zstd", |b| b.iter(|| payload::encode(&batch, true)));
    let (stored, flags) = payload::encode(&batch, true);
    g.bench_function("replay_decode_zstd", |b| {
        b.iter(|| payload::decode::<Logs>(&stored, flags, 4 << 20).unwrap())
    });
    g.bench_function("append_100_records_no_fsync", |b| {
        let dir = tempfile::tempdir().unwrap();
        let opts = wal::Options {
            segment_bytes: 64 << 20,
            sync: false,
        };
        let (mut log, _) = wal::Wal::open(dir.path(), opts).unwrap();
        let mut n = 0u64;
        b.iter(|| {
            log.stage(0, 500, flags, b"", &stored);
            log.commit().unwrap();
            n += 1;
            if n.is_multiple_of(100) {
                // Keep the directory small: everything so far counts as delivered.
                log.release(wal::Checkpoint::at(log.next_seq())).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
