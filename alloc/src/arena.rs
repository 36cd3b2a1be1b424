//! Bump allocation for decoded requests, freed a chunk at a time.
//!
//! Decoding one OTLP request makes tens of thousands of small allocations (a `String` per key and
//! value, a `Vec` per attribute list) that all die together, on another thread, when the batch is
//! exported. Under mimalloc that pattern cost a fifth of the collector's CPU: every block freed by a
//! foreign thread goes through the owning page's shared free list, and the decoding thread collects
//! it back before it can allocate again.
//!
//! Inside [`scope`], [`Arena`] hands out small blocks by bumping a pointer through a 256 KiB chunk
//! owned by the thread. A chunk counts its blocks; a free only adds to a per-thread tally of frees
//! in one chunk, which reaches the chunk's shared counter when the thread frees into another chunk,
//! calls [`flush`], or exits. The chunk returns to a shared free list when its owner has moved on and
//! every block has been freed. Outside a scope, and for large or over-aligned blocks, the wrapped
//! allocator serves as before.
//!
//! Chunks come from one reserved range of address space, so telling an arena block from another is
//! a subtraction and a compare. What the arena costs in memory: one partly used chunk per decoding
//! thread, blocks kept alive by the longest-lived block in their chunk (decoded telemetry lives as
//! long as its batch, so in practice as long as its neighbours), a tally pending per thread, and the
//! free chunks that were needed within the last [`TRIM_EVERY`] (at least [`KEEP`]); a background
//! thread gives back the pages of the others.

#[cfg(not(target_pointer_width = "64"))]
compile_error!("the arena's chunk counters and address range assume a 64-bit target");

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

/// Size and alignment of a chunk.
pub const CHUNK: usize = 256 << 10;
/// Reserved address space: chunks beyond it are not made, and the wrapped allocator serves instead.
const REGION: usize = 1 << 30;
const CHUNKS: usize = REGION / CHUNK;
/// The chunk header (shared counter, free-list link) takes the first cache line.
const HEADER: usize = 64;
/// Larger blocks (a request's vector of records) are few, and go to the wrapped allocator.
pub const MAX_BLOCK: usize = 16 << 10;
const MAX_ALIGN: usize = 64;
/// Free chunks kept with their pages however long they sit unused (1 MiB: an idle sidecar stays
/// small).
pub const KEEP: usize = 4;
/// How often the background thread gives back the pages of chunks that sat unused.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Added to a chunk's counter while a thread allocates from it, so frees cannot bring it to zero
/// before the owner has said how many blocks it made.
const OWNED: usize = 1 << 48;

/// Start of the reserved range; until it is reserved, a value no user pointer is within `REGION` of.
static BASE: AtomicUsize = AtomicUsize::new(usize::MAX - REGION + 1);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static RESERVE: Once = Once::new();
/// Chunks handed out from the reserved range so far; lower indices are all made.
static MADE: AtomicUsize = AtomicUsize::new(0);
/// Free chunks with their pages ("warm") and without ("cold"), as stacks: index + 1 in the low 32
/// bits of the head (0: empty), an ABA tag above.
static WARM: AtomicU64 = AtomicU64::new(0);
static COLD: AtomicU64 = AtomicU64::new(0);
static WARM_COUNT: AtomicUsize = AtomicUsize::new(0);
static COLD_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The fewest warm chunks there were since the last [`trim`]: that many sat unused all along.
static WARM_FLOOR: AtomicUsize = AtomicUsize::new(0);
/// Chunks owned by a thread or holding live blocks.
static IN_USE: AtomicUsize = AtomicUsize::new(0);
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);
/// Set when the kernel refused to commit a chunk: no more are made until the next [`trim`] (free
/// ones are still reused), so a refusal costs one syscall a second, not one per block.
static REFUSED: AtomicBool = AtomicBool::new(false);

struct Local {
    /// Nesting depth of [`scope`].
    depth: Cell<u32>,
    /// The chunk this thread bumps through (0: none) and the offset of its next free byte.
    chunk: Cell<usize>,
    pos: Cell<usize>,
    /// Blocks made from `chunk`.
    made: Cell<usize>,
    /// A chunk this thread freed blocks of, and how many, not yet subtracted from its counter.
    freed_chunk: Cell<usize>,
    freed: Cell<usize>,
    /// Whether the thread-exit hook is armed for this thread.
    hooked: Cell<bool>,
    /// Set by the exit hook: from then on frees are subtracted at once and nothing is bumped, since
    /// glibc stops calling the hook after a few rounds.
    exiting: Cell<bool>,
}

thread_local! {
    // No destructor: the allocator may run while thread-locals are torn down.
    static LOCAL: Local = const {
        Local {
            depth: Cell::new(0),
            chunk: Cell::new(0),
            pos: Cell::new(0),
            made: Cell::new(0),
            freed_chunk: Cell::new(0),
            freed: Cell::new(0),
            hooked: Cell::new(false),
            exiting: Cell::new(false),
        }
    };
}

/// The arena in front of allocator `A`; see the module docs.
pub struct Arena<A>(pub A);

/// Runs `f` with this thread's small allocations served from the arena. Everything `f` allocates
/// should die with the batch it builds: a block kept for the life of the process keeps its chunk.
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    if !INSTALLED.load(Ordering::Relaxed) {
        return f();
    }
    RESERVE.call_once(reserve);
    hook_exit();
    let _inside = Inside::enter();
    f()
}

/// Marks the thread as inside a [`scope`] until dropped, also on unwinding.
struct Inside;

impl Inside {
    fn enter() -> Self {
        let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() + 1));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() - 1));
    }
}

/// Subtracts this thread's pending frees from their chunk, so the chunk can be reused. Worth calling
/// after dropping a batch on a thread that may then idle.
pub fn flush() {
    let _ = LOCAL.try_with(flush_freed);
}

/// Whether `ptr` is an arena block.
pub fn contains(ptr: *const u8) -> bool {
    (ptr as usize).wrapping_sub(BASE.load(Ordering::Relaxed)) < REGION
}

/// How many chunks there are, by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunks {
    /// Owned by a thread, or holding blocks not yet freed.
    pub in_use: usize,
    /// Free, with their pages.
    pub warm: usize,
    /// Free, their pages given back.
    pub cold: usize,
}

pub fn chunks() -> Chunks {
    Chunks {
        in_use: IN_USE.load(Ordering::Relaxed),
        warm: WARM_COUNT.load(Ordering::Relaxed),
        cold: COLD_COUNT.load(Ordering::Relaxed),
    }
}

/// Gives back the pages of free chunks beyond [`KEEP`] that stayed free since the last call. A
/// background thread calls it every [`TRIM_EVERY`]; returning pages on every release instead cost
/// more in page faults and TLB shootdowns than the allocator saved, with requests in flight
/// cycling a few hundred chunks.
pub fn trim() {
    let Some(base) = reserved() else { return };
    REFUSED.store(false, Ordering::Relaxed);
    let idle = WARM_FLOOR.swap(WARM_COUNT.load(Ordering::Relaxed), Ordering::Relaxed);
    for _ in KEEP..idle {
        let Some(chunk) = pop(&WARM, &WARM_COUNT, base) else {
            break;
        };
        // SAFETY: the chunk is free and popped, so no one else uses it until it is pushed again;
        // dropping its pages only zeroes it.
        unsafe { libc::madvise(chunk as *mut libc::c_void, CHUNK, libc::MADV_DONTNEED) };
        push(&COLD, &COLD_COUNT, base, chunk);
    }
}

fn reserve() {
    // SAFETY: an anonymous private mapping with no access rights: it only claims address space.
    // Chunks are made accessible one by one (`make`), so no memory is committed up front.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            REGION + CHUNK,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a plain `extern "C" fn`.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } != 0 {
        // SAFETY: the mapping made above, unused.
        unsafe { libc::munmap(p, REGION + CHUNK) };
        return;
    }
    EXIT_KEY.store(key as usize, Ordering::Relaxed);
    let base = (p as usize + CHUNK - 1) & !(CHUNK - 1);
    BASE.store(base, Ordering::Release);
    let _ = std::thread::Builder::new()
        .name("weir-arena-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_EVERY);
            trim();
        });
}

fn reserved() -> Option<usize> {
    let base = BASE.load(Ordering::Acquire);
    (base != usize::MAX - REGION + 1).then_some(base)
}

/// Arms the thread-exit hook that returns this thread's chunk and pending frees.
fn hook_exit() {
    let _ = LOCAL.try_with(|l| {
        if !l.hooked.get() && !l.exiting.get() && reserved().is_some() {
            // SAFETY: the key was created in `reserve`; any non-null value makes glibc call the
            // destructor at thread exit. (glibc may allocate with its own malloc, never this one.)
            let rc = unsafe {
                libc::pthread_setspecific(
                    EXIT_KEY.load(Ordering::Relaxed) as libc::pthread_key_t,
                    std::ptr::NonNull::<libc::c_void>::dangling().as_ptr(),
                )
            };
            l.hooked.set(rc == 0);
        }
    });
}

extern "C" fn on_thread_exit(_: *mut libc::c_void) {
    let _ = LOCAL.try_with(|l| {
        l.exiting.set(true);
        flush_freed(l);
        retire(l);
    });
}

fn counter(chunk: usize) -> &'static AtomicUsize {
    // SAFETY: `chunk` is a made chunk of the reserved range, readable and writable, and its first
    // word is only ever accessed as this atomic.
    unsafe { &*(chunk as *const AtomicUsize) }
}

fn link(chunk: usize) -> &'static AtomicU32 {
    // SAFETY: as for `counter`; the second word of the header is only ever this atomic.
    unsafe { &*((chunk + 8) as *const AtomicU32) }
}

/// A chunk to allocate from: a free one, or a new one from the reserved range.
fn acquire() -> Option<usize> {
    let base = reserved()?;
    let chunk = match pop(&WARM, &WARM_COUNT, base) {
        Some(chunk) => {
            WARM_FLOOR.fetch_min(WARM_COUNT.load(Ordering::Relaxed), Ordering::Relaxed);
            chunk
        }
        None => pop(&COLD, &COLD_COUNT, base).or_else(|| make(base))?,
    };
    IN_USE.fetch_add(1, Ordering::Relaxed);
    counter(chunk).store(OWNED, Ordering::Relaxed);
    Some(chunk)
}

fn make(base: usize) -> Option<usize> {
    if REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    if MADE.load(Ordering::Relaxed) >= CHUNKS {
        return None;
    }
    let index = MADE.fetch_add(1, Ordering::Relaxed);
    if index >= CHUNKS {
        MADE.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let chunk = base + index * CHUNK;
    // SAFETY: the chunk lies inside the reserved mapping, and no one else has it (`MADE` handed
    // out its index once).
    let rc = unsafe {
        libc::mprotect(
            chunk as *mut libc::c_void,
            CHUNK,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if rc != 0 {
        // Strict overcommit said no: the wrapped allocator serves, without a syscall per block.
        REFUSED.store(true, Ordering::Relaxed);
        return None;
    }
    Some(chunk)
}

fn pop(stack: &AtomicU64, count: &AtomicUsize, base: usize) -> Option<usize> {
    let mut head = stack.load(Ordering::Acquire);
    loop {
        let index = (head as u32).checked_sub(1)? as usize;
        let chunk = base + index * CHUNK;
        // A stale read (another thread popped this chunk meanwhile) is caught by the tag below.
        let next = link(chunk).load(Ordering::Relaxed);
        let tagged = ((head >> 32) + 1) << 32 | u64::from(next);
        match stack.compare_exchange_weak(head, tagged, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                count.fetch_sub(1, Ordering::Relaxed);
                return Some(chunk);
            }
            Err(seen) => head = seen,
        }
    }
}

fn push(stack: &AtomicU64, count: &AtomicUsize, base: usize, chunk: usize) {
    let index = ((chunk - base) / CHUNK) as u64 + 1;
    count.fetch_add(1, Ordering::Relaxed);
    let mut head = stack.load(Ordering::Relaxed);
    loop {
        link(chunk).store(head as u32, Ordering::Relaxed);
        let tagged = ((head >> 32) + 1) << 32 | index;
        match stack.compare_exchange_weak(head, tagged, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => head = seen,
        }
    }
}

/// Returns a chunk every block of which is free, and that no thread owns.
fn release(chunk: usize) {
    IN_USE.fetch_sub(1, Ordering::Relaxed);
    if let Some(base) = reserved() {
        push(&WARM, &WARM_COUNT, base, chunk);
    }
}

/// Subtracts `n` frees from `chunk`'s counter, returning the chunk when they were its last blocks.
fn subtract(chunk: usize, n: usize) {
    if counter(chunk).fetch_sub(n, Ordering::AcqRel) == n {
        release(chunk);
    }
}

fn flush_freed(l: &Local) {
    let n = l.freed.replace(0);
    if n > 0 {
        subtract(l.freed_chunk.replace(0), n);
    }
}

/// Gives up this thread's chunk: from now on only frees count on it.
fn retire(l: &Local) {
    let chunk = l.chunk.replace(0);
    if chunk != 0 {
        subtract(chunk, OWNED - l.made.replace(0));
    }
}

#[inline]
fn bump(l: &Local, layout: Layout) -> Option<*mut u8> {
    fit(l, layout).or_else(|| refill(l, layout))
}

/// The block from this thread's chunk, if it has room.
#[inline]
fn fit(l: &Local, layout: Layout) -> Option<*mut u8> {
    let chunk = l.chunk.get();
    if chunk == 0 {
        return None;
    }
    let start = (chunk + l.pos.get() + layout.align() - 1) & !(layout.align() - 1);
    let end = start + layout.size();
    if end > chunk + CHUNK {
        return None;
    }
    l.pos.set(end - chunk);
    l.made.set(l.made.get() + 1);
    Some(start as *mut u8)
}

/// Retires the full chunk and takes another; a block of at most `MAX_BLOCK` fits a fresh one.
#[cold]
fn refill(l: &Local, layout: Layout) -> Option<*mut u8> {
    retire(l);
    l.chunk.set(acquire()?);
    l.pos.set(HEADER);
    l.made.set(0);
    fit(l, layout)
}

#[inline]
fn arena_alloc(layout: Layout) -> Option<*mut u8> {
    if layout.size() > MAX_BLOCK || layout.align() > MAX_ALIGN {
        return None;
    }
    LOCAL
        .try_with(|l| {
            if l.depth.get() == 0 || l.exiting.get() {
                None
            } else {
                bump(l, layout)
            }
        })
        .ok()
        .flatten()
}

#[inline]
fn arena_free(ptr: *mut u8) {
    let chunk = ptr as usize & !(CHUNK - 1);
    let counted = LOCAL.try_with(|l| {
        if l.exiting.get() {
            subtract(chunk, 1);
        } else if l.freed_chunk.get() == chunk {
            l.freed.set(l.freed.get() + 1);
        } else {
            flush_freed(l);
            l.freed_chunk.set(chunk);
            l.freed.set(1);
            if !l.hooked.get() {
                hook_exit();
            }
        }
    });
    if counted.is_err() {
        // Thread-locals are gone (cannot happen for these, which have no destructor): count now.
        subtract(chunk, 1);
    }
}

/// Grows the thread's last block in place when it is at the end of the bumped part of its chunk.
fn grow_in_place(ptr: *mut u8, old: usize, new: usize) -> bool {
    LOCAL
        .try_with(|l| {
            let chunk = l.chunk.get();
            let end = ptr as usize + old;
            if chunk != 0
                && new <= MAX_BLOCK
                && end == chunk + l.pos.get()
                && ptr as usize + new <= chunk + CHUNK
            {
                l.pos.set(ptr as usize + new - chunk);
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
}

// SAFETY: arena blocks are disjoint ranges of chunks no other block overlaps while live (a chunk is
// reused only after every block in it was freed), aligned as asked; all other blocks, and every
// block outside a scope, come from and return to the wrapped allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Arena<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(p) = arena_alloc(layout) {
            return p;
        }
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        // SAFETY: the caller's guarantees for `layout` are passed on unchanged.
        unsafe { self.0.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(p) = arena_alloc(layout) {
            // SAFETY: `p` is a fresh block of `layout.size()` bytes; reused chunks are not zeroed.
            unsafe { p.write_bytes(0, layout.size()) };
            return p;
        }
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc`.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if contains(ptr) {
            arena_free(ptr);
        } else {
            // SAFETY: not an arena block, so it came from the wrapped allocator with this layout.
            unsafe { self.0.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !contains(ptr) {
            // SAFETY: a block of the wrapped allocator, passed on unchanged.
            return unsafe { self.0.realloc(ptr, layout, new_size) };
        }
        if new_size <= layout.size() || grow_in_place(ptr, layout.size(), new_size) {
            return ptr;
        }
        // SAFETY: `new_size` is non-zero and, with the old alignment, a valid layout (the caller's
        // guarantee for `realloc`).
        let grown = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as above.
        let p = unsafe { self.alloc(grown) };
        if !p.is_null() {
            // SAFETY: both blocks are live and distinct; the old one has `layout.size()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(ptr, p, layout.size()) };
            arena_free(ptr);
        }
        p
    }
}
