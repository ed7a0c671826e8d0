//! The design of temporal-slab: layout, invariants and memory orderings (documentation only).
//!
//! # Layout
//!
//! - **Segments** (`segment.rs`): 4 MiB mappings aligned to 4 MiB. Slot 0 is the header with the
//!   metadata of the 63 slabs in slots 1..63; each slab is 64 KiB of objects of one size class.
//! - **Large objects** (`large.rs`): one mapping each, with a header at a 4 MiB-aligned address
//!   at most 4 MiB below the object.
//! - Every returned pointer `p` has its header at `(p - 1) & !(4 MiB - 1)`: free needs no
//!   per-object header and no size. The header's magic word is checked on every free.
//! - **Size classes** (`size_class.rs`): 44 classes from 8 B to 32 KiB, at most 25% apart from
//!   32 B up. Objects sit at multiples of their size from a 64 KiB-aligned slab start, so a class
//!   whose size is a multiple of `align` serves that alignment.
//! - **Thread heaps** (`heap.rs`): per thread, per class one bin (allocation slab), partial lists
//!   per (epoch slot, class), a draining list for slabs of finished epochs.
//! - **Global slab pool** (`segment.rs`): empty slabs, either *warm* (unpurged, at most 256 =
//!   16 MiB, each purged after 0.5 s unused) or purged. An emptied slab of an active epoch goes
//!   warm; of a closing epoch, or of an exiting thread, is purged at once, except the slabs of a
//!   *small phase* (an epoch that took at most 32 slabs from the pool, e.g. a request): those
//!   wait unpurged in the close reserve (at most 64 slabs, also purged after 0.5 s unused) for
//!   the next phase. A thread's empty allocation slab (bin) is carried over to its next epoch
//!   re-stamped, unless that epoch has a partly used slab of the class to fill first.
//! - **Domains** (`domain.rs`): per-thread LIFO stacks of entered eras; per-slot refcount and
//!   label in the epoch ring; a bounded label registry.
//! - **Reclaimer** (`reclaim.rs`): a raw pthread that, every 100 ms, purges warm slabs and large
//!   mappings idle for 0.5 s and drains parked heaps, runs the optional automatic advance, and
//!   publishes the statistics.
//! - **Published statistics** (`publish.rs`, read by `attach.rs`): a memfd-backed shared region,
//!   a versioned header and an allocation-free raw snapshot rewritten under a seqlock each tick;
//!   other processes find it through `/proc/PID/fd` (ptrace access rules). Fork handlers take
//!   every allocator lock around `fork` and give the child its own region.
//!
//! # Invariants
//!
//! 1. Slab metadata never lives in the slab's pages; purging a slab touches only its pages, and
//!    nothing writes into purged pages until the slab is reformatted for a new allocation.
//! 2. A slab has one owner heap while it holds live objects; only the owner touches its
//!    non-atomic fields. The owner changes only when the slab is empty (`used == 0`), and an
//!    object freed remotely counts in `used` until the owner has seen it, so no free can race
//!    with an ownership change.
//! 3. A slab is in *direct* mode (remote frees go to its own list) iff it is its owner's bin;
//!    otherwise it is in *notify* mode (remote frees go to the owner heap's `pending` stack).
//!    Mode switches happen only by CAS from an empty list, so no free is stranded.
//! 4. An epoch that is not ACTIVE never gets a slab reformatted for it, and its partial slabs are
//!    moved to the draining list at the owner's next refresh; a draining slab is purged as soon as
//!    it empties. Slabs record their era, so a wrapped ring slot never mixes eras.
//! 5. A slab of a finished epoch (draining) is never allocated from again, so when it starts
//!    draining its pages that hold no live object are purged at once ("holes", counted in its
//!    metadata) and its free list is dropped; when it empties, its whole touched span is purged.
//!    A few long-lived objects therefore pin only their own pages, not whole slabs.
//! 6. Heaps and segment headers are never unmapped, so a pointer to either stays valid forever;
//!    this is what lets a remote free push onto a heap it does not own without locking.
//! 7. Nothing on the alloc / free / close paths allocates, panics or prints; the only locks are
//!    spin locks that never call back into the allocator. A pointer that fails validation
//!    aborts with a fixed message written by `write(2)`.
//!
//! # Memory orderings
//!
//! | Atomic | Operation | Ordering | Pairs with |
//! |---|---|---|---|
//! | `SlabMeta::remote` | remote push CAS | Release | owner's `swap` in `collect_remote` (Acquire) |
//! | `SlabMeta::remote` | `enter_notify` CAS 0 -> NOTIFY, `leave_notify` store | Relaxed | nothing is published (the list is empty) |
//! | `Heap::pending` | push CAS | Release | owner's `swap` in `drain_pending` (Acquire) |
//! | `Heap::state` | store PARKED | Release | CAS PARKED -> LIVE/CLAIMED (Acquire) in adopt / `help_parked` |
//! | `HEAPS`, `SEGMENTS` | push CAS | Release | list walks (Acquire) |
//! | `epoch::GEN` | `fetch_add` in advance / close | Release | heap refresh load (Acquire); the fast-path check is Relaxed and only decides whether to refresh |
//! | `epoch::CURRENT_ERA` | store in advance | Release | `epoch::current` and refresh (Acquire) |
//! | `SpinLock::locked` | swap true | Acquire | store false on unlock (Release) |
//! | region seqlock | odd store, Release fence, body stores (Relaxed), even store (Release) | Release | reader: Acquire load of the sequence, body loads, Acquire fence, second sequence load |
//! | `Slot::refcount` | domain enter `fetch_add` | Relaxed | a gauge; the exit's `fetch_sub` is AcqRel so the last guard's auto-close sees every guard's exit |
//! | counters, `used`, `state`, `class`, `era`, `bump` | load / store | Relaxed | none: read by snapshots, which are not atomic across counters |
//!
//! # Known limits
//!
//! - An allocation racing with `epoch::advance` on another thread may land in either epoch.
//! - `epoch::close` purges the calling thread's and exited threads' slabs at once; each other
//!   live thread purges its share at its next allocation. A thread that never allocates again
//!   keeps its share until it exits.
//! - Frees from other threads into a slab that is not its owner's bin are applied when the owner
//!   next takes its slow path (or at once, by the freeing thread, if the owner has exited).
//! - Entering or leaving a domain makes the thread's next allocation retire its current slabs
//!   (one pass over the 44 classes): cheap per request, not per allocation.
//!
//! # MADV_DONTNEED, not MADV_FREE
//!
//! Purged pages leave RSS at once, so the RSS an operator sees and the allocator's resident
//! estimate (touched pages of every slab not purged, segment headers, large mappings, heaps) agree:
//! the tests hold the estimate within 5% of the RSS the allocator causes. With `MADV_FREE` the
//! kernel would keep the pages counted in RSS until memory pressure, and the estimate would have
//! to guess when they go; it would also lose the guarantee that purged pages read as zero,
//! which lets `alloc_zeroed` skip its memset on purged slabs.
