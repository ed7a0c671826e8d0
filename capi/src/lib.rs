//! `libtemporal_slab.so`: the temporal-slab allocator behind the C malloc ABI, for C programs
//! (`-ltemporal_slab`) and for any dynamically linked program (`LD_PRELOAD`), plus a small C API
//! for epochs and domains (`include/temporal_slab.h`).
//!
//! What this crate owns, and its invariants:
//! - `malloc_abi`: `malloc` and friends, the C semantics (alignment, zero sizes, overflow,
//!   `errno`) on top of the allocator's `GlobalAlloc` and its layout-free
//!   [`temporal_slab::free`] / [`temporal_slab::realloc`]. Every block of 16 bytes or more is
//!   16-aligned (`alignof(max_align_t)`); smaller ones are 8-aligned.
//! - `info`: `malloc_usable_size`, `malloc_trim`, `malloc_stats`, `mallinfo2`, answered from the
//!   allocator's counters without allocating.
//! - `phases`: the `tslab_*` epoch and domain functions of the C header.
//!
//! Nothing exported here unwinds: the exported functions are `extern "C"`, so a panic would
//! abort the process rather than cross into C, and the code is written not to panic at all
//! (no indexing, no unchecked arithmetic, fallible allocation in the domain stack).
//!
//! Re-entry: the allocator never calls back into `malloc` on its own paths except through
//! `pthread_create` / `pthread_atfork` / `__cxa_thread_atexit_impl` when it starts its
//! reclaimer thread or registers a thread's exit hook; those nested calls are served (by the
//! thread's heap or the shared fallback heap) without taking any lock the outer call holds.
//! The library never resolves the C library's allocator with `dlsym`, so a `dlsym` that
//! allocates simply calls our `calloc`.
//!
//! The Rust global allocator of this library is temporal-slab itself: Rust code in here (the
//! domain stack) allocates straight from the allocator, never through the exported `malloc`, so
//! nothing recurses through the C symbols.

mod info;
mod malloc_abi;
mod phases;

/// The allocator, shared by the C entry points and the Rust code of this library.
#[global_allocator]
static GLOBAL: temporal_slab::TemporalSlab = temporal_slab::TemporalSlab::new();
