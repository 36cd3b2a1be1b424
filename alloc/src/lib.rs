//! How much memory Weir holds, counted where it is allocated.
//!
//! [`Counting`] wraps the global allocator (the binaries install it around [`Arena`] and mimalloc). Each thread adds
//! what it allocates and frees to a plain thread-local counter and folds it into one shared atomic only
//! after [`FLUSH`] bytes of change, so the data path pays a thread-local add per allocation and almost
//! never touches a shared cache line. The shared total is off by at most `FLUSH` per thread, which is
//! why the memory budget is enforced against it with that much slack.
//!
//! The same thread-local counter measures what a piece of synchronous code kept: [`measure`] around
//! decoding a request gives the decoded batch's real size in memory, which is what queues and the
//! budget charge, at the cost of two thread-local reads.

pub mod arena;
mod mi;
pub mod sending;

pub use arena::Arena;
pub use mi::{purge_at_once, purge_delays, Mimalloc};

/// The global allocator of Weir's binaries and benchmarks: counted, decode arena, mimalloc.
pub type Allocator = Counting<Arena<Mimalloc>>;
/// Install with `#[global_allocator] static A: Allocator = ALLOCATOR;`.
pub const ALLOCATOR: Allocator = Counting(Arena(Mimalloc));
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// Bytes of change a thread accumulates before it updates the shared total.
pub const FLUSH: isize = 32 << 10;

static HEAP: AtomicIsize = AtomicIsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

thread_local! {
    /// Net bytes this thread allocated since it started (frees of others' memory count against it).
    static NET: Cell<isize> = const { Cell::new(0) };
    /// The part of `NET` already added to `HEAP`.
    static FLUSHED: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator that counts live bytes; see the module docs.
pub struct Counting<A>(pub A);

#[inline]
fn account(delta: isize) {
    // `try_with`: allocations during thread teardown must still work, they just go uncounted
    // (the counters have no destructor, so in practice this never fails).
    let _ = NET.try_with(|net| {
        let now = net.get() + delta;
        net.set(now);
        let _ = FLUSHED.try_with(|flushed| {
            let pending = now - flushed.get();
            if !(-FLUSH..=FLUSH).contains(&pending) {
                HEAP.fetch_add(pending, Ordering::Relaxed);
                flushed.set(now);
            }
        });
    });
}

#[inline]
fn mark_installed() {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator; counting touches only
// thread-locals without destructors and atomics, neither of which allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are passed on unchanged.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            mark_installed();
            account(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            mark_installed();
            account(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from the wrapped one, with this `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is passed on unchanged.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Whether [`Counting`] is the global allocator of this process (it is in `weir`, not in unit tests).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Live heap bytes of the whole process, within `FLUSH` per thread; 0 without [`Counting`].
pub fn heap_bytes() -> usize {
    HEAP.load(Ordering::Relaxed).max(0) as usize
}

/// Sets the process's memory limit, once at start: the receivers enforce it, and buffers sized
/// independently of it (the tail sampler's) are held to a share of it.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The memory limit set at start; `usize::MAX` when none was (tests, benchmarks).
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Runs `f` and says how many bytes it left allocated (what it returned, in practice), or `None`
/// when nothing counts allocations. `f` must not await or move threads: it is measured on this one.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
    let before = NET.with(Cell::get);
    let value = f();
    let kept = NET.with(Cell::get) - before;
    (value, installed().then_some(kept.max(0) as usize))
}

/// What [`measure`] found, or `fallback` (the encoded size) when it could not measure.
pub fn measured_or<T>(fallback: usize, f: impl FnOnce() -> T) -> (T, usize) {
    let (value, kept) = measure(f);
    (value, kept.filter(|&k| k > 0).unwrap_or(fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Unit tests run under the system allocator, so only the thread-local arithmetic is exercised
    // directly; tests/counting.rs installs `Counting` for real.
    #[test]
    fn account_folds_into_the_shared_total_only_past_the_flush_threshold() {
        std::thread::spawn(|| {
            let start = HEAP.load(Ordering::Relaxed);
            account(FLUSH / 2);
            assert_eq!(HEAP.load(Ordering::Relaxed), start);
            account(FLUSH);
            assert_eq!(HEAP.load(Ordering::Relaxed), start + FLUSH + FLUSH / 2);
            account(-(FLUSH + FLUSH / 2));
            account(-FLUSH * 2);
            assert_eq!(HEAP.load(Ordering::Relaxed), start - FLUSH * 2);
            account(FLUSH * 2);
        })
        .join()
        .unwrap();
    }
}
