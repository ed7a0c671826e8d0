//! Walking x86_64 stacks by cached unwind rules: the sampler's fast capture.
//!
//! libgcc's `_Unwind_Backtrace` finds and interprets each frame's `.eh_frame` entry afresh: about
//! 2,000 instructions a frame, 20,000 a sample, which was nearly all the profiler's cost. But a
//! program's samples come from few call sites, and what a frame needs to be undone is small: where
//! the canonical frame address (CFA) is (`rsp` or `rbp` plus an offset), that the return address
//! sits just below it, and where `rbp` was saved. So each return address's rule is learned once,
//! with libgcc's own lookup (`_Unwind_Find_FDE`) and gimli's no-allocation CFI interpreter, and
//! kept in a direct-mapped table of [`SLOTS`] words; a sample then costs tens of instructions a
//! frame.
//!
//! Hand-written rather than taken from a crate: the unwinders that cache (framehop) allocate their
//! caches and module lists through the global allocator, which is us, mid-allocation. gimli is
//! used as is (no allocation with caller-provided storage).
//!
//! The shared table is direct-mapped by address, so a walk's frames land on as many scattered
//! cache lines as it has frames, and between two samples the program has evicted them all: a
//! sample took about 1,500 cycles in its walk alone. So each thread also keeps its last walk by
//! position ([`Stack`]'s memo of [`MEMO`] frames: each frame's return address, and beside them
//! its rule, read in order): a walk that passes the same code at the same depth as the last
//! (nearly every sample of a thread from the same loop) reads that memo's few consecutive lines
//! instead of the table. The memo's return addresses are also the walk's output, so a capture
//! writes no buffer of its own (one on the stack, below the program's frames, was lines that
//! nothing else touches, written at every sample).
//!
//! A rule this table cannot hold (a CFA from another register or an expression, as in signal
//! frames and realigned stacks) makes [`walk`] give up, and the caller falls back to libgcc for
//! the whole sample. Rules for unloaded code would be wrong for whatever is loaded there later, so
//! the table is emptied when the dynamic loader's count of unloads changes. That count is read
//! with `dl_iterate_phdr`, which scans the loaded objects (16 of a sample's ~63 L1 misses), so
//! it is read at every walk only until the thread's stack mapping is known ([`Stack`]); from then
//! on every frame is bounded by that mapping, a stale rule can only give wrong frames, never a
//! read outside the stack, and the count is read once every [`UNLOAD_EVERY`] walks.

use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameOffset, LittleEndian, Register, RegisterRule, UnwindContext,
    UnwindContextStorage, UnwindSection, UnwindTableRow, X86_64,
};

/// Cached rules: a power of two, and exactly the 12 low address bits that the tag leaves out (see
/// [`slot`]).
const SLOTS: usize = 1 << 12;
const RULE_BITS: u32 = 29;
const RULE_MASK: u64 = (1 << RULE_BITS) - 1;
/// Bit 0 of a rule: the CFA is `rbp` + offset (else `rsp` + offset).
const CFA_RBP: u64 = 1;
/// Bits 1..=20: the CFA offset; bits 21..=28: `rbp` saved at CFA - 8 * k (0: not saved).
const OFF_SHIFT: u32 = 1;
const OFF_MAX: i64 = (1 << 20) - 1;
const RBP_SHIFT: u32 = 21;
const RBP_MAX: i64 = (1 << 8) - 1;
/// The rules with offset 0: the stack ends here (no return address, or no unwind information) ...
const END: u64 = 0;
/// ... and: a rule the table cannot express; the walk gives up.
const FALLBACK: u64 = CFA_RBP;
/// A frame larger than this ends the walk: what a broken rule looks like.
const MAX_FRAME: u64 = 1 << 20;

/// Each word: the looked-up address's bits 12..47 above [`RULE_BITS`] bits of rule; 0: empty.
static CACHE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// The loader's count of unloaded objects when [`CACHE`] was last emptied.
static UNLOADS: AtomicU64 = AtomicU64::new(0);

/// Where `addr` is cached. The index mixes bits 12..23 into the low 12 so that functions at the
/// same page offset do not collide; the tag keeps bits 12..47, so tag and index give back `addr`.
fn slot(addr: u64) -> usize {
    ((addr ^ (addr >> 12)) as usize) & (SLOTS - 1)
}

/// The rule for frames executing at `addr` (a return address minus one, or the walk's own pc).
#[inline]
fn rule(addr: u64) -> u64 {
    if addr >> 47 != 0 {
        return learn(addr);
    }
    let tag = addr >> 12;
    let cached = CACHE[slot(addr)].load(Ordering::Relaxed);
    if cached != 0 && cached >> RULE_BITS == tag {
        return cached & RULE_MASK;
    }
    let r = learn(addr);
    CACHE[slot(addr)].store(tag << RULE_BITS | r, Ordering::Relaxed);
    r
}

/// gimli's working storage, on the stack: x86_64's CFI names at most 17 registers, and compilers
/// nest `DW_CFA_remember_state` rarely; more makes gimli fail, and the walk falls back.
struct OnStack;
impl<T: gimli::ReaderOffset> UnwindContextStorage<T> for OnStack {
    type Rules = [(Register, RegisterRule<T>); 24];
    type Stack = [UnwindTableRow<T, Self>; 3];
}

#[repr(C)]
struct DwarfEhBases {
    tbase: usize,
    dbase: usize,
    func: usize,
}

extern "C" {
    /// libgcc's lookup of the frame description entry covering `pc` (what its unwinder uses:
    /// `_dl_find_object` on glibc 2.35+, without locks or allocation).
    fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut DwarfEhBases) -> *const u8;
}

/// Learns the rule at `addr` from its frame description entry.
#[cold]
#[inline(never)]
fn learn(addr: u64) -> u64 {
    let mut bases = DwarfEhBases { tbase: 0, dbase: 0, func: 0 };
    // SAFETY: a lookup by address; libgcc only reads the loaded objects' unwind tables.
    let fde = unsafe { _Unwind_Find_FDE(addr as *mut c_void, &mut bases) };
    if fde.is_null() {
        return END;
    }
    // SAFETY: `fde` points at an entry of a loaded `.eh_frame`: a 4-byte length (0xffffffff would
    // announce a 64-bit one, not used on x86_64 and refused here), then the distance back from
    // that field to the entry's CIE, which precedes it in the same section. So [cie, fde end) is
    // mapped, readable, and never written while the object stays loaded.
    let section = unsafe {
        let len = fde.cast::<u32>().read_unaligned();
        let back = fde.add(4).cast::<u32>().read_unaligned() as usize;
        if len == u32::MAX || back == 0 || back > fde.add(4).addr() {
            return FALLBACK;
        }
        let cie = fde.add(4).sub(back);
        core::slice::from_raw_parts(cie, back + len as usize)
    };
    let bases_gimli = BaseAddresses::default()
        .set_eh_frame(section.as_ptr().addr() as u64)
        .set_text(bases.tbase as u64)
        .set_got(bases.dbase as u64);
    let eh = EhFrame::new(section, LittleEndian);
    let offset = EhFrameOffset(fde.addr() - section.as_ptr().addr());
    let Ok(entry) = eh.fde_from_offset(&bases_gimli, offset, EhFrame::cie_from_offset) else {
        return FALLBACK;
    };
    let mut ctx = UnwindContext::<usize, OnStack>::new_in();
    match entry.unwind_info_for_address(&eh, &bases_gimli, &mut ctx, addr) {
        Ok(row) => encode(row),
        Err(_) => FALLBACK,
    }
}

/// A row's rule, if the table can hold it.
fn encode<S: UnwindContextStorage<usize>>(row: &UnwindTableRow<usize, S>) -> u64 {
    match row.register(X86_64::RA) {
        RegisterRule::Offset(-8) => {}
        RegisterRule::Undefined => return END,
        _ => return FALLBACK,
    }
    let (base, off) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => (0, offset),
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => (CFA_RBP, offset),
        _ => return FALLBACK,
    };
    if !(8..=OFF_MAX).contains(&off) {
        return FALLBACK;
    }
    let saved = match row.register(X86_64::RBP) {
        RegisterRule::Undefined | RegisterRule::SameValue => 0,
        RegisterRule::Offset(o) if o < 0 && o % 8 == 0 && -o / 8 <= RBP_MAX => -o / 8,
        _ => return FALLBACK,
    };
    base | (off as u64) << OFF_SHIFT | (saved as u64) << RBP_SHIFT
}

/// Walks between two reads of the loader's unload count once the stack's bounds are known.
const UNLOAD_EVERY: u32 = 64;

/// Frames of a walk that [`Stack`]'s memo keeps: the deepest capture (`table::DEPTH`) and the
/// walk's own frame.
pub(crate) const MEMO: usize = super::table::DEPTH + 1;

/// A memo rule not known (yet): the walk looks it up in the shared table.
const UNKNOWN: u32 = u32::MAX;

/// A thread's stack mapping (`[lo, hi)`, learned from `/proc/self/maps` at its first walk), its
/// count of walks and its memo of the last walk, which is also the walk's output. All-zero: not
/// learned yet, memo empty. Owner-only (the sampling thread's). Fields in the order a walk reads
/// them, the memo last (see `Sampler`).
#[repr(C)]
pub(crate) struct Stack {
    lo: Cell<u64>,
    hi: Cell<u64>,
    walks: Cell<u32>,
    learned: Cell<bool>,
    /// The loader's unload count when the memo was last emptied.
    unloads: Cell<u64>,
    /// Per frame of the last walk, innermost first: the rule that undid it (a rule fits 29 bits;
    /// [`UNKNOWN`]: look it up), valid while `ras` holds the same return address there.
    rules: [Cell<u32>; MEMO],
    /// Per frame of the last walk: the return address that leads into it (frame 0: the walk's
    /// own pc + 1; 0: none, as no code runs at address 0). Frames 1.. are the captured stack.
    ras: [Cell<u64>; MEMO],
}

impl Default for Stack {
    fn default() -> Stack {
        Stack {
            lo: Cell::new(0),
            hi: Cell::new(0),
            walks: Cell::new(0),
            learned: Cell::new(false),
            unloads: Cell::new(0),
            rules: [const { Cell::new(0) }; MEMO],
            ras: [const { Cell::new(0) }; MEMO],
        }
    }
}

impl Stack {
    /// A new thread uses this state (an adopted heap's): its stack is elsewhere, and is learned
    /// again at its next walk (else every walk of the new thread would be unbounded and read the
    /// loader's unload count). The memo stays: it is keyed by code address, not by thread.
    pub(crate) fn new_thread(&self) {
        self.learned.set(false);
        self.lo.set(0);
        self.hi.set(0);
    }

    /// The return addresses the last capture wrote, innermost first (`n` of them).
    pub(crate) fn frames(&self, n: usize) -> &[Cell<u64>] {
        &self.ras[1..=n.min(MEMO - 1)]
    }

    /// Frame `k`'s memo holds return address `ra` from now on: its rule is kept if it was
    /// already `ra`, else forgotten.
    #[inline(always)]
    fn reached(&self, k: usize, ra: u64) {
        if self.ras[k].get() != ra {
            self.ras[k].set(ra);
            self.rules[k].set(UNKNOWN);
        }
    }

    /// The rule at `addr` (`ras[k] - 1`) for the walk's frame number `k`: from the memo when
    /// known, else from the shared table (and kept in the memo).
    #[inline(always)]
    fn rule(&self, k: usize, addr: u64) -> u64 {
        let m = self.rules[k].get();
        if m != UNKNOWN {
            return u64::from(m);
        }
        let r = rule(addr);
        // Every rule fits (RULE_BITS < 32) and none is UNKNOWN.
        self.rules[k].set(r as u32);
        r
    }

    /// Where a capture writes its frames (the libgcc fallback's output).
    pub(crate) fn out(&self) -> &[Cell<u64>] {
        &self.ras[1..]
    }

    /// The libgcc fallback wrote frames into `ras[1..=n]`: no rule there is known.
    pub(crate) fn forget_rules(&self) {
        self.ras[0].set(0);
        for r in &self.rules {
            r.set(UNKNOWN);
        }
    }

    /// A thread's first walk: the bounds of the mapping that holds `sp`.
    #[cold]
    #[inline(never)]
    fn learn_bounds(&self, sp: u64) {
        self.learned.set(true);
        if let Some((lo, hi)) = mapping_of(sp) {
            self.lo.set(lo);
            self.hi.set(hi);
        }
    }

    /// The mapping's bounds if `sp` is inside it (0, 0: unknown; a walk on another stack, such
    /// as a signal's alternate one, is unbounded and reads the unload count every time).
    #[inline(always)]
    fn bounds(&self, sp: u64) -> (u64, u64) {
        if !self.learned.get() {
            self.learn_bounds(sp);
        }
        let (lo, hi) = (self.lo.get(), self.hi.get());
        if lo <= sp && sp < hi {
            (lo, hi)
        } else {
            (0, 0)
        }
    }
}

/// The `[start, end)` of the mapping in `/proc/self/maps` that holds `addr`. By raw `open` and
/// `read` into a buffer on the stack, parsed as it streams: nothing allocates.
fn mapping_of(addr: u64) -> Option<(u64, u64)> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below on every path.
    let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 4096];
    // Per line: the start (field 0), the end (field 1), then the rest is skipped (field 2).
    let (mut field, mut start, mut end) = (0u8, 0u64, 0u64);
    let mut found = None;
    'read: loop {
        // SAFETY: reads at most `buf.len()` bytes into `buf`, which we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            match (field, b) {
                (_, b'\n') => (field, start, end) = (0, 0, 0),
                (0, b'-') => field = 1,
                (1, b' ') => {
                    if start <= addr && addr < end {
                        found = Some((start, end));
                        break 'read;
                    }
                    field = 2;
                }
                (0 | 1, _) => {
                    let Some(d) = (b as char).to_digit(16) else {
                        field = 2;
                        continue;
                    };
                    let v = if field == 0 { &mut start } else { &mut end };
                    *v = *v << 4 | u64::from(d);
                }
                _ => {}
            }
        }
    }
    // SAFETY: our own descriptor, opened above.
    unsafe { libc::close(fd) };
    found
}

/// Empties the cache if the loader unloaded an object since it was last emptied, and `stack`'s
/// memo if it did since this thread last looked. One call of `dl_iterate_phdr` that stops at
/// the first object (it takes the loader's recursive lock, as libgcc's own lookup did before
/// glibc 2.35; it does not allocate).
fn forget_unloaded(stack: &Stack) {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
        if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8 {
            // SAFETY: the loader passes a valid entry of `size` bytes, and `data` is the u64
            // that `forget_unloaded` lent for this call.
            unsafe { *data.cast::<u64>() = (*info).dlpi_subs };
        }
        1
    }
    let mut unloads = 0u64;
    // SAFETY: `first` matches the callback type and writes only through the pointer passed.
    unsafe { libc::dl_iterate_phdr(Some(first), core::ptr::from_mut(&mut unloads).cast()) };
    if UNLOADS.load(Ordering::Relaxed) != unloads {
        for w in &CACHE {
            w.store(0, Ordering::Relaxed);
        }
        UNLOADS.store(unloads, Ordering::Relaxed);
    }
    if stack.unloads.get() != unloads {
        for ra in &stack.ras {
            ra.set(0);
        }
        stack.unloads.set(unloads);
    }
}

/// Walks the calling stack, writing at most `max` (up to `MEMO - 1`) return addresses into
/// `stack`'s memo, innermost first (read them with [`Stack::frames`]); returns how many, or
/// `None` when a frame's rule is not one the cache can hold (the caller then uses libgcc).
/// Inlined, so the first frame is the caller's.
#[inline(always)]
pub(crate) fn walk(max: usize, stack: &Stack) -> Option<usize> {
    let (pc, mut sp, mut bp): (u64, u64, u64);
    // SAFETY: copies three registers; no memory, stack or flags are touched. The CFI row at the
    // address `pc` describes exactly this frame state (rsp does not change inside the block).
    unsafe {
        core::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    let (lo, hi) = stack.bounds(sp);
    let walks = stack.walks.get().wrapping_add(1);
    stack.walks.set(walks);
    if hi == 0 || walks % UNLOAD_EVERY == 1 {
        forget_unloaded(stack);
    }
    // Unbounded: the frames' own limit (a frame within MAX_FRAME of the last).
    let hi = if hi == 0 { u64::MAX } else { hi };
    let max = max.min(MEMO - 1);
    stack.reached(0, pc + 1);
    let mut n = 0;
    while n < max {
        let r = stack.rule(n, stack.ras[n].get() - 1);
        if r == FALLBACK {
            return None;
        }
        let off = (r & RULE_MASK) >> OFF_SHIFT & OFF_MAX as u64;
        if off == 0 {
            break;
        }
        let cfa = if r & CFA_RBP != 0 { bp } else { sp }.wrapping_add(off);
        if cfa <= sp || cfa - sp > MAX_FRAME || cfa > hi {
            break;
        }
        // SAFETY: the frame's unwind rule says its return address is the word below the CFA,
        // inside this thread's stack above `sp` (checked: within MAX_FRAME of it, and below the
        // stack mapping's end when known); libgcc trusts the same rules. Read as plain words:
        // the stack is ours and no one writes it meanwhile.
        let ra = unsafe { core::ptr::with_exposed_provenance::<u64>((cfa - 8) as usize).read() };
        let saved = r >> RBP_SHIFT;
        if saved != 0 {
            if cfa - 8 * saved < lo {
                break;
            }
            // SAFETY: as above: the rule puts the caller's rbp at CFA - 8 * saved, below the CFA
            // (and not below the stack mapping's start when known).
            bp = unsafe { core::ptr::with_exposed_provenance::<u64>((cfa - 8 * saved) as usize).read() };
        }
        sp = cfa;
        if ra == 0 {
            break;
        }
        n += 1;
        stack.reached(n, ra);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn fast(out: &mut [u64]) -> Option<usize> {
        let len = out.len().min(MEMO - 1);
        // The walk inlined here, not into a closure: its first frame is `fast`'s caller.
        let stack: *const Stack = STACK.with(core::ptr::from_ref);
        // SAFETY: this thread's own thread-local, alive while the thread runs.
        let stack = unsafe { &*stack };
        let n = walk(len, stack);
        for (o, f) in out.iter_mut().zip(stack.frames(n.unwrap_or(0))) {
            *o = f.get();
        }
        n
    }

    std::thread_local! {
        static STACK: Stack = Stack::default();
    }

    #[inline(never)]
    fn slow(out: &mut [u64]) -> usize {
        let buf = [const { Cell::new(0) }; 64];
        let len = out.len().min(MEMO - 1);
        let n = super::super::unwind::libgcc(&buf[..len], 0);
        for (o, f) in out.iter_mut().zip(&buf[..n]) {
            *o = f.get();
        }
        n
    }

    #[inline(never)]
    fn nest(depth: u32, a: &mut [u64], b: &mut [u64]) -> (Option<usize>, usize) {
        if depth == 0 {
            let got = (fast(a), slow(b));
            core::hint::black_box(&got);
            return got;
        }
        let r = nest(depth - 1, a, b);
        core::hint::black_box(depth);
        r
    }

    #[test]
    fn agrees_with_libgcc_below_the_first_frame() {
        for round in 0..3 {
            let (mut a, mut b) = ([0u64; 64], [0u64; 64]);
            let (n, m) = nest(6, &mut a, &mut b);
            let n = n.expect("plain Rust frames have rules the cache holds");
            assert!(n >= 8, "round {round}: only {n} frames");
            assert_eq!(n, m, "round {round}: same depth as libgcc: {:x?} vs {:x?}", &a[..n], &b[..m]);
            assert_ne!(a[0], b[0], "different call sites in `nest`");
            assert_eq!(a[1..n], b[1..m], "round {round} (rules cached after the first)");
        }
    }

    #[test]
    fn stops_when_the_buffer_is_full() {
        let mut short = [0u64; 3];
        assert_eq!(fast(&mut short), Some(3));
        assert!(short.iter().all(|&ra| ra != 0));
    }

    #[test]
    fn threads_end_where_libgcc_ends() {
        std::thread::spawn(|| {
            let (mut a, mut b) = ([0u64; 64], [0u64; 64]);
            let (n, m) = nest(2, &mut a, &mut b);
            assert_eq!(n, Some(m), "{:x?} vs {:x?}", &a, &b);
            assert!(m < 64);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_stack_mapping_holds_this_frame() {
        let here = 0u64;
        let at = core::ptr::from_ref(&here).addr() as u64;
        let (lo, hi) = mapping_of(at).expect("this stack is in /proc/self/maps");
        assert!(lo <= at && at < hi && hi - lo >= 4096, "{lo:x}..{hi:x} around {at:x}");
        assert_eq!(mapping_of(8), None, "nothing is mapped at address 8");
        // Bounded walks agree with libgcc as unbounded ones do, in a thread of its own too.
        std::thread::spawn(|| {
            for _ in 0..3 {
                let (mut a, mut b) = ([0u64; 64], [0u64; 64]);
                let (n, m) = nest(3, &mut a, &mut b);
                assert_eq!(n, Some(m));
                assert_eq!(a[1..m], b[1..m]);
            }
            STACK.with(|s| assert!(s.hi.get() > s.lo.get(), "bounds learned at the first walk"));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_new_thread_learns_its_own_stack() {
        std::thread::spawn(|| {
            let mut a = [0u64; 8];
            fast(&mut a);
            STACK.with(|s| {
                assert!(s.hi.get() > s.lo.get());
                s.lo.set(8);
                s.hi.set(16);
                s.new_thread();
            });
            fast(&mut a);
            let here = core::ptr::from_ref(&a).addr() as u64;
            STACK.with(|s| assert!(s.lo.get() <= here && here < s.hi.get(), "learned again, not the old bounds"));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn tags_and_slots_give_back_the_address() {
        for addr in [0x1000u64, 0x5555_5555_4abc, 0x7fff_ffff_ffff, 0x40_1234] {
            let tag = addr >> 12;
            let low = (slot(addr) as u64 ^ tag) & (SLOTS as u64 - 1);
            assert_eq!(tag << 12 | low, addr);
        }
    }

    #[test]
    fn the_memo_keeps_a_rule_while_its_return_address_stays() {
        let s = Stack::default();
        s.reached(3, 0x1234);
        assert_eq!(s.rules[3].get(), UNKNOWN, "a new return address: no rule yet");
        s.rules[3].set(42);
        s.reached(3, 0x1234);
        assert_eq!(s.rules[3].get(), 42, "the same: kept");
        s.reached(3, 0x1235);
        assert_eq!(s.rules[3].get(), UNKNOWN, "another: forgotten");
        assert_eq!(s.frames(3)[2].get(), 0x1235, "frame 3 is the third captured");
        assert_eq!(s.frames(usize::MAX).len(), MEMO - 1);
        s.forget_rules();
        assert!(s.rules.iter().all(|r| r.get() == UNKNOWN));
    }

    #[test]
    fn rules_round_trip() {
        // rsp + 16, rbp saved at CFA - 16: the usual `push rbp` prologue before `mov rbp, rsp`.
        let r = (16 << OFF_SHIFT) | (2 << RBP_SHIFT);
        assert_eq!(r & CFA_RBP, 0);
        assert_eq!((r & RULE_MASK) >> OFF_SHIFT & OFF_MAX as u64, 16);
        assert_eq!(r >> RBP_SHIFT, 2);
        assert_ne!(r, FALLBACK);
        assert_ne!(r, END);
    }
}
