//! The design of temporal-slab: layers, layout, where objects go, invariants and memory orderings
//! (documentation only).
//!
//! # Layers
//!
//! Each module reaches only down (`../shared/tools/modcycles.py allocator/src` finds no cycle):
//!
//! ```text
//!  lib (GlobalAlloc adapter, trim, free/realloc without layout)
//!   |
//!  reclaim (background thread: decay, parked heaps, idle trim, bucket rotation, auto-advance, publish)
//!   |
//!  profile_attach -> attach (another process's heap profile: the profile region, decoded)
//!   |
//!  attach -> publish -> stats (snapshots: fold every layer's counters into plain data)
//!   |   \-> plausible -> stats (the invariants every snapshot keeps, checked on foreign ones)
//!   |
//!  future (in_domain: a domain entered around every poll)
//!   |
//!  domain (EpochDomain, guards)
//!   |
//!  epoch (advance / end / close / join / leave: changes the ring, sweeps the heaps)
//!   |
//!  heap (thread heaps: bins, partial and recycling lists, remote frees, domain counts, idle trim)
//!   |
//!  large (large mappings and their cache)    segment (segments, the slab pool and its reserve)
//!   |                                         |
//!  profile (sampling by bytes; unwind.rs, walk.rs: stacks; table.rs: shared sites and samples; math.rs: ln, exp, weights)
//!   |                                         |
//!  ring (epoch ring state: eras, states, GEN, CURRENT_ERA)    slab (one slab's metadata; remote.rs: its remote frees; holes.rs: pages the idle trim purged)
//!   |
//!  labels (the label registry: append-only, looked up without a lock)
//!   |
//!  counters (every counter; a leaf that everything increments)
//!  paths (path tracing: a thread-local mask of the steps a call took; feature path-trace)
//!  countdown (a heap's epoch generation and byte countdown, one word: the fast path's one test)
//!  size_class, os (page source, clocks, environment, abort), sync (spin lock)
//! ```
//!
//! # Layout
//!
//! - **Segments** (`segment.rs`): 4 MiB mappings aligned to 4 MiB. Slot 0 is the header with the
//!   metadata (64 B) and free-cell bitmap (960 B) of the 63 slabs in slots 1..63; each slab is
//!   64 KiB of objects of one size class.
//! - **Free cells** (`slab.rs`): a slab's free cells are its bitmap's set bits plus a *head run*
//!   of neighbouring cells in its metadata. Allocation bumps through the head run and refills
//!   it from the next run of set bits; a free next to the head run widens it, any other free
//!   sets a bit. Neither reads or writes the cell, so allocation never waits on a load from a
//!   cold object (an intrusive free list makes every allocation a dependent load of the last
//!   freed cell's link: on a 14 MiB live set that made `lifetime-mixed` 1.7x jemalloc's time).
//!   Only remote frees link through the objects (their lists are short and drained in bulk).
//! - **Free caches** (`heap/cache.rs`): per thread heap and class, a LIFO stack of up to 32
//!   objects (64 KiB) the thread freed into its own slabs of its current epoch; allocation takes
//!   from it first. Cached objects still count in their slab's `used`; the cache is emptied into
//!   the slabs at every epoch refresh and at thread exit, and snapshots subtract it from epoch
//!   live bytes.
//! - **Large objects** (`large.rs`): one mapping each, with a header at a 4 MiB-aligned address
//!   at most 4 MiB below the object.
//! - Every returned pointer `p` has its header at `(p - 1) & !(4 MiB - 1)`: free needs no
//!   per-object header and no size. The header's magic word is checked on every free.
//! - **Size classes** (`size_class.rs`): 41 classes from 8 B to 32 KiB, at most 25% apart from
//!   32 B to 4 KiB, and above that each the largest multiple of 64 B that fits 12, 10, 9, 8, 6,
//!   5, 4, 3 or 2 objects into a slab. Objects sit at multiples of their size from a 64 KiB-aligned slab start, so a class
//!   whose size is a multiple of `align` serves that alignment.
//! - **Thread heaps** (`heap/`: the heap, `cache.rs` its free cache, `domains.rs` its domain
//!   bookkeeping, `epochs.rs` how it follows the epochs, `free.rs` the free path, `registry.rs` which heap a thread
//!   uses and the list of all heaps): per thread, per class one bin
//!   (allocation slab), partial lists per (epoch slot, class), a recycling list per class for
//!   slabs of closed epochs.
//! - **Global slab pool** (`segment.rs`): purged empty slabs, and the *reserve* of empty unpurged
//!   slabs. The reserve keeps at least 1024 slabs (64 MiB) and, once phases have been marked, as
//!   many as the recent phases took (the largest phase, decayed by a quarter per close; at most
//!   8192 slabs), so the next phase of the same size faults nothing back in. Every reserve slab
//!   unused for 0.5 s is purged (the reclaimer runs every 100 ms): an idle program's reserve is
//!   gone within about 0.6 s, oldest first. `trim()` and `epoch::close_purge` purge at once.
//! - **Epochs** (`ring.rs`, `epoch.rs`): a 16-slot ring; a slot's era is ACTIVE, ENDED (time has
//!   moved on, its domains are still open) or CLOSING. Domains share the current epoch; the
//!   reclaimer rotates it every 100 ms once domains joined it.
//! - **Domains** (`domain.rs`): guards and misuse; the per-thread LIFO stack of entered scopes,
//!   each `era << 8 | label` in one word, is one thread-local in `heap/domains.rs` (a heap refresh
//!   allocates in its top's era); per-heap sharded counts of open domains per ring slot; per-heap
//!   label counters, charged at each scope change from the byte countdown. Labels (`labels.rs`):
//!   a bounded, append-only registry; a lookup scans packed four-word entries below a published
//!   count and takes no lock; a [`Label`](crate::Label) handle skips the lookup.
//! - **Reclaimer** (`reclaim.rs`): a raw pthread that, every 100 ms, purges reserve slabs and
//!   large mappings idle for 0.5 s, drains parked heaps, rotates the domain bucket, runs the
//!   optional automatic advance, and publishes the statistics.
//! - **Published statistics** (`publish.rs`, read by `attach.rs`): a memfd-backed shared region,
//!   a versioned header and an allocation-free raw snapshot rewritten under a seqlock each tick;
//!   other processes find it through `/proc/PID/fd` (ptrace access rules). Fork handlers take
//!   every allocator lock around `fork` and give the child its own region.
//!
//! # Which objects go where, and why grouping by time still holds
//!
//! An allocation goes to its thread's current epoch: the innermost entered domain's, else the
//! global current one. Within that epoch a heap allocates from, in order: its free cache (objects
//! the thread freed in this same epoch); its bin; a partly used
//! slab of the same epoch; a *recycled* slab (a slab of a closed epoch that still holds
//! survivors and has free room), re-stamped with the current epoch; a slab from the pool (the
//! reserve first). So:
//! - objects of one phase share slabs with each other, and, only once the phase's own slabs are
//!   full, with the survivors of closed phases. In the common case (most of a phase dies with
//!   it) the phase's slabs empty together when it ends and go to the reserve whole, and the next
//!   phase takes them back without a page fault: that is the grouping that pays;
//! - the few survivors of a closed phase no longer pin their slabs: the free cells around them
//!   serve later phases (as Immix recycles sparse blocks). Survivors therefore end up sharing
//!   slabs with later, younger objects; a recycled slab is counted under the epoch it now
//!   serves (its survivors included), and the class counter `recycled_slabs` says how often
//!   that happened (snapshots do not track per-object epochs);
//! - concurrent domains of one time bucket share an epoch, so 10,000 open requests use one or
//!   two ring slots; a domain that outlives its bucket keeps that bucket's epoch ENDED but open
//!   (its refcount and age show it) and allocates there; if long-lived domains hold 15 slots,
//!   the bucket stops rotating (counted: `bucket_extensions`) instead of overflowing the ring.
//!
//! # Invariants
//!
//! 1. Slab metadata (bitmap included) never lives in the slab's pages; purging a slab touches
//!    only its pages, and nothing writes into purged pages until the slab is reformatted for a
//!    new allocation. The idle trim (`heap/trim.rs`) also purges single pages of a slab in use
//!    whose cells are all free bitmap cells, while it holds the owner off its slow paths; such a
//!    page is a *hole* (`SlabMeta::holes`, not counted resident) until a cell in it is handed
//!    out again, which only those slow paths do. A cell is free iff it is in its slab's head run or its bit is set, never
//!    both; `used` counts the others.
//! 2. A slab has one owner heap while it holds live objects; only the owner touches its
//!    non-atomic fields. The owner changes only when the slab is empty (`used == 0`), and an
//!    object freed remotely counts in `used` until the owner has seen it, so no free can race
//!    with an ownership change.
//! 3. Every remote free pushes onto its slab's own list (one CAS on the slab's shared line).
//!    A slab that is not its owner's bin waits in *notify* mode (empty list, `NOTIFY`): the
//!    free that ends that mode also pushes the slab, once, onto the owner heap's `pending`
//!    stack (`QUEUED` until the owner takes it off), so the owner learns of the room without
//!    scanning; a `QUEUED` slab is never given back to the pool. Mode switches happen only by
//!    CAS (the owner's from an empty list), so no free is stranded.
//! 4. An epoch that is CLOSING never gets a slab formatted for it; its partial slabs move to the
//!    recycling lists at the owner's next refresh, re-stamped when they are taken up again.
//!    Slabs record their era, so a wrapped ring slot never mixes eras.
//! 5. An ENDED epoch closes only when the sum of every heap's domain count for its slot is 0;
//!    no domain joins an ENDED epoch, so that sum can only fall and a read of it is never too
//!    low (`epoch.rs` gives the Dekker pair that makes joining safe).
//! 6. Heaps and segment headers are never unmapped, so a pointer to either stays valid forever;
//!    this is what lets a remote free push onto a heap it does not own without locking.
//! 7. Nothing on the alloc / free / close paths allocates, panics or prints; the only locks are
//!    spin locks that never call back into the allocator. A pointer that fails validation
//!    aborts with a fixed message written by `write(2)`.
//! 8. A heap's allocation takes the fast path only while its packed key (`countdown.rs`) is not
//!    behind `GEN`: a change of `GEN` (an advance or close) or the end of a countdown chunk (a
//!    heap-profile sample point, or 16 MiB of allocation) sends it to the slow path, which
//!    compares the full generation. A heap lagging 2^39 changes behind could miss one until
//!    then (the signed difference wraps).
//!
//! # Memory orderings
//!
//! | Atomic | Operation | Ordering | Pairs with |
//! |---|---|---|---|
//! | `SlabMeta::remote` | remote push CAS | AcqRel | owner's CAS in `collect_remote` (Acquire); its Acquire half pairs with `unqueue` (Release) before `pending_next` is rewritten |
//! | `SlabMeta::remote` | `enter_notify` CAS -> NOTIFY, `leave_notify` `fetch_and` | Relaxed | nothing is published (the list is empty, or stays) |
//! | `Heap::pending` | push CAS of a slab | SeqCst (Release) | owner's `swap` in `drain_pending` (Acquire) |
//! | `Heap::state` | store PARKED | Release | CAS PARKED -> LIVE/CLAIMED (Acquire) in adopt / `help_parked` |
//! | `HEAPS`, `SEGMENTS` | push CAS | Release | list walks (Acquire) |
//! | `ring::GEN` | `fetch_add(countdown::STEP)` in advance / close | Release | heap refresh load (Acquire); the fast-path check is Relaxed and only decides whether to refresh |
//! | `ring::CURRENT_ERA` | store in advance | Release | `epoch::current` and refresh (Acquire) |
//! | `Heap::domains` + `Slot::state` | join: count store, SeqCst fence, state load; end: state CAS, SeqCst fence, count loads | SeqCst fences | each other (Dekker): the joiner sees ENDED or the ender sees the count |
//! | `Slot::state` | CAS ENDED -> CLOSING | AcqRel | exactly one closer |
//! | `SpinLock::locked` | swap true | Acquire | store false on unlock (Release) |
//! | `labels::COUNT` | store n + 1 after the entry's words | Release | lookups' load (Acquire), then Relaxed word loads below it |
//! | region seqlock | odd store, Release fence, body stores (Relaxed), even store (Release) | Release | reader: Acquire load of the sequence, body loads, Acquire fence, second sequence load |
//! | `EpochDomain::guards` | enter `fetch_add` Relaxed, exit `fetch_sub` AcqRel | AcqRel | the last guard's auto-close sees every guard's exit |
//! | `TrimState::seq` (a heap's) | owner: odd store at a slow path's start, compiler fence, then `req` load (Acquire); even store at its end (Release) | asymmetric: the trim's `membarrier` is the heavy fence | trim: `req` store, `membarrier(2)`, `seq` load (Acquire): either the trim sees the slow path or the slow path sees `req` and waits |
//! | `TrimState::req` | trim stores FREE when done | Release | the owner's Acquire load at a slow path's start (the holes it wrote) |
//! | bitmap words | owner load / store; the trim loads | Relaxed | the handshake above (the trim reads only bits the held owner cannot clear) |
//! | counters, `used`, `state`, `class`, `era`, `bump`, `holes` | load / store | Relaxed | none: read by snapshots, which are not atomic across counters |
//!
//! # Known limits
//!
//! - An allocation racing with `epoch::advance` on another thread may land in either epoch.
//! - `epoch::close` sweeps the calling thread's and exited threads' slabs at once; each other
//!   live thread sweeps its share at its next allocation. A thread that never allocates again
//!   keeps its share until it exits.
//! - Frees from other threads into a slab that is not its owner's bin are applied when the owner
//!   next takes its slow path (or at once, by the freeing thread, if the owner has exited).
//! - Entering a domain of an older epoch than the thread's current one makes the thread's next
//!   allocation retire its current slabs (one pass over the 41 classes); entering one of the
//!   current epoch costs nothing of the kind.
//! - Per label, snapshots count domains and the bytes allocated inside them exactly, but not
//!   live bytes: a free does not know which domain made the object.
//! - A live thread keeps up to 32 freed objects per class (at most 64 KiB per class) in its free
//!   cache until its next epoch refresh or exit, and the slabs they lie in cannot empty
//!   meanwhile. `epoch::close` and `advance` make every allocating thread refresh.
//! - Double frees are caught when the object is already a free bitmap cell or lies in the
//!   bin's head run, not when it is in the free cache, nor when it is the free bitmap cell just
//!   beside the head run (the widening test reads no bitmap: checking there cost 2.2% of
//!   alloc-test's instructions). Such a double free hands one cell out twice, as in allocators
//!   without per-object checks; with the idle trim it can also lose a page of that cell.
//! - Free cells in partly used slabs stay resident until they are reused, until the owner heap
//!   has taken no slow path for 1 s (`TSLAB_IDLE_TRIM_MS`), or until `trim()`: then each page
//!   holding only free bitmap cells is purged. Pages holding a live object, a cached one or a
//!   cell of the bin's head run stay (the free cache pins at most 32 objects a class). Without
//!   `membarrier(2)` (kernels before 4.14, some seccomp filters, valgrind) no such page is
//!   purged; a slab is still purged whole when it empties.
//!
//! # MADV_DONTNEED, not MADV_FREE
//!
//! Purged pages leave RSS at once, so the RSS an operator sees and the allocator's resident
//! estimate (touched pages of every slab not purged, segment headers, large mappings, heaps) agree:
//! the tests hold the estimate within 5% of the RSS the allocator causes. With `MADV_FREE` the
//! kernel would keep the pages counted in RSS until memory pressure, and the estimate would have
//! to guess when they go; it would also lose the guarantee that purged pages read as zero,
//! which lets `alloc_zeroed` skip its memset on purged slabs.
