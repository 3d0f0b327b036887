"""Block-level test of the RTL floating-point functions (rtl/loom_fp_pkg.sv) against the
numerics contract: fp32 add, sub and mul, bf16 x bf16 -> fp32 mul, fp32 -> bf16, max,
min, and the special functions exp, recip, rsqrt, tanh and erf. Over 1.4 million vectors each:
random bit patterns plus every corner class (zeros, subnormals, infinities, NaNs,
overflow, underflow, rounding ties, cancellation); for the special functions also their
working ranges and every switch point of the contract with its neighbouring bit
patterns. Bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from contract import numerics as nx
from contract.hw import DEFAULT_HW

pytestmark = pytest.mark.rtl

N_RANDOM = 1_000_000


def _corner_values() -> np.ndarray:
    specials = [
        0x00000000, 0x80000000,  # zeros
        0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00400000,  # subnormals
        0x00800000, 0x80800000, 0x00800001,  # smallest normals
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000, 0x7E800000,  # largest / overflow-prone
        0x7F800000, 0xFF800000,  # infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFFFFFFFF,  # NaNs (quiet, signalling)
        0x3F800000, 0xBF800000, 0x3F800001, 0x3F7FFFFF, 0x33800000, 0x34000000,
        0x3F808000, 0x3F818000, 0x3F80C000, 0x3F7F8000, 0x4B000001,  # bf16 / fp32 ties
        0x1F800000, 0x20000000, 0x5F800000, 0x60000000,  # products that under/overflow
    ]  # fmt: skip
    return np.array(specials, dtype=np.uint32)


def _vectors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    corners = _corner_values()
    ca, cb = np.meshgrid(corners, corners)
    a = [ca.ravel(), rng.integers(0, 2**32, N_RANDOM, dtype=np.uint64).astype(np.uint32)]
    b = [cb.ravel(), rng.integers(0, 2**32, N_RANDOM, dtype=np.uint64).astype(np.uint32)]
    # Close exponents: cancellation in add, ties in rounding.
    n = 200_000
    base = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    a.append(base)
    b.append(base ^ rng.integers(0, 1 << 24, n, dtype=np.uint32) ^ np.uint32(0x80000000))
    # Tiny operands: subnormal results and products.
    tiny = rng.integers(0, 0x04000000, (2, n), dtype=np.uint32)
    sign = rng.integers(0, 2, (2, n), dtype=np.uint32) << 31
    a.append(tiny[0] | sign[0])
    b.append(tiny[1] | sign[1])
    return np.concatenate(a), np.concatenate(b)


def _thresholds() -> np.ndarray:
    """Each special function's switch points (docs/isa.md) and the bit patterns around
    them, both signs."""
    points = np.array(
        [nx.EXP_HI, nx.EXP_LO, nx.MIN_NORMAL, nx.BIG, nx.TANH_SMALL, nx.ERF_SMALL, nx.ERF_SAT]
        + [1.0, 0.0, np.inf],
        dtype=np.float32,
    ).view(np.uint32)
    near = (points.astype(np.int64)[:, None] + np.arange(-3, 4)[None, :]) % 2**32
    near = near.astype(np.uint32).ravel()
    return np.concatenate([near, near | np.uint32(0x80000000)])


def _unary_operands(rng: np.random.Generator, n: int) -> np.ndarray:
    """n operands of the special functions, in four parts: random bit patterns, random
    positive bit patterns (every exponent of recip and rsqrt), exp's working range and
    tanh's, then the switch points."""
    quarter = n // 4
    parts = [
        rng.integers(0, 2**32, quarter, dtype=np.uint64).astype(np.uint32),
        rng.integers(0, 0x7F800000, quarter, dtype=np.uint32),
        rng.uniform(-100, 100, quarter).astype(np.float32).view(np.uint32),
        rng.uniform(-12, 12, n - 3 * quarter).astype(np.float32).view(np.uint32),
    ]
    out = np.concatenate(parts)
    thresholds = _thresholds()
    out[: thresholds.size] = thresholds
    return out


def _expected(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
    fa, fb = a.view(np.float32), b.view(np.float32)
    ha = nx.bf16_bits_to_f32((a >> 16).astype(np.uint16))
    hb = nx.bf16_bits_to_f32((b >> 16).astype(np.uint16))
    fu = u.view(np.float32)
    with np.errstate(all="ignore"):
        return {
            "add": nx.canon_nan(fa + fb).view(np.uint32),
            "mul": nx.canon_nan(fa * fb).view(np.uint32),
            "bf16_mul": nx.canon_nan(ha * hb).view(np.uint32),
            "to_bf16": nx.f32_to_bf16_bits(fa).astype(np.uint32),
            "max": nx.vmax(fa, fb).view(np.uint32),
            "min": nx.vmin(fa, fb).view(np.uint32),
            "sub": nx.canon_nan(fa - fb).view(np.uint32),
            "exp": nx.exp(fu).view(np.uint32),
            "recip": nx.recip(fu).view(np.uint32),
            "rsqrt": nx.rsqrt(fu).view(np.uint32),
            "tanh": nx.tanh(fu).view(np.uint32),
            "erf": nx.erf(fu).view(np.uint32),
        }


def test_fp_functions_bit_exact(tmp_path):
    from cocotb_tools.runner import get_runner

    from sim.rtl import build as rtl_build

    build = rtl_build.build(
        DEFAULT_HW,
        toplevel="loom_fpu_tb",
        extra_sources=[rtl_build.HDL_DIR / "loom_fpu_tb.sv"],
        control_file="loom_fpu_tb.vlt",
    )
    rng = np.random.default_rng(1234)
    a, b = _vectors(rng)
    u = _unary_operands(rng, a.size)
    records = np.zeros((a.size, 16), dtype=np.uint32)
    records[:, 0], records[:, 1], records[:, 2] = a, b, u
    path = tmp_path / "vectors.bin"
    records.tofile(path)
    rtl_build.apply_toolchain_env()
    get_runner("verilator").test(
        test_module="testbench.fpu",
        hdl_toplevel="loom_fpu_tb",
        hdl_toplevel_lang="verilog",
        build_dir=build.dir,
        test_dir=tmp_path,
        extra_env={"LOOM_FPU_FILE": str(path), "LOOM_FPU_COUNT": str(a.size)},
        results_xml=str(tmp_path / "results.xml"),
        log_file=tmp_path / "sim.log",
    )
    got = np.fromfile(path, dtype=np.uint32).reshape(-1, 16)
    assert got.shape[0] == a.size >= 1_000_000
    for col, (name, want) in enumerate(_expected(a, b, u).items(), start=3):
        bad = np.nonzero(got[:, col] != want)[0]
        assert bad.size == 0, (
            f"{name}: {bad.size} of {a.size} differ; first: a={a[bad[0]]:#010x}"
            f" b={b[bad[0]]:#010x} u={u[bad[0]]:#010x} RTL={got[bad[0], col]:#010x}"
            f" model={want[bad[0]]:#010x}"
        )
