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
