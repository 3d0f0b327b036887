"""The Loom numerics contract, executable (docs/isa.md, "Numerics", says it in words).

Every function here is a fixed sequence of IEEE-754 binary32 operations (add, sub,
mul, compare, select, integer ops on bit patterns), each rounded to nearest-even, with
subnormals kept. numpy's float32 arithmetic is exactly that (no FMA contraction), so
these functions are both the reference the RTL must match bit for bit and the
implementation the ISA model runs. NaN results are canonicalised to 0x7fc00000.

All functions take and return float32 numpy arrays of any shape.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
CANONICAL_NAN_BITS = 0x7FC00000
CANONICAL_NAN = np.array(CANONICAL_NAN_BITS, dtype=np.uint32).view(np.float32)[()]
BF16_CANONICAL_NAN = 0x7FC0
MIN_NORMAL = F32(2.0**-126)


def bits_f32(bits: int | np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def f32_bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def canon_nan(x: np.ndarray) -> np.ndarray:
    """Replace every NaN by the canonical quiet NaN (in place when x is writable)."""
    x = np.asarray(x, dtype=np.float32)
    mask = np.isnan(x)
    if mask.any():
        x = np.where(mask, CANONICAL_NAN, x).astype(np.float32)
    return x


# ---------------------------------------------------------------- bf16 conversion
def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 bit pattern, round to nearest even; NaN -> 0x7fc0; overflow -> inf."""
    u = f32_bits(x).astype(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(BF16_CANONICAL_NAN), rounded).astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    """bf16 bit pattern -> fp32 (exact)."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """fp32 -> nearest bf16 value, returned as fp32."""
    return bf16_bits_to_f32(f32_to_bf16_bits(x))


def load_values(raw: np.ndarray, bf16: bool, to_spad: bool) -> np.ndarray:
    """What a DRAM -> SRAM transfer (DMA_LD, GATHER) writes for raw DRAM elements (fp32
    values, or bf16 bit patterns when bf16): bf16 widens exactly, fp32 into the
    scratchpad rounds to bf16 (RNE); NaN canonical."""
    if bf16:
        return canon_nan(bf16_bits_to_f32(raw))
    return canon_nan(round_bf16(raw) if to_spad else raw)


# ---------------------------------------------------------------- basic operations
def vmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(a, b) = a if a > b else b; NaN if either is NaN. (max(+0, -0) = -0.)"""
    out = np.where(a > b, a, b).astype(np.float32)
    return np.where(np.isnan(a) | np.isnan(b), CANONICAL_NAN, out).astype(np.float32)


def vmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min(a, b) = a if a < b else b; NaN if either is NaN."""
    out = np.where(a < b, a, b).astype(np.float32)
    return np.where(np.isnan(a) | np.isnan(b), CANONICAL_NAN, out).astype(np.float32)


# ---------------------------------------------------------------- comparisons, selects
# VBIN comparisons (ISA v5): 1.0 where a op b holds, else +0.0. IEEE comparison: a NaN
# operand makes every comparison false except NE (true); -0 == +0; subnormals compare by
# value (no flushing); +-inf compare as the extremes.
COMPARISONS = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}


@np.errstate(all="ignore")
def compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1.0 / +0.0 mask of the IEEE comparison `op` (eq ne lt le gt ge)."""
    hit = COMPARISONS[op](np.asarray(a, np.float32), np.asarray(b, np.float32))
    return np.where(hit, ONE, np.float32(0.0)).astype(np.float32)


def keep(a: np.ndarray, b: np.ndarray, imm: np.float32) -> np.ndarray:
    """a where b != 0 (a NaN b counts as nonzero, +-0 as zero), else imm; NaN canonical."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return canon_nan(np.where(b != 0, a, np.float32(imm)).astype(np.float32))


def fill(a: np.ndarray, b: np.ndarray, imm: np.float32) -> np.ndarray:
    """imm where b != 0, else a (masked_fill); NaN canonical."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return canon_nan(np.where(b != 0, np.float32(imm), a).astype(np.float32))


def _pow2(k: np.ndarray) -> np.ndarray:
    """2**k as fp32 for integer k in [-126, 127] (built from the exponent field)."""
    return ((k.astype(np.int32) + 127).astype(np.uint32) << 23).view(np.float32)


# ---------------------------------------------------------------- exp
EXP_HI = F32(88.72283935546875)  # 0x42b17218: above this, exp overflows -> +inf
EXP_LO = F32(-87.33654022216797)  # 0xc2aeac4f: ln(2^-126); below this the result is 0
LOG2E = bits_f32(0x3FB8AA3B)[()]
ROUND_MAGIC = F32(12582912.0)  # 1.5 * 2^23: x + M - M rounds x to an integer (RNE)
LN2_HI = F32(0.693359375)  # 0x3f318000, 9 significant bits: k * LN2_HI is exact
LN2_LO = bits_f32(0xB95E8083)[()]  # ln2 - LN2_HI
EXP_POLY = bits_f32(
    [0x3F800000, 0x3F800000, 0x3EFFFFFD, 0x3E2AAA06, 0x3D2AAC71, 0x3C093656, 0x3AB543D6]
)  # c0..c6 of e^r on |r| <= ln2/2


@np.errstate(all="ignore")
def exp(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    xc = np.minimum(np.maximum(x, EXP_LO), EXP_HI)  # NaN handled at the end
    xc = np.where(np.isnan(xc), F32(0), xc).astype(np.float32)
    k = (xc * LOG2E + ROUND_MAGIC) - ROUND_MAGIC  # round(x / ln2), |k| <= 128
    r = (xc - k * LN2_HI) - k * LN2_LO  # |r| <= ~0.347
    p = np.full_like(r, EXP_POLY[6])
    for c in EXP_POLY[5::-1]:
        p = p * r + c
    ki = k.astype(np.int32)
    k_half = ki >> 1  # split 2^k in two so neither factor leaves the normal range
    y = (p * _pow2(k_half)) * _pow2(ki - k_half)
    y = np.where(x > EXP_HI, F32(np.inf), y)
    y = np.where(x < EXP_LO, F32(0), y)
    return np.where(np.isnan(x), CANONICAL_NAN, y).astype(np.float32)


# ---------------------------------------------------------------- reciprocal
ONE = F32(1.0)
RECIP_MAGIC = np.uint32(0x7EF311C3)
RECIP_NEWTON_STEPS = 2
TWO = F32(2.0)
BIG = F32(2.0**126)


@np.errstate(all="ignore")  # overflow in lanes that the selects below replace
def recip(x: np.ndarray) -> np.ndarray:
    """1/x: bit-trick seed, two Newton steps y <- y * (2 - a*y), then one residual
    correction y <- y + y * (1 - a*y) (makes powers of two exact). Subnormal x ->
    +-inf, |x| >= 2^126 -> +-0 (the true result would be subnormal)."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    y = (RECIP_MAGIC - np.minimum(f32_bits(a), np.uint32(0x7E800000))).view(np.float32)
    for _ in range(RECIP_NEWTON_STEPS):
        y = y * (TWO - a * y)
    y = y + y * (ONE - a * y)
    y = np.where(a < MIN_NORMAL, F32(np.inf), y)
    y = np.where(a >= BIG, F32(0), y)
    y = np.where(np.signbit(x), -y, y)
    return np.where(np.isnan(x), CANONICAL_NAN, y).astype(np.float32)


# ---------------------------------------------------------------- rsqrt
RSQRT_MAGIC = np.uint32(0x5F3759DF)
RSQRT_NEWTON_STEPS = 2
HALF = F32(0.5)
THREE_HALVES = F32(1.5)


@np.errstate(all="ignore")
def rsqrt(x: np.ndarray) -> np.ndarray:
    """1/sqrt(x): bit-trick seed, two Newton steps y <- y * (1.5 - (0.5*x) * (y*y)),
    then one residual correction y <- y + y * (0.5 - (0.5*x) * (y*y)).
    x < 0 -> NaN; +-0 and subnormal x -> +inf; +inf -> +0."""
    x = np.asarray(x, dtype=np.float32)
    a = np.where(x >= MIN_NORMAL, x, F32(1)).astype(np.float32)
    a = np.where(np.isinf(a), F32(1), a)
    y = (RSQRT_MAGIC - (f32_bits(a) >> np.uint32(1))).view(np.float32)
    h = HALF * a
    for _ in range(RSQRT_NEWTON_STEPS):
        y = y * (THREE_HALVES - h * (y * y))
    y = y + y * (HALF - h * (y * y))
    y = np.where(x < MIN_NORMAL, F32(np.inf), y)
    y = np.where(np.isposinf(x), F32(0), y)
    return np.where(np.isnan(x) | (x < 0), CANONICAL_NAN, y).astype(np.float32)


# ---------------------------------------------------------------- tanh
TANH_SMALL = F32(0.625)
TANH_POLY = bits_f32([0xBEAAAA9B, 0x3E0883C3, 0xBD5C235C, 0x3CA930BE, 0xBBBB6623])


@np.errstate(all="ignore")
def tanh(x: np.ndarray) -> np.ndarray:
    """|x| < 0.625: x + x*x^2*P(x^2); else sign(x) * (1 - 2 * recip(exp(2|x|) + 1))."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    x2 = x * x
    p = np.full_like(x2, TANH_POLY[4])
    for c in TANH_POLY[3::-1]:
        p = p * x2 + c
    small = x + x * (x2 * p)
    e = exp(a + a)
    large = ONE - TWO * recip(e + ONE)
    large = np.where(np.signbit(x), -large, large)
    y = np.where(a < TANH_SMALL, small, large)
    return np.where(np.isnan(x), CANONICAL_NAN, y).astype(np.float32)


# ---------------------------------------------------------------- erf
# Two polynomials fitted (weighted minimax, then rounded to fp32) for this sequence;
# bench/special_functions.md has the measured error (about 1.3 ulp over the domain).
ERF_SMALL = F32(0.9375)  # 0x3f700000: below, erf(x)/x - 1 as a polynomial in x^2
ERF_SAT = F32(4.0)  # 0x40800000: at and above, 1 - erf(x) < 2^-25 and the result is 1
ERF_SMALL_POLY = bits_f32(
    [0x3E0375D4, 0xBEC093A1, 0x3DE716FA, 0xBCDC065A, 0x3BAA5AF4, 0xBA54CF88, 0x38AD61BC]
)  # c0..c6 of erf(x)/x - 1 in s = x^2 on |x| < 0.9375 (c0 = 2/sqrt(pi) - 1)
ERF_LARGE_POLY = bits_f32(
    [0xB9767E78, 0xBF905255, 0xBF233063, 0xBDD45B78, 0x3CB520C9, 0xBB458598, 0x394A52AD]
)  # d0..d6 of log(erfc(t)) in t = |x| on [0.9375, 4]


@np.errstate(all="ignore")
def erf(x: np.ndarray) -> np.ndarray:
    """|x| < 0.9375: x + x * P(x^2) (P of degree 6, Horner); else
    sign(x) * (1 - exp(Q(|x|))) with Q of degree 6 (Horner) approximating log(erfc(|x|)),
    and 1 for |x| >= 4. erfc is approximated through its logarithm because log(erfc(t))
    is smooth (about -t^2 - log(t sqrt(pi))) where erfc itself falls by 8 orders of
    magnitude, and because 1 - erfc then needs erfc only to a relative error that exp
    already meets. Subnormals are kept (x + x * P rounds like any add); +-0 -> +-0;
    +-inf -> +-1; NaN -> NaN."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    s = x * x
    p = np.full_like(s, ERF_SMALL_POLY[6])
    for c in ERF_SMALL_POLY[5::-1]:
        p = p * s + c
    small = x + x * p
    q = np.full_like(a, ERF_LARGE_POLY[6])
    for c in ERF_LARGE_POLY[5::-1]:
        q = q * a + c
    large = ONE - exp(q)
    large = np.where(a >= ERF_SAT, ONE, large)
    large = np.where(np.signbit(x), -large, large)
    y = np.where(a < ERF_SMALL, small, large)
    return np.where(np.isnan(x), CANONICAL_NAN, y).astype(np.float32)


# ---------------------------------------------------------------- reductions
def reduce_rows(a: np.ndarray, lanes: int, op: str) -> np.ndarray:
    """Row reduction of a[rows, cols] in the hardware's order: lane l accumulates
    columns l, l+lanes, l+2*lanes, ... in sequence from the identity; then the lane
    partials combine in a pairwise tree (p[i] = p[2i] op p[2i+1], log2(lanes) levels).
    Identity: -0.0 for sum (exact for every x), -inf for max."""
    rows, cols = a.shape
    chunks = -(-cols // lanes)
    identity = F32(-0.0) if op == "sum" else F32(-np.inf)
    padded = np.full((rows, chunks * lanes), identity, dtype=np.float32)
    padded[:, :cols] = a
    padded = padded.reshape(rows, chunks, lanes)
    combine = np.add if op == "sum" else vmax
    part = np.full((rows, lanes), identity, dtype=np.float32)
    for c in range(chunks):
        part = combine(part, padded[:, c, :]).astype(np.float32)
    while part.shape[1] > 1:
        part = combine(part[:, 0::2], part[:, 1::2]).astype(np.float32)
    return canon_nan(part[:, 0])


# ---------------------------------------------------------------- for the RTL
def rtl_constants() -> dict[str, tuple[int, int]]:
    """Every constant the RTL's floating-point functions (rtl/loom_fp_pkg.sv) use, by its
    SystemVerilog name: (width in bits, value). contract/gen.py writes them into
    rtl/loom_pkg.sv, so the RTL computes with exactly these."""

    def f32(x) -> tuple[int, int]:
        return 32, int(f32_bits(np.float32(x)))

    out = {
        "F32CanonNan": (32, CANONICAL_NAN_BITS),
        "F32PosInf": f32(np.inf),
        "F32One": f32(ONE),
        "F32Two": f32(TWO),
        "F32Half": f32(HALF),
        "F32ThreeHalves": f32(THREE_HALVES),
        "F32MinNormal": f32(MIN_NORMAL),
        "F32Big": f32(BIG),
        "Bf16CanonNan": (16, BF16_CANONICAL_NAN),
        "ExpHi": f32(EXP_HI),
        "ExpLo": f32(EXP_LO),
        "Log2E": f32(LOG2E),
        "RoundMagic": f32(ROUND_MAGIC),
        "Ln2Hi": f32(LN2_HI),
        "Ln2Lo": f32(LN2_LO),
        **{f"ExpC{i}": f32(c) for i, c in enumerate(EXP_POLY)},
        "RecipMagic": (32, int(RECIP_MAGIC)),
        "RecipNewtonSteps": (32, RECIP_NEWTON_STEPS),
        "RsqrtMagic": (32, int(RSQRT_MAGIC)),
        "RsqrtNewtonSteps": (32, RSQRT_NEWTON_STEPS),
        "TanhSmall": f32(TANH_SMALL),
        **{f"TanhC{i}": f32(c) for i, c in enumerate(TANH_POLY)},
        "ErfSmall": f32(ERF_SMALL),
        "ErfSat": f32(ERF_SAT),
        **{f"ErfP{i}": f32(c) for i, c in enumerate(ERF_SMALL_POLY)},
        **{f"ErfQ{i}": f32(c) for i, c in enumerate(ERF_LARGE_POLY)},
    }
    return out
