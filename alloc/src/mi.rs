//! mimalloc as Rust's global allocator, asking for alignment only when a type needs more than
//! mimalloc gives every block.
//!
//! The `mimalloc` crate's allocator calls `mi_malloc_aligned` for every allocation; under a decode
//! of OTLP (tens of thousands of small strings and vectors per request) that path's extra call
//! layers showed as 5–6 % of decoding in a profile. Every mimalloc block is aligned to at least a
//! machine word, so a layout that asks for no more than that takes plain `mi_malloc`.

use libmimalloc_sys as ffi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// Alignment every mimalloc block has, whatever its size.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, with the unaligned entry points where they suffice.
pub struct Mimalloc;

// SAFETY: each method forwards to the mimalloc function for the same job; the plain variants are
// used only for alignments every mimalloc block satisfies, and `mi_free` frees both kinds.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: plain allocation; word alignment holds for every mimalloc block.
            unsafe { ffi::mi_malloc(layout.size()) as *mut u8 }
        } else {
            // SAFETY: `align` is a power of two (a `Layout` invariant).
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: as for `alloc`.
            unsafe { ffi::mi_zalloc(layout.size()) as *mut u8 }
        } else {
            // SAFETY: as for `alloc`.
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8 }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from one of the mimalloc allocation functions above.
        unsafe { ffi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: `ptr` is a live mimalloc block; the new block keeps word alignment.
            unsafe { ffi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            // SAFETY: as above, keeping the layout's alignment.
            unsafe {
                ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

// The bundled mimalloc (v3, pinned by the lock file) numbers its options in `mimalloc.h`'s
// `mi_option_e`; the `-sys` crate exposes these only with a feature that also pulls in v2's
// numbering, so the two used here are declared directly.
const OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const OPTION_ARENA_PURGE_MULT: std::ffi::c_int = 24;

extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Makes mimalloc give freed pages back to the system at once (`true`) or after its usual delay.
///
/// The delay saves page faults while memory churns: purging at once cost 8–13 % of throughput
/// under full load. Near the memory limit resident memory matters more: behind a hung upstream or
/// a full tail buffer, pages freed and not yet purged kept RSS about 10 MiB higher with a 128 MiB
/// limit. The budget switches this on under memory pressure and off again below it.
pub fn purge_at_once(on: bool) {
    use std::sync::atomic::{AtomicI64, Ordering};
    // The delays in force before the first switch, restored when pressure passes (`c_long` is
    // `i64` on the 64-bit targets the crate builds for). Not yet read: `UNREAD`, which no option
    // takes (-1 is one: "never purge").
    const UNREAD: i64 = i64::MIN;
    static DEFAULTS: [AtomicI64; 2] = [AtomicI64::new(UNREAD), AtomicI64::new(UNREAD)];
    for (option, default) in [OPTION_PURGE_DELAY, OPTION_ARENA_PURGE_MULT]
        .into_iter()
        .zip(&DEFAULTS)
    {
        // SAFETY: reading and setting an option are plain calls into mimalloc's option table,
        // safe from any thread.
        unsafe {
            if default.load(Ordering::Relaxed) == UNREAD {
                default.store(mi_option_get(option), Ordering::Relaxed);
            }
            let value = if on {
                if option == OPTION_PURGE_DELAY {
                    0
                } else {
                    1
                }
            } else {
                default.load(Ordering::Relaxed)
            };
            mi_option_set(option, value);
        }
    }
}

/// mimalloc's purge delay in milliseconds, and its multiplier for arenas.
pub fn purge_delays() -> (std::ffi::c_long, std::ffi::c_long) {
    // SAFETY: as in `purge_at_once`.
    unsafe {
        (
            mi_option_get(OPTION_PURGE_DELAY),
            mi_option_get(OPTION_ARENA_PURGE_MULT),
        )
    }
}
