//! Queue throughput under MPMC contention: producers and consumers on separate threads moving batches
//! through one bounded queue, as receivers → stage workers do.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::thread;
use weir_pipeline::bounded;
use weir_pipeline::queue::{Limits, Weighted};

struct Item(usize);
impl Weighted for Item {
    fn items(&self) -> usize {
        1
    }
    fn bytes(&self) -> usize {
        self.0
    }
}

const PER_PRODUCER: usize = 50_000;

fn run(producers: usize, consumers: usize, capacity: usize) {
    let (tx, rx) = bounded(Limits {
        max_items: capacity,
        max_bytes: usize::MAX,
    });
    let ps: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    if tx.send_blocking(Item(i)).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let cs: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
                let mut n = 0usize;
                while let Some(item) = rx.recv_blocking() {
                    n += item.items();
                }
                n
            })
        })
        .collect();
    drop(rx);
    for p in ps {
        p.join().unwrap();
    }
    let total: usize = cs.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, producers * PER_PRODUCER);
}

fn mpmc(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_mpmc");
    g.sample_size(20);
    for (p, q) in [(1, 1), (2, 2), (4, 2)] {
        g.throughput(Throughput::Elements((p * PER_PRODUCER) as u64));
        g.bench_with_input(
            BenchmarkId::new("send_recv", format!("{p}p{q}c")),
            &(p, q),
            |b, &(p, q)| b.iter(|| run(p, q, 1024)),
        );
    }
    g.finish();
}

criterion_group!(benches, mpmc);
criterion_main!(benches);
