//! The natural logarithm and exponential the sampler needs, and a sample's weight.
//!
//! Written here rather than taken from `f64::ln` / `f64::exp`: those call libm's `log` and `exp`,
//! and those two calls were the only reason `libtemporal_slab.so` loaded libm into every C
//! program (about 470 KiB of RSS in a small one). Accurate to about 1e-13 relative, far past what
//! drawing sample gaps needs.
//!
//! Every constant they use lies in one 64-byte-aligned block ([`C`]), read through an opaque
//! reference so that the compiler does not scatter them over its constant pool: a sample comes
//! after the program has evicted the sampler's data, and the series' constants, one 8-byte
//! literal each among the whole binary's, were 8 cache misses of a sample's 60 (`callgrind` with
//! a 512 KiB last level). Polynomials in Horner form, with no division in their loops.

/// The constants, by 64-byte line: `ln` (line 0); the gap, the weight's series and the
/// estimates (line 1); `exp`, for objects large against the mean only (lines 2 and 3).
#[repr(C, align(64))]
struct Constants {
    /// `1 / (2k + 3)`, k = 0..7: the odd series of `atanh` after its first term.
    atanh: [f64; 7],
    ln_2: f64,
    sqrt_2: f64,
    one: f64,
    half: f64,
    /// 2^-53: 53 random bits to a fraction.
    unit: f64,
    /// Objects smaller than this fraction of the mean take the weight's series.
    series_max: f64,
    /// `1 / 12`: the weight's series.
    twelfth: f64,
    /// `table::FIXED`.
    fixed: f64,
    /// Gaps and estimates are capped here (2^62) before they become integers.
    max_integer: f64,
    /// Below this `exp` returns 0 (2^-1021 and less).
    exp_min: f64,
    inv_ln_2: f64,
    /// `1 / n!`, n = 0..=12: `exp` on `|r| <= ln 2 / 2` (the next term is below 2e-16).
    exp: [f64; 13],
}

const fn inv_factorials() -> [f64; 13] {
    let mut out = [1.0; 13];
    let mut n = 1;
    while n < 13 {
        out[n] = out[n - 1] / n as f64;
        n += 1;
    }
    out
}

static C: Constants = Constants {
    atanh: [1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0, 1.0 / 11.0, 1.0 / 13.0, 1.0 / 15.0],
    ln_2: core::f64::consts::LN_2,
    sqrt_2: core::f64::consts::SQRT_2,
    one: 1.0,
    half: 0.5,
    unit: 1.0 / (1u64 << 53) as f64,
    series_max: 1.0 / 32.0,
    twelfth: 1.0 / 12.0,
    fixed: super::table::FIXED,
    max_integer: (1u64 << 62) as f64,
    exp_min: -708.0,
    inv_ln_2: core::f64::consts::LOG2_E,
    exp: inv_factorials(),
};

const _: () =
    assert!(core::mem::offset_of!(Constants, sqrt_2) == 64 && core::mem::offset_of!(Constants, exp_min) == 128);

/// [`C`], through a reference the optimiser cannot see through (else it folds the loads back
/// into scattered literals).
#[inline(always)]
fn c() -> &'static Constants {
    core::hint::black_box(&C)
}

/// `v` as a float, for `v` below 2^63 (sizes and means; the conversion from u64 would use two
/// more literals).
#[inline(always)]
fn float(v: u64) -> f64 {
    v.min(i64::MAX as u64) as i64 as f64
}

/// `v` clamped to `[0, 2^62]` (NaN: 0) as an integer (the saturating `as` would test it
/// against literals).
#[inline(always)]
fn integer(v: f64) -> u64 {
    // `max` returns its other operand for NaN.
    let v = v.max(0.0).min(c().max_integer);
    // SAFETY: v is finite and in [0, 2^62] after the clamp, which an i64 holds.
    unsafe { v.to_int_unchecked::<i64>() as u64 }
}

/// `ln(x)` for a normal (not subnormal), finite `x > 0` (the sampler's uniform draw, in (0, 1]).
pub(crate) fn ln(x: f64) -> f64 {
    let c = c();
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)); ln(m) = 2 atanh(s), s = (m - 1) / (m + 1),
    // |s| < 0.172: 2 (s + s^3 / 3 + ... + s^15 / 15), the next term below 1e-14 of the sum.
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > c.sqrt_2 {
        m *= c.half;
        e += 1;
    }
    let s = (m - c.one) / (m + c.one);
    let s2 = s * s;
    let mut p = c.atanh[6];
    for k in (0..6).rev() {
        p = p * s2 + c.atanh[k];
    }
    let atanh = s + s * s2 * p;
    e as f64 * c.ln_2 + (atanh + atanh)
}

/// An exponentially distributed gap with mean `mean` from 64 random bits `r`, in [1, 2^48].
pub(crate) fn exponential(r: u64, mean: u64) -> u64 {
    let c = c();
    // Uniform in (0, 1]: never 0, so the logarithm is finite (and at most 53 ln 2 in size).
    let u = float((r >> 11) + 1) * c.unit;
    let gap = (0.0 - ln(u)) * float(mean);
    integer(gap).clamp(1, 1 << 48)
}

/// `exp(x)` for `x <= 0` (the weight's `exp(-size / mean)`); 0 below about -708 (and for NaN).
pub(crate) fn exp(x: f64) -> f64 {
    let c = c();
    if x.is_nan() || x < c.exp_min {
        return 0.0;
    }
    // x = k ln 2 + r with |r| <= ln 2 / 2 (k rounded to nearest: x <= 0, so truncating x / ln 2
    // - 1/2 toward zero rounds it); exp(r) by its series, then times 2^k.
    // SAFETY: x is in [-708, 0], so the value is finite and within [-1022, 0].
    let k = unsafe { (x * c.inv_ln_2 - c.half).to_int_unchecked::<i64>() };
    let r = x - k as f64 * c.ln_2;
    let mut p = c.exp[12];
    for n in (0..12).rev() {
        p = p * r + c.exp[n];
    }
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// The weight of one sample of `size` bytes at sampling mean `mean`: how many such objects it
/// stands for, `1 / (1 - exp(-size / mean))`. For objects small against the mean (all small
/// objects at the default), by its series `1/x + 1/2 + x/12` (the next term, `x^3 / 720`, is
/// below 2e-9 of the sum there).
pub(crate) fn weight(size: u64, mean: u64) -> f64 {
    let c = c();
    if mean == 0 {
        return c.one;
    }
    let x = float(size) / float(mean);
    if x > 0.0 && x < c.series_max {
        return c.one / x + c.half + x * c.twelfth;
    }
    let q = c.one - exp(0.0 - x);
    if q <= 0.0 {
        c.one
    } else {
        c.one / q
    }
}

/// A sample's estimates for its site's sums: the objects it stands for x `table::FIXED`, and
/// their bytes (each capped at 2^62).
pub(crate) fn estimates(size: u64, mean: u64) -> (u64, u64) {
    let c = c();
    let w = weight(size, mean);
    (integer(w * c.fixed), integer(w * float(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_grow_for_objects_small_against_the_mean() {
        assert!((weight(1 << 30, 512 << 10) - 1.0).abs() < 1e-9, "huge objects are always sampled");
        let w = weight(64, 512 << 10);
        assert!((w - (512 << 10) as f64 / 64.0).abs() / w < 0.001, "small: about mean / size, got {w}");
        assert_eq!(weight(64, 0), 1.0);
        assert_eq!(weight(0, 1 << 20), 1.0, "an empty object stands for itself");
    }

    #[test]
    fn the_weight_series_meets_the_exact_form() {
        let mean = 2u64 << 20;
        for size in [1u64, 8, 64, 1000, 4096, 32 << 10, 65535, 65536, 65537, 1 << 20, 8 << 20] {
            let x = size as f64 / mean as f64;
            let want = 1.0 / (1.0 - (-x).exp());
            let got = weight(size, mean);
            assert!((got - want).abs() <= 1e-8 * want, "weight({size}) = {got}, not {want}");
        }
    }

    #[test]
    fn estimates_are_the_weight_in_fixed_point_and_bytes() {
        let (objects, bytes) = estimates(64, 2 << 20);
        let w = weight(64, 2 << 20);
        assert_eq!(objects, (w * super::super::table::FIXED) as u64);
        assert_eq!(bytes, (w * 64.0) as u64);
        assert_eq!(estimates(1 << 40, 1 << 20), (super::super::table::FIXED as u64, 1 << 40), "always sampled");
        let (huge, _) = estimates(1, u64::MAX);
        assert_eq!(huge, 1 << 62, "capped");
    }

    #[test]
    fn gaps_are_drawn_within_their_bounds() {
        assert_eq!(exponential(u64::MAX, 1 << 20), 1, "u = 1: the shortest gap");
        assert_eq!(exponential(0, u64::MAX), 1 << 48, "the longest");
        let g = exponential(1 << 63, 1 << 20);
        assert!((g as f64 - (1u64 << 20) as f64 * core::f64::consts::LN_2).abs() < 2.0, "u = 1/2: mean ln 2, got {g}");
    }

    #[test]
    fn ln_and_exp_match_the_standard_library() {
        let mut x = 1e-300;
        while x <= 1.0 {
            let (got, want) = (ln(x), x.ln());
            assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "ln({x}) = {got}, not {want}");
            x *= 1.37;
        }
        assert_eq!(ln(1.0), 0.0);
        let mut y = 0.0;
        while y > -700.0 {
            let (got, want) = (exp(y), y.exp());
            assert!((got - want).abs() <= 1e-12 * want, "exp({y}) = {got}, not {want}");
            y -= 0.731;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f64::NAN), 0.0);
    }
}
