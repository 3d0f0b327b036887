"""The Loom numerics contract (contract/numerics.py) on torch tensors, for the torch
backend: the same fixed sequences of binary32 operations, so results are bit-identical
with the ISA model on any device whose fp32 add/mul/compare are IEEE round-to-nearest-
even with subnormals kept (CPU; CUDA, whose eager kernels run one operation each, so
nothing is contracted into an FMA). tests/test_torch_backend.py checks every function
against contract/numerics.py over random values and the special classes.

Bit manipulation runs on int64 copies of the fp32 patterns (torch has no unsigned
32-bit arithmetic on every device).
"""

from __future__ import annotations

import torch

from contract import numerics as nx

F32 = torch.float32
_MASK32 = 0xFFFFFFFF


def _f(x: float) -> float:
    """A Python float that holds the fp32 constant exactly."""
    return float(x)


def bits(x: torch.Tensor) -> torch.Tensor:
    """fp32 -> its bit pattern as a non-negative int64."""
    return x.contiguous().view(torch.int32).to(torch.int64) & _MASK32


def from_bits(u: torch.Tensor) -> torch.Tensor:
    """Bit pattern (int64, low 32 bits) -> fp32."""
    u = u & _MASK32
    return torch.where(u >= 2**31, u - 2**32, u).to(torch.int32).view(F32)


# Scalar constants live on the device once: creating them per call would copy from the
# host each time, which a CUDA graph capture does not allow (and costs on every run).
_CONSTANTS: dict[tuple, torch.Tensor] = {}


def _cached(key: tuple, make) -> torch.Tensor:
    t = _CONSTANTS.get(key)
    if t is None:
        t = _CONSTANTS[key] = make()
    return t


def canonical_nan(like: torch.Tensor) -> torch.Tensor:
    return _cached(
        ("nan", like.device),
        lambda: torch.tensor(nx.CANONICAL_NAN_BITS, dtype=torch.int32, device=like.device).view(
            F32
        ),
    )


# nan_to_num with NaN as the replacement writes float("nan") as fp32, 0x7fc00000: the
# canonical NaN, in one kernel (infinities kept). tests/test_torch_backend.py checks it.
_INF = float("inf")


def canon_nan(x: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(x, nan=float("nan"), posinf=_INF, neginf=-_INF)


def store_canon(dst: torch.Tensor, x: torch.Tensor) -> None:
    """dst <- x with every NaN made canonical, in place (one kernel, any strides)."""
    torch.nan_to_num(x, nan=float("nan"), posinf=_INF, neginf=-_INF, out=dst)


# ---------------------------------------------------------------- bf16 conversion
# torch's own fp32 -> bfloat16 cast rounds to nearest even (overflow to inf), and
# bfloat16 -> fp32 is exact: the contract's conversions, with NaN made canonical here.
def f32_to_bf16(x: torch.Tensor) -> torch.Tensor:
    """fp32 -> bf16 bit pattern as int16 storage, RNE; NaN -> 0x7fc0."""
    b = x.to(torch.bfloat16).view(torch.int16)
    nan = _cached(
        ("bf16 nan", x.device),
        lambda: torch.tensor(nx.BF16_CANONICAL_NAN, dtype=torch.int16, device=x.device),
    )
    return torch.where(torch.isnan(x), nan, b)


def bf16_to_f32(b: torch.Tensor) -> torch.Tensor:
    """bf16 bit pattern (int16 storage) -> fp32, exact."""
    return b.view(torch.bfloat16).to(F32)


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    return bf16_to_f32(f32_to_bf16(x))


def load_values(
    raw: torch.Tensor, bf16: bool, to_spad: bool, out: torch.Tensor | None = None
) -> torch.Tensor:
    """contract.numerics.load_values: what DMA_LD and GATHER write into SRAM for raw
    DRAM elements (fp32, or bf16 patterns as int16 when bf16); into `out` when given."""
    vals = bf16_to_f32(raw) if bf16 else (round_bf16(raw) if to_spad else raw)
    if out is None:
        return canon_nan(vals)
    store_canon(out, vals)
    return out


# ---------------------------------------------------------------- basic operations
def vmax(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.where(a > b, a, b)
    return torch.where(torch.isnan(a) | torch.isnan(b), canonical_nan(out), out)


def vmin(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = torch.where(a < b, a, b)
    return torch.where(torch.isnan(a) | torch.isnan(b), canonical_nan(out), out)


_COMPARISONS = {
    "eq": torch.eq,
    "ne": torch.ne,
    "lt": torch.lt,
    "le": torch.le,
    "gt": torch.gt,
    "ge": torch.ge,
}


def compare(op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """contract.numerics.compare: 1.0 / +0.0 (IEEE comparisons, as torch's)."""
    return _COMPARISONS[op](a, b).to(torch.float32)


def keep(a: torch.Tensor, b: torch.Tensor, imm: torch.Tensor) -> torch.Tensor:
    """contract.numerics.keep: a where b != 0, else imm (NaN made canonical on store)."""
    return torch.where(b != 0, a, imm)


def fill(a: torch.Tensor, b: torch.Tensor, imm: torch.Tensor) -> torch.Tensor:
    """contract.numerics.fill: imm where b != 0, else a (NaN made canonical on store)."""
    return torch.where(b != 0, imm, a)


def _pow2(k: torch.Tensor) -> torch.Tensor:
    return ((k.to(torch.int64) + 127) << 23).to(torch.int32).view(F32)


def _const(x, like: torch.Tensor) -> torch.Tensor:
    value = float(x)
    return _cached(  # keyed by the exact value: -0.0 and 0.0 must stay apart
        (value.hex(), like.device), lambda: torch.tensor(value, dtype=F32, device=like.device)
    )


def exp(x: torch.Tensor) -> torch.Tensor:
    hi, lo = _const(nx.EXP_HI, x), _const(nx.EXP_LO, x)
    xc = torch.minimum(torch.maximum(x, lo), hi)
    xc = torch.where(torch.isnan(xc), torch.zeros_like(xc), xc)
    magic = _const(nx.ROUND_MAGIC, x)
    k = (xc * _const(nx.LOG2E, x) + magic) - magic
    r = (xc - k * _const(nx.LN2_HI, x)) - k * _const(nx.LN2_LO, x)
    p = torch.full_like(r, float(nx.EXP_POLY[6]))
    for c in nx.EXP_POLY[5::-1]:
        p = p * r + _const(c, x)
    ki = k.to(torch.int32)
    k_half = ki >> 1
    y = (p * _pow2(k_half)) * _pow2(ki - k_half)
    y = torch.where(x > hi, torch.full_like(y, float("inf")), y)
    y = torch.where(x < lo, torch.zeros_like(y), y)
    return torch.where(torch.isnan(x), canonical_nan(y), y)


def recip(x: torch.Tensor) -> torch.Tensor:
    a = torch.abs(x)
    seed = int(nx.RECIP_MAGIC) - torch.clamp(bits(a), max=0x7E800000)
    y = from_bits(seed)
    one, two = _const(1.0, x), _const(2.0, x)
    for _ in range(nx.RECIP_NEWTON_STEPS):
        y = y * (two - a * y)
    y = y + y * (one - a * y)
    y = torch.where(a < _const(nx.MIN_NORMAL, x), torch.full_like(y, float("inf")), y)
    y = torch.where(a >= _const(nx.BIG, x), torch.zeros_like(y), y)
    y = torch.where(torch.signbit(x), -y, y)
    return torch.where(torch.isnan(x), canonical_nan(y), y)


def rsqrt(x: torch.Tensor) -> torch.Tensor:
    one = _const(1.0, x)
    a = torch.where(x >= _const(nx.MIN_NORMAL, x), x, one)
    a = torch.where(torch.isinf(a), one, a)
    y = from_bits(int(nx.RSQRT_MAGIC) - (bits(a) >> 1))
    h = _const(nx.HALF, x) * a
    three_halves, half = _const(nx.THREE_HALVES, x), _const(nx.HALF, x)
    for _ in range(nx.RSQRT_NEWTON_STEPS):
        y = y * (three_halves - h * (y * y))
    y = y + y * (half - h * (y * y))
    y = torch.where(x < _const(nx.MIN_NORMAL, x), torch.full_like(y, float("inf")), y)
    y = torch.where(torch.isposinf(x), torch.zeros_like(y), y)
    return torch.where(torch.isnan(x) | (x < 0), canonical_nan(y), y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    a = torch.abs(x)
    x2 = x * x
    p = torch.full_like(x2, float(nx.TANH_POLY[4]))
    for c in nx.TANH_POLY[3::-1]:
        p = p * x2 + _const(c, x)
    small = x + x * (x2 * p)
    e = exp(a + a)
    one, two = _const(1.0, x), _const(2.0, x)
    large = one - two * recip(e + one)
    large = torch.where(torch.signbit(x), -large, large)
    y = torch.where(a < _const(nx.TANH_SMALL, x), small, large)
    return torch.where(torch.isnan(x), canonical_nan(y), y)


def erf(x: torch.Tensor) -> torch.Tensor:
    a = torch.abs(x)
    s = x * x
    p = torch.full_like(s, float(nx.ERF_SMALL_POLY[6]))
    for c in nx.ERF_SMALL_POLY[5::-1]:
        p = p * s + _const(c, x)
    small = x + x * p
    q = torch.full_like(a, float(nx.ERF_LARGE_POLY[6]))
    for c in nx.ERF_LARGE_POLY[5::-1]:
        q = q * a + _const(c, x)
    one = _const(1.0, x)
    large = one - exp(q)
    large = torch.where(a >= _const(nx.ERF_SAT, x), one, large)
    large = torch.where(torch.signbit(x), -large, large)
    y = torch.where(a < _const(nx.ERF_SMALL, x), small, large)
    return torch.where(torch.isnan(x), canonical_nan(y), y)


# ---------------------------------------------------------------- reductions
def reduce_rows(a: torch.Tensor, lanes: int, op: str) -> torch.Tensor:
    """contract.numerics.reduce_rows over the last dim of a [..., rows, cols]: lane
    partials in column order, then a pairwise tree over the lanes."""
    *lead, cols = a.shape
    chunks = -(-cols // lanes)
    identity = -0.0 if op == "sum" else float("-inf")
    padded = torch.full((*lead, chunks * lanes), identity, dtype=F32, device=a.device)
    padded[..., :cols] = a
    padded = padded.reshape(*lead, chunks, lanes)
    combine = torch.add if op == "sum" else vmax
    part = torch.full((*lead, lanes), identity, dtype=F32, device=a.device)
    for c in range(chunks):
        part = combine(part, padded[..., c, :])
    while part.shape[-1] > 1:
        part = combine(part[..., 0::2], part[..., 1::2])
    return canon_nan(part[..., 0])
