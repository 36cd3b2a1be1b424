//! The counting allocator installed for real: the shared total follows memory allocated on one
//! thread and freed on another, and `measure` sees what a piece of code kept.

use weir_alloc::{heap_bytes, installed, measure, Counting, FLUSH};

#[global_allocator]
static A: Counting<std::alloc::System> = Counting(std::alloc::System);

const MIB: usize = 1 << 20;

fn near(actual: usize, expected: usize, slack: usize) -> bool {
    actual.abs_diff(expected) <= slack
}

#[test]
fn the_total_follows_memory_across_threads_and_measure_sees_what_was_kept() {
    let _warm = Box::new(1u8);
    assert!(installed());
    // Test threads run in parallel; each holds at most FLUSH uncounted, and this is the only test.
    let slack = 8 * FLUSH as usize + (256 << 10);
    let before = heap_bytes();
    let (kept, measured) = measure(|| {
        (0..64)
            .map(|i| vec![i as u8; 256 << 10])
            .collect::<Vec<Vec<u8>>>()
    });
    let measured = measured.expect("installed");
    assert!(near(measured, 16 * MIB, 4096), "measured {measured}");
    assert!(
        near(heap_bytes(), before + 16 * MIB, slack),
        "heap {} before {before}",
        heap_bytes()
    );
    // Freed on another thread: the total comes back down even though this thread's share stays up.
    std::thread::spawn(move || drop(kept)).join().unwrap();
    assert!(
        near(heap_bytes(), before, slack),
        "heap {} before {before}",
        heap_bytes()
    );
    let ((), nothing) = measure(|| drop(vec![0u8; MIB]));
    assert_eq!(nothing, Some(0), "freed before the end: nothing kept");
}
