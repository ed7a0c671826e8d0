//! Capturing the caller's stack: the return addresses. On x86_64 by cached rules (`walk.rs`),
//! falling back to libgcc's unwinder for a stack they cannot walk; elsewhere by libgcc's.
//!
//! Written by hand rather than taken from the `backtrace` crate: the libgcc path needs only
//! `_Unwind_Backtrace` and `_Unwind_GetIP` (which Rust's standard library already links, through
//! libgcc_s), while that crate also brings a DWARF symbolizer (addr2line, gimli, object) into
//! every program that installs the allocator. Symbols are resolved out of process, by
//! `stats_dump --profile`.
//!
//! The unwinder reads `.eh_frame`, which Rust and C compilers emit by default on Linux; it does not
//! allocate through malloc on glibc 2.35+ (`_dl_find_object`), and where an older libgcc does on
//! its first call, the sampler's re-entry guard serves that allocation unsampled.

use core::cell::Cell;
use core::ffi::c_void;

use super::table::DEPTH;

type Ctx = c_void;
const URC_NO_REASON: i32 = 0;
const URC_NORMAL_STOP: i32 = 4;

extern "C" {
    fn _Unwind_Backtrace(trace: extern "C" fn(*mut Ctx, *mut c_void) -> i32, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut Ctx) -> usize;
}

struct Frames<'a> {
    out: &'a [Cell<u64>],
    n: usize,
    skip: usize,
}

extern "C" fn on_frame(ctx: *mut Ctx, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Frames` that `libgcc` passed, alive for the whole walk; the
    // unwinder calls us on the capturing thread only.
    let frames = unsafe { &mut *arg.cast::<Frames<'_>>() };
    // SAFETY: `ctx` is the unwinder's context for this frame, valid during the callback.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 {
        return URC_NORMAL_STOP;
    }
    if frames.skip > 0 {
        frames.skip -= 1;
        return URC_NO_REASON;
    }
    frames.out[frames.n].set(ip);
    frames.n += 1;
    if frames.n == frames.out.len() {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// The return addresses of the calling stack, innermost first, at most `max` (up to
/// [`DEPTH`]), leaving out this function's own frame. They are written into `stack`, the
/// sampling thread's state, and read from there: on x86_64 the walk's memo of return addresses
/// is the output (a separate buffer on the stack, below the program's frames, wrote lines that
/// a sample otherwise does not touch).
#[inline(never)]
pub(crate) fn capture(max: usize, stack: &Stack) -> &[Cell<u64>] {
    let max = max.min(DEPTH);
    #[cfg(target_arch = "x86_64")]
    if let Some(n) = super::walk::walk(max, stack) {
        return stack.frames(n);
    }
    let n = libgcc(&stack.out()[..max], 0);
    stack.forget_rules();
    stack.frames(n)
}

/// The capturing thread's stack state for the walk (`walk::Stack`; elsewhere only the output).
#[cfg(target_arch = "x86_64")]
pub(crate) use super::walk::Stack;

/// The capturing thread's output: frame 0 unused, as on x86_64 (see `walk::Stack`).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) struct Stack {
    ras: [Cell<u64>; DEPTH + 1],
}

#[cfg(not(target_arch = "x86_64"))]
impl Default for Stack {
    fn default() -> Stack {
        Stack { ras: [const { Cell::new(0) }; DEPTH + 1] }
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Stack {
    /// Nothing to forget where libgcc walks.
    pub(crate) fn new_thread(&self) {}

    /// The frames the last capture wrote (`n` of them).
    pub(crate) fn frames(&self, n: usize) -> &[Cell<u64>] {
        &self.ras[1..=n.min(DEPTH)]
    }

    /// No rules are kept where libgcc walks.
    pub(crate) fn forget_rules(&self) {}

    /// Where a capture writes its frames.
    pub(crate) fn out(&self) -> &[Cell<u64>] {
        &self.ras[1..]
    }
}

/// [`capture`] by libgcc's `_Unwind_Backtrace` into `out`; inlined, so the first frame left out
/// is the caller's.
#[inline(always)]
pub(crate) fn libgcc(out: &[Cell<u64>], skip: usize) -> usize {
    if out.is_empty() {
        return 0;
    }
    let mut frames = Frames { out, n: 0, skip: skip + 1 };
    // SAFETY: `on_frame` matches the unwinder's callback signature and only writes through the
    // `Frames` pointer we pass, which outlives the call.
    unsafe { _Unwind_Backtrace(on_frame, core::ptr::from_mut(&mut frames).cast()) };
    frames.n
}

#[cfg(test)]
mod tests {
    #[inline(never)]
    fn two_deep(max: usize, stack: &super::Stack) -> Vec<u64> {
        super::capture(max, stack).iter().map(core::cell::Cell::get).collect()
    }

    #[test]
    fn captures_distinct_nonzero_return_addresses() {
        let stack = super::Stack::default();
        let runs: Vec<Vec<u64>> = (0..2).map(|_| two_deep(16, &stack)).collect();
        let got = &runs[0];
        assert!(got.len() >= 3, "only {} frames", got.len());
        assert!(got.iter().all(|&ip| ip != 0));
        assert_ne!(got[0], got[1]);
        assert_eq!(&runs[1], got, "the same stack again (from the memo)");
        let short = two_deep(2, &stack);
        assert_eq!((short.len(), short[0]), (2, got[0]), "stops at max");
        assert!(two_deep(0, &stack).is_empty());
    }
}
