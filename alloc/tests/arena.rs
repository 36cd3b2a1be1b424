//! The arena as a whole process's allocator: blocks made in a scope come from it and keep their
//! contents, chunks go back to be reused once every block in them is freed on whatever thread, and
//! never before.

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use weir_alloc::arena::{self, CHUNK, KEEP, MAX_BLOCK};
use weir_alloc::{Allocator, ALLOCATOR};

#[global_allocator]
static A: Allocator = ALLOCATOR;

/// The chunk counts are process-wide: tests run one at a time, each on a thread of its own that has
/// given its chunk back (it exited) before the next test starts.
static SERIAL: Mutex<()> = Mutex::new(());

fn isolated(test: impl FnOnce() + Send + 'static) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(panic) = thread::spawn(test).join() {
        std::panic::resume_unwind(panic);
    }
}

/// Small strings, as a decoded request holds them, each tagged with where it came from.
fn decoded(tag: u64, n: usize) -> Vec<String> {
    arena::scope(|| {
        (0..n)
            .map(|i| format!("{tag:016x}-{i:08}-{}", "v".repeat(i % 90)))
            .collect()
    })
}

fn check(tag: u64, batch: &[String]) {
    for (i, s) in batch.iter().enumerate() {
        assert_eq!(
            *s,
            format!("{tag:016x}-{i:08}-{}", "v".repeat(i % 90)),
            "block overwritten"
        );
    }
}

fn in_use() -> usize {
    arena::chunks().in_use
}

/// Every chunk made so far, whatever its state.
fn made() -> usize {
    let c = arena::chunks();
    c.in_use + c.warm + c.cold
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[test]
fn small_blocks_in_a_scope_come_from_the_arena_and_nothing_else_does() {
    isolated(|| {
        let outside = Box::new([1u8; 100]);
        assert!(!arena::contains(outside.as_ptr()));
        arena::scope(|| {
            let small = Box::new([2u8; 100]);
            let aligned = Box::new(Aligned64([3; 64]));
            let large = vec![4u8; MAX_BLOCK + 1];
            let page_aligned = Box::new(Aligned4096([5; 16]));
            assert!(arena::contains(small.as_ptr()));
            assert!(arena::contains(aligned.0.as_ptr()));
            assert_eq!(aligned.0.as_ptr() as usize % 64, 0);
            assert!(!arena::contains(large.as_ptr()));
            assert!(!arena::contains(page_aligned.0.as_ptr()));
            assert_eq!(page_aligned.0.as_ptr() as usize % 4096, 0);
            let nested = arena::scope(|| Box::new(7u64));
            assert!(arena::contains(&*nested as *const u64 as *const u8));
        });
        let after = Box::new([6u8; 100]);
        assert!(!arena::contains(after.as_ptr()));
    });
}

#[repr(align(64))]
struct Aligned64([u8; 64]);
#[repr(align(4096))]
struct Aligned4096([u8; 16]);

#[test]
fn the_last_block_of_a_fresh_thread_grows_where_it_is() {
    isolated(|| {
        arena::scope(|| {
            let mut a = Vec::<u8>::with_capacity(8);
            let at = a.as_ptr();
            a.extend(std::iter::repeat_n(7, MAX_BLOCK));
            assert_eq!(a.as_ptr(), at);
            a.push(8);
            assert!(!arena::contains(a.as_ptr()), "past MAX_BLOCK it moves out");
            assert!(a[..MAX_BLOCK].iter().all(|&x| x == 7) && a[MAX_BLOCK] == 8);
        });
    });
}

#[test]
fn contents_survive_growing_in_place_moving_and_shrinking() {
    isolated(|| {
        arena::scope(|| {
            let mut a = String::new();
            let mut b = String::new();
            for i in 0..5000u32 {
                // `a` alone grows at the end of the chunk (in place); interleaved, both must move.
                a.push(char::from(b'a' + (i % 26) as u8));
                if i % 3 == 0 {
                    b.push(char::from(b'A' + (i % 26) as u8));
                }
            }
            assert!((0..5000).all(|i| a.as_bytes()[i] == b'a' + (i % 26) as u8));
            assert!(b
                .bytes()
                .enumerate()
                .all(|(j, c)| c == b'A' + ((j * 3) % 26) as u8));
            a.truncate(10);
            a.shrink_to_fit();
            assert_eq!(a, "abcdefghij");
            let mut c = vec![9u8; 10];
            c.resize(MAX_BLOCK * 2, 8);
            assert!(!arena::contains(c.as_ptr()));
            assert!(c[..10].iter().all(|&x| x == 9) && c[10..].iter().all(|&x| x == 8));
        });
    });
}

#[test]
fn zeroed_blocks_are_zero_in_a_reused_chunk() {
    isolated(|| {
        // Empty the free list, so the dirty chunks below are kept with their pages and reused.
        let hold: Vec<Box<[u8]>> = arena::scope(|| {
            let mut hold = Vec::new();
            while arena::chunks().warm > 0 {
                hold.push(vec![0u8; 8000].into());
            }
            hold
        });
        // Dirty several chunks, free them all, return them from a thread that exits.
        thread::spawn(|| {
            let dirty: Vec<Box<[u8]>> = arena::scope(|| {
                (0..(4 * CHUNK / 1000))
                    .map(|_| vec![0xffu8; 1000].into())
                    .collect()
            });
            drop(dirty);
            arena::flush();
        })
        .join()
        .unwrap();
        thread::spawn(|| {
            arena::scope(|| {
                for _ in 0..(4 * CHUNK / 1000) {
                    let z = vec![0u8; 1000];
                    assert!(arena::contains(z.as_ptr()));
                    assert!(z.iter().all(|&x| x == 0));
                    std::mem::forget(z);
                }
            });
        })
        .join()
        .unwrap();
        drop(hold);
    });
}

#[test]
fn chunks_freed_on_another_thread_are_reused_not_leaked() {
    isolated(|| {
        let start = in_use();
        let made = made();
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<String>)>(4);
        let consumer = thread::spawn(move || {
            for (tag, batch) in rx {
                check(tag, &batch);
            }
            arena::flush();
        });
        let producer = thread::spawn(move || {
            let mut peak = made;
            for round in 0..400u64 {
                tx.send((round, decoded(round, 2000))).unwrap();
                peak = peak.max(self::made());
            }
            peak
        });
        let peak = producer.join().unwrap();
        consumer.join().unwrap();
        // 400 batches of ~140 KiB went through; the few in flight at a time fit in a dozen chunks.
        assert!(peak < made + 16, "chunks kept growing: {made} → {peak}");
        assert_eq!(
            in_use(),
            start,
            "chunks still in use after every block was freed"
        );
    });
}

#[test]
fn a_block_kept_alive_keeps_its_chunk_and_is_never_overwritten() {
    isolated(|| {
        let start = in_use();
        let (tx, rx) = mpsc::sync_channel::<(u64, Vec<String>)>(8);
        let (kept_tx, kept_rx) = mpsc::channel::<(u64, Vec<String>)>();
        let consumer = thread::spawn(move || {
            for (tag, batch) in rx {
                check(tag, &batch);
                // Every seventh batch outlives the rest, as a trace held by a sampler would.
                if tag % 7 == 0 {
                    kept_tx.send((tag, batch)).unwrap();
                }
            }
            arena::flush();
        });
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for round in 0..150u64 {
                        let tag = p << 32 | round;
                        tx.send((tag, decoded(tag, 1500))).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for p in producers {
            p.join().unwrap();
        }
        consumer.join().unwrap();
        let kept: Vec<_> = kept_rx.into_iter().collect();
        assert!(kept.len() > 20);
        for (tag, batch) in &kept {
            check(*tag, batch);
        }
        assert!(in_use() > start, "live blocks keep their chunks");
        drop(kept);
        arena::flush();
        assert_eq!(in_use(), start);
    });
}

#[test]
fn a_decoding_thread_that_exits_gives_its_chunk_back() {
    isolated(|| {
        let start = in_use();
        let batch = thread::spawn(|| decoded(1, 10)).join().unwrap();
        // The thread's part-used chunk is held only by these blocks now.
        assert_eq!(in_use(), start + 1);
        check(1, &batch);
        drop(batch);
        arena::flush();
        assert_eq!(in_use(), start);
    });
}

#[test]
fn free_chunks_unused_for_a_trim_interval_give_their_memory_back() {
    isolated(|| {
        let batch_bytes = 96 << 20;
        let before = resident_bytes();
        let batch = thread::spawn(move || {
            arena::scope(|| {
                (0..batch_bytes / 4096)
                    .map(|_| vec![1u8; 4000])
                    .collect::<Vec<_>>()
            })
        })
        .join()
        .unwrap();
        let full = resident_bytes();
        assert!(full > before + batch_bytes / 2, "{before} → {full}");
        drop(batch);
        arena::flush();
        // Recently freed chunks stay warm for the next requests until a whole interval passes unused.
        arena::trim();
        arena::trim();
        let after = resident_bytes();
        let chunks = arena::chunks();
        assert!(after < full - batch_bytes / 2, "resident {full} → {after}");
        assert!(chunks.warm <= KEEP && chunks.cold > 0, "{chunks:?}");
    });
}
