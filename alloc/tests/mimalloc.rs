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
