//! Idle reclaim: a background thread that gives memory back to the OS while the program does
//! nothing, and the opt-in automatic epoch advance.
//!
//! Without it, memory is purged only on allocator calls: an idle program would keep its warm
//! slabs (up to 64 MiB) and its large-object cache (up to 128 MiB) resident forever, which is
//! what every peer allocator does by default. The reclaimer wakes every [`TICK_NS`] and:
//! - purges warm slabs unused for 500 ms (`segment::decay_warm`);
//! - unmaps large mappings cached for longer than their decay time (`large::decay`);
//! - applies the pending frees of parked heaps (exited threads);
//! - purges the free pages inside the slabs of heaps idle for 1 s (`heap/trim.rs`), so a thread
//!   that waits after a burst gives back what the burst left around its survivors;
//! - runs the automatic epoch advance when it is configured by time.
//!
//! So after a burst is freed, RSS comes back to live bytes plus a fixed overhead within about
//! 0.6 s with no API call.
//!
//! The thread is a raw `pthread` (std's `thread::spawn` would allocate from inside the
//! allocator), started lazily the first time the allocator maps memory, and it never allocates.
//! `TSLAB_RECLAIM=0` (or `off`) disables it; the allocator then reclaims only on its own calls.
//! After `fork`, the child starts its own at its next mapping.
//!
//! Automatic epoch advance (opt-in): every `TSLAB_AUTO_ADVANCE_MS` milliseconds, or every
//! `TSLAB_AUTO_ADVANCE_MIB` MiB of new slabs, the current epoch is closed and the next one
//! opened, as if the program called `epoch::close(epoch::current())`. The builder
//! [`crate::TemporalSlab::with_auto_advance`] sets the same. Trade-off: a program with no phases
//! of its own gets its memory grouped by time, so that memory freed in bulk goes back to the OS
//! per period; the price is that a slab still partly used at a boundary can no longer take new
//! objects and drains instead (more partly used slabs: fragmentation), and every thread retires
//! its current slabs at its next allocation after each advance.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Time between reclaimer passes.
pub const TICK_NS: u64 = crate::publish::PUBLISH_INTERVAL_NS;

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const DISABLED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);

/// When to advance epochs automatically.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AutoAdvance {
    /// Never (the default): epochs change only through the epoch API.
    Off,
    /// Every so many milliseconds.
    EveryMillis(u64),
    /// Every so many bytes of new slabs.
    EveryBytes(u64),
}

/// 0: not configured yet; 1: off; else the period in ms (by time).
static AUTO_MS: AtomicU64 = AtomicU64::new(0);
/// 0: off; else bytes of new slabs per advance.
static AUTO_BYTES: AtomicU64 = AtomicU64::new(0);
/// `slab_bytes_taken` at the last automatic advance.
static BYTES_AT_ADVANCE: AtomicU64 = AtomicU64::new(0);
static CONFIGURED: AtomicU8 = AtomicU8::new(0);

/// Applies the automatic-advance setting once: the environment wins over the builder.
pub(crate) fn configure(builder: AutoAdvance) {
    if CONFIGURED.load(Ordering::Relaxed) != 0 || CONFIGURED.swap(1, Ordering::Relaxed) != 0 {
        return;
    }
    crate::epoch::configure_from_env();
    let setting = if let Some(ms) = crate::os::env_u64(c"TSLAB_AUTO_ADVANCE_MS").filter(|&v| v > 0) {
        AutoAdvance::EveryMillis(ms)
    } else if let Some(mib) = crate::os::env_u64(c"TSLAB_AUTO_ADVANCE_MIB").filter(|&v| v > 0) {
        AutoAdvance::EveryBytes(mib << 20)
    } else {
        builder
    };
    match setting {
        AutoAdvance::Off => {}
        AutoAdvance::EveryMillis(ms) => AUTO_MS.store(ms.max(1), Ordering::Relaxed),
        AutoAdvance::EveryBytes(b) => AUTO_BYTES.store(b.max(1), Ordering::Relaxed),
    }
}

/// The automatic-advance setting in force.
pub fn auto_advance() -> AutoAdvance {
    match (AUTO_MS.load(Ordering::Relaxed), AUTO_BYTES.load(Ordering::Relaxed)) {
        (0, 0) => AutoAdvance::Off,
        (ms, 0) => AutoAdvance::EveryMillis(ms),
        (_, b) => AutoAdvance::EveryBytes(b),
    }
}

/// Called after every allocation slow path: runs the volume-based advance when the slabs taken
/// from the pool since the last one (`slab_bytes_taken`) reach its period.
pub(crate) fn after_slow_path() {
    let every = AUTO_BYTES.load(Ordering::Relaxed);
    if every == 0 {
        return;
    }
    let taken = crate::counters::GLOBAL.slab_bytes_taken.load(Ordering::Relaxed);
    let since = BYTES_AT_ADVANCE.load(Ordering::Relaxed);
    if taken.wrapping_sub(since) >= every
        && BYTES_AT_ADVANCE.compare_exchange(since, taken, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        advance_and_close();
    }
}

fn advance_and_close() {
    crate::paths::mark(crate::paths::Step::Reclaim);
    crate::counters::GLOBAL.auto_advances.fetch_add(1, Ordering::Relaxed);
    crate::epoch::close(crate::epoch::current());
}

/// Starts the reclaimer thread if it is not running and not disabled. Must not be called with
/// an allocator lock held (thread creation may allocate through the C library).
pub(crate) fn ensure_started() {
    if STATE.load(Ordering::Relaxed) != NOT_STARTED {
        return;
    }
    if STATE.compare_exchange(NOT_STARTED, RUNNING, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return;
    }
    crate::ring::stamp_first_epoch();
    static ATFORK: AtomicU8 = AtomicU8::new(0);
    if ATFORK.swap(1, Ordering::Relaxed) == 0 {
        // SAFETY: registering plain extern "C" handlers; they run around fork in the forking
        // thread only.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child)) };
    }
    if crate::os::env_is_off(c"TSLAB_RECLAIM") {
        STATE.store(DISABLED, Ordering::Relaxed);
        return;
    }
    // SAFETY: plain pthread calls on locals we own; the thread function never returns and
    // touches only allocator globals. pthread_atfork is registered once (RUNNING is set once per
    // process image) so that a forked child restarts its own reclaimer.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        let mut tid: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut tid, &attr, reclaimer_main, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            STATE.store(DISABLED, Ordering::Relaxed);
        }
    }
}

/// Takes every allocator lock (in the one order in which they ever nest: the fallback heap
/// first), so that no lock is held by a thread that will not exist in the child.
extern "C" fn before_fork() {
    crate::heap::FALLBACK.raw_lock();
    crate::ring::LOCK.raw_lock();
    crate::heap::ARENA.raw_lock();
    crate::labels::WRITER.raw_lock();
    crate::large::CACHE.raw_lock();
    crate::segment::POOL.raw_lock();
    crate::heap::TRIM.raw_lock();
}

fn unlock_all() {
    // SAFETY: `before_fork` took each of these locks in this process image (the child's memory
    // is a copy of the parent's taken while they were held).
    unsafe {
        crate::heap::TRIM.raw_unlock();
        crate::segment::POOL.raw_unlock();
        crate::large::CACHE.raw_unlock();
        crate::labels::WRITER.raw_unlock();
        crate::heap::ARENA.raw_unlock();
        crate::ring::LOCK.raw_unlock();
        crate::heap::FALLBACK.raw_unlock();
    }
}

extern "C" fn after_fork_in_parent() {
    unlock_all();
}

extern "C" fn after_fork_in_child() {
    unlock_all();
    // The reclaimer thread does not exist in the child; start a new one at the next mapping.
    if STATE.load(Ordering::Relaxed) == RUNNING {
        STATE.store(NOT_STARTED, Ordering::Relaxed);
    }
    crate::publish::after_fork_in_child();
    crate::profile::after_fork_in_child();
    crate::os::barrier_after_fork_in_child();
}

extern "C" fn reclaimer_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let mut last_advance = crate::os::monotonic_ns();
    crate::publish::publish();
    loop {
        let ts = libc::timespec { tv_sec: 0, tv_nsec: TICK_NS as libc::c_long };
        // SAFETY: nanosleep with a valid timespec; an early wake-up is harmless.
        unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
        let now = crate::os::monotonic_ns();
        tick(now);
        let ms = AUTO_MS.load(Ordering::Relaxed);
        if ms > 0 && now.saturating_sub(last_advance) >= ms * 1_000_000 {
            last_advance = now;
            advance_and_close();
        }
    }
}

/// One reclaim pass (also callable directly, e.g. from [`crate::trim`]).
pub(crate) fn tick(now: u64) {
    crate::counters::GLOBAL.reclaimer_ticks.fetch_add(1, Ordering::Relaxed);
    crate::segment::decay_warm(now, crate::segment::WARM_DECAY_NS);
    crate::large::decay(now);
    crate::heap::help_all_parked();
    crate::heap::trim_idle(now);
    crate::epoch::rotate_bucket(now);
    crate::publish::publish();
}
