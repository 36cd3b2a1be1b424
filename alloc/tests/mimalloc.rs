//! `Mimalloc` as the global allocator of a whole test binary: every alignment Rust may ask for is
//! honoured, on allocation and on reallocation, and contents survive a move.

use std::alloc::{GlobalAlloc, Layout};
use weir_alloc::{Counting, Mimalloc};

#[global_allocator]
static A: Counting<Mimalloc> = Counting(Mimalloc);

#[test]
fn every_alignment_is_honoured_through_alloc_zeroed_and_realloc() {
    for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
        for size in [1, 7, 8, 12, 24, 100, 5000, 1 << 20] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes, and each block is freed with the layout it was made with.
            unsafe {
                let p = A.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                p.write_bytes(0xab, size);
                let q = A.realloc(p, layout, size * 3);
                assert_eq!(q as usize % align, 0, "realloc {size} aligned {align}");
                assert!((0..size).all(|i| *q.add(i) == 0xab));
                A.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                let z = A.alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0, "zeroed {size} aligned {align}");
                assert!((0..size).all(|i| *z.add(i) == 0));
                A.dealloc(z, layout);
            }
        }
    }
}

#[test]
fn u128s_and_strings_live_under_it() {
    let wide: Vec<u128> = (0..1000).collect();
    assert_eq!(wide.as_ptr() as usize % std::mem::align_of::<u128>(), 0);
    let text: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(wide.iter().sum::<u128>(), 499_500);
    assert_eq!(text.len(), 1000);
}

/// The purge options are declared by number: a child process started with mimalloc's environment
/// variables for them must read back those values, which holds only if the numbers are right.
#[test]
fn purge_options_are_the_ones_the_environment_sets_and_switch_back() {
    if let Ok(set) = std::env::var("WEIR_MI_CHILD") {
        let (delay, mult) = set.split_once(',').unwrap();
        let set = (delay.parse().unwrap(), mult.parse().unwrap());
        assert_eq!(weir_alloc::purge_delays(), set);
        weir_alloc::purge_at_once(true);
        assert_eq!(weir_alloc::purge_delays(), (0, 1));
        weir_alloc::purge_at_once(false);
        assert_eq!(weir_alloc::purge_delays(), set, "restored");
        weir_alloc::purge_at_once(true);
        weir_alloc::purge_at_once(false);
        assert_eq!(weir_alloc::purge_delays(), set, "restored again");
        return;
    }
    // -1 is "never purge", a setting of its own.
    for (delay, mult) in [("37", "3"), ("-1", "3")] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "purge_options_are_the_ones_the_environment_sets_and_switch_back",
                "--nocapture",
            ])
            .env("WEIR_MI_CHILD", format!("{delay},{mult}"))
            .env("MIMALLOC_PURGE_DELAY", delay)
            .env("MIMALLOC_ARENA_PURGE_MULT", mult)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{delay},{mult}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
