"""Scalar formulations of the numerics contract (docs/isa.md), written apart from the code
they check: one Python float per element, every fp32 operation done in double and then
rounded to fp32 with struct (double has more than 2 x 24 + 2 bits, so that double
rounding is exact for +, - and x), bf16 conversion by integer arithmetic on the bit
pattern. The special functions follow the documented operation sequences; their
constants are the contract's (contract/numerics.py), the code is not."""

from __future__ import annotations

import math
import struct

from contract import numerics as nx

CANONICAL_NAN = struct.unpack("<f", struct.pack("<I", 0x7FC00000))[0]


def bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(u: int) -> float:
    return struct.unpack("<f", struct.pack("<I", u & 0xFFFFFFFF))[0]


def f32(x: float) -> float:
    """Round to the nearest fp32 (ties to even; overflow to infinity)."""
    if math.isnan(x):
        return CANONICAL_NAN
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def canon(x: float) -> float:
    return CANONICAL_NAN if math.isnan(x) else x


def add(a, b):
    return canon(f32(a + b))  # inf + -inf is NaN in double too


def sub(a, b):
    return canon(f32(a - b))


def mul(a, b):
    return canon(f32(a * b))  # as is inf * 0


def vmax(a, b):
    if math.isnan(a) or math.isnan(b):
        return CANONICAL_NAN
    return a if a > b else b


def vmin(a, b):
    if math.isnan(a) or math.isnan(b):
        return CANONICAL_NAN
    return a if a < b else b


# Comparisons (Python's float comparisons are IEEE's: NaN unordered, -0 == +0) and
# selects, with the immediate as the select's third operand.
def _mask(hit: bool) -> float:
    return 1.0 if hit else 0.0


COMPARE = {
    "veq": lambda a, b: _mask(a == b),
    "vne": lambda a, b: _mask(a != b),
    "vlt": lambda a, b: _mask(a < b),
    "vle": lambda a, b: _mask(a <= b),
    "vgt": lambda a, b: _mask(a > b),
    "vge": lambda a, b: _mask(a >= b),
}


def keep(a, b, imm):
    return canon(a if b != 0 else imm)


def fill(a, b, imm):
    return canon(imm if b != 0 else a)


# ---------------------------------------------------------------- bf16
def to_bf16_bits(x: float) -> int:
    """fp32 -> bf16 pattern: keep the high half, round the dropped low half to nearest,
    ties to the even kept value; NaN -> 0x7fc0."""
    if math.isnan(x):
        return 0x7FC0
    u = bits(x)
    high, low = u >> 16, u & 0xFFFF
    if low > 0x8000 or (low == 0x8000 and high & 1):
        high += 1  # carries into the exponent: the largest finite values become inf
    return high & 0xFFFF


def from_bf16_bits(b: int) -> float:
    return from_bits(b << 16)


def round_bf16(x: float) -> float:
    return from_bf16_bits(to_bf16_bits(x))


# ---------------------------------------------------------------- special functions
def _pow2(k: int) -> float:
    return from_bits((k + 127) << 23)


def exp(x: float) -> float:
    if math.isnan(x):
        return CANONICAL_NAN
    hi, lo = float(nx.EXP_HI), float(nx.EXP_LO)
    if x > hi:
        return math.inf
    if x < lo:
        return 0.0
    magic = float(nx.ROUND_MAGIC)
    k = sub(add(mul(x, float(nx.LOG2E)), magic), magic)
    r = sub(sub(x, mul(k, float(nx.LN2_HI))), mul(k, float(nx.LN2_LO)))
    p = float(nx.EXP_POLY[6])
    for c in reversed([float(c) for c in nx.EXP_POLY[:6]]):
        p = add(mul(p, r), c)
    ki = int(k)
    half = ki >> 1
    return mul(mul(p, _pow2(half)), _pow2(ki - half))


def recip(x: float) -> float:
    if math.isnan(x):
        return CANONICAL_NAN
    a = abs(x)
    if a < float(nx.MIN_NORMAL):
        y = math.inf
    elif a >= float(nx.BIG):
        y = 0.0
    else:
        y = from_bits(int(nx.RECIP_MAGIC) - min(bits(a), 0x7E800000))
        for _ in range(nx.RECIP_NEWTON_STEPS):
            y = mul(y, sub(2.0, mul(a, y)))
        y = add(y, mul(y, sub(1.0, mul(a, y))))
    return -y if math.copysign(1.0, x) < 0 else y


def rsqrt(x: float) -> float:
    if math.isnan(x) or x < 0:
        return CANONICAL_NAN
    if x < float(nx.MIN_NORMAL):
        return math.inf
    if math.isinf(x):
        return 0.0
    y = from_bits(int(nx.RSQRT_MAGIC) - (bits(x) >> 1))
    h = mul(0.5, x)
    for _ in range(nx.RSQRT_NEWTON_STEPS):
        y = mul(y, sub(1.5, mul(h, mul(y, y))))
    return add(y, mul(y, sub(0.5, mul(h, mul(y, y)))))


def tanh(x: float) -> float:
    if math.isnan(x):
        return CANONICAL_NAN
    a = abs(x)
    if a < float(nx.TANH_SMALL):
        x2 = mul(x, x)
        p = float(nx.TANH_POLY[4])
        for c in reversed([float(c) for c in nx.TANH_POLY[:4]]):
            p = add(mul(p, x2), c)
        return add(x, mul(x, mul(x2, p)))
    large = sub(1.0, mul(2.0, recip(add(exp(add(a, a)), 1.0))))
    return -large if math.copysign(1.0, x) < 0 else large


def erf(x: float) -> float:
    if math.isnan(x):
        return CANONICAL_NAN
    a = abs(x)
    if a < float(nx.ERF_SMALL):
        s = mul(x, x)
        p = float(nx.ERF_SMALL_POLY[6])
        for c in reversed([float(c) for c in nx.ERF_SMALL_POLY[:6]]):
            p = add(mul(p, s), c)
        return add(x, mul(x, p))
    if a >= float(nx.ERF_SAT):
        large = 1.0
    else:
        q = float(nx.ERF_LARGE_POLY[6])
        for c in reversed([float(c) for c in nx.ERF_LARGE_POLY[:6]]):
            q = add(mul(q, a), c)
        large = sub(1.0, exp(q))
    return -large if math.copysign(1.0, x) < 0 else large


# ---------------------------------------------------------------- reductions
def reduce_row(row: list[float], lanes: int, op: str) -> float:
    """Lane l combines columns l, l + lanes, ... from the identity; then the lanes
    combine pairwise (p[i] = p[2i] op p[2i+1]) until one is left."""
    combine = add if op == "sum" else vmax
    identity = -0.0 if op == "sum" else -math.inf
    part = [identity] * lanes
    for c, v in enumerate(row):
        part[c % lanes] = combine(part[c % lanes], v)
    while len(part) > 1:
        part = [combine(part[2 * i], part[2 * i + 1]) for i in range(len(part) // 2)]
    return canon(part[0])
