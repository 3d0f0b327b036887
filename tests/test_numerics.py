"""The numerics contract: bf16 rounding, special functions, reductions."""

import math

import numpy as np
import pytest
import scalar_reference as sr
import torch

from contract import numerics as nx

RNG = np.random.default_rng(1)


def random_f32(n):
    """Random bit patterns: every sign, exponent and mantissa region."""
    return RNG.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def test_bf16_rounding_matches_torch():
    x = random_f32(200_000)
    x = x[~np.isnan(x)]
    ours = nx.f32_to_bf16_bits(x)
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy()
    np.testing.assert_array_equal(ours, theirs.view(np.uint16))


def test_bf16_corners():
    cases = {
        0x3F808000: 0x3F80,  # tie, even below -> down
        0x3F818000: 0x3F82,  # tie, odd below -> up
        0x7F7FFFFF: 0x7F80,  # max finite rounds to inf
        0x00000001: 0x0000,  # smallest subnormal rounds to zero
        0x80000000: 0x8000,  # -0 stays -0
        0x7F800001: 0x7FC0,  # signalling NaN -> canonical
        0xFFC12345: 0x7FC0,  # negative NaN -> canonical
    }
    got = nx.f32_to_bf16_bits(nx.bits_f32(np.array(list(cases), dtype=np.uint32)))
    assert [hex(v) for v in got] == [hex(v) for v in cases.values()]


def _ulp(got, exact):
    ref = exact.astype(np.float32)
    return np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(ref)).astype(np.float64)


@pytest.mark.parametrize(
    "name,fn,ref,lo,hi,log",
    [
        ("exp", nx.exp, np.exp, -87.3, 88.7, False),
        ("tanh", nx.tanh, np.tanh, -20, 20, False),
        ("recip", nx.recip, lambda x: 1 / x, 1e-37, 1e37, True),
        ("rsqrt", nx.rsqrt, lambda x: 1 / np.sqrt(x), 1e-37, 1e38, True),
    ],
)
def test_special_function_accuracy(name, fn, ref, lo, hi, log):
    x = (
        np.exp(RNG.uniform(np.log(lo), np.log(hi), 300_000))
        if log
        else RNG.uniform(lo, hi, 300_000)
    )
    x = x.astype(np.float32)
    if name == "recip":
        x = np.concatenate([x, -x])
    err = _ulp(fn(x), ref(x.astype(np.float64)))
    assert err.max() <= 3.0, f"{name}: {err.max():.2f} ulp"


def test_special_values():
    inf, nan = np.float32(np.inf), np.float32(np.nan)
    f = np.float32
    assert nx.exp(np.array([inf, -inf, f(100), f(-100), f(0)], f)).tolist() == [
        np.inf,
        0.0,
        np.inf,
        0.0,
        1.0,
    ]
    assert nx.recip(np.array([f(0), f(-0.0), inf, f(4)], f)).tolist() == [
        np.inf,
        -np.inf,
        0.0,
        0.25,
    ]
    assert nx.rsqrt(np.array([f(0), inf, f(4)], f)).tolist() == [np.inf, 0.0, 0.5]
    assert np.isnan(nx.rsqrt(np.array([f(-1)], f)))[0]
    assert nx.tanh(np.array([inf, -inf, f(0)], f)).tolist() == [1.0, -1.0, 0.0]
    assert nx.erf(np.array([inf, -inf, f(0), f(-0.0), f(4), f(-1e30)], f)).tolist() == [
        1.0, -1.0, 0.0, -0.0, 1.0, -1.0,
    ]  # fmt: skip
    assert np.signbit(nx.erf(np.array([-0.0], f)))[0]
    for fn in (nx.exp, nx.recip, nx.rsqrt, nx.tanh, nx.erf):
        out = fn(np.array([nan], f))
        assert out.view(np.uint32)[0] == nx.CANONICAL_NAN_BITS


def test_erf_accuracy_against_math_erf():
    """erf within 2 ulp of math.erf (double) over a dense sample of every region: a
    uniform grid and random values over [-6, 6], both switch points and their neighbours,
    every exponent down to the subnormals, and the saturated tails."""
    f = np.float32
    edges = np.array([nx.ERF_SMALL, nx.ERF_SAT, 2.0**-126], f).view(np.uint32).astype(np.int64)
    near = ((edges[:, None] + np.arange(-50, 51)[None, :]) % 2**32).astype(np.uint32)
    x = np.concatenate(
        [
            np.linspace(-6, 6, 120_001, dtype=f),
            RNG.uniform(-4.5, 4.5, 100_000).astype(f),
            near.ravel().view(f),
            f(2.0) ** -RNG.uniform(0, 149, 20_000).astype(f),  # every exponent, subnormals
            RNG.integers(1, 0x00800000, 2000, dtype=np.uint32).view(f),  # subnormals
            np.exp(RNG.uniform(np.log(4), np.log(3e38), 2000)).astype(f),  # saturated tail
        ]
    )
    x = np.concatenate([x, -x])
    exact = np.array([math.erf(float(v)) for v in x])
    err = _ulp(nx.erf(x), exact)
    assert err.max() <= 2.0, f"erf: {err.max():.2f} ulp at x={x[np.argmax(err)]!r}"
    # Past the saturation point erf is +-1 in fp32 (1 - erf(4) < 2^-25, half an ulp).
    assert 1.0 - math.erf(float(nx.ERF_SAT)) < 2.0**-25


def test_max_rule_and_nan():
    f = np.float32
    a = np.array([0.0, -0.0, 1.0, np.nan], f)
    b = np.array([-0.0, 0.0, np.nan, 1.0], f)
    out = nx.vmax(a, b)
    assert np.signbit(out[0]) and not np.signbit(out[1])
    assert np.isnan(out[2]) and np.isnan(out[3])


def _reduce_reference(row, lanes, op):
    """Scalar, independent formulation of the lane-then-tree order."""
    ident = np.float32(-0.0) if op == "sum" else np.float32(-np.inf)

    def comb(x, y):
        if op == "sum":
            return np.float32(x + y)
        if np.isnan(x) or np.isnan(y):
            return np.float32(np.nan)
        return x if x > y else y

    part = [ident] * lanes
    for c, v in enumerate(row):
        part[c % lanes] = comb(part[c % lanes], np.float32(v))
    while len(part) > 1:
        part = [comb(part[2 * i], part[2 * i + 1]) for i in range(len(part) // 2)]
    return part[0]


@pytest.mark.parametrize("op", ["sum", "max"])
@pytest.mark.parametrize("cols", [1, 5, 16, 17, 100])
def test_reduction_order(op, cols):
    a = (RNG.standard_normal((3, cols)) * 10 ** RNG.uniform(-3, 3, (3, cols))).astype(np.float32)
    got = nx.reduce_rows(a, 16, op)
    want = np.array([_reduce_reference(r, 16, op) for r in a], np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize(
    ("name", "scalar"),
    [
        ("exp", sr.exp),
        ("recip", sr.recip),
        ("rsqrt", sr.rsqrt),
        ("tanh", sr.tanh),
        ("erf", sr.erf),
        ("round_bf16", sr.round_bf16),
    ],
)
def test_vectorised_functions_match_the_scalar_formulation(name, scalar):
    """contract.numerics (numpy, vectorised) computes the documented sequence: bit for bit
    the scalar formulation, over random bit patterns of every class, each function's
    switch points and their neighbours."""
    edges = np.array(
        [
            nx.EXP_HI,
            nx.EXP_LO,
            nx.MIN_NORMAL,
            nx.BIG,
            nx.TANH_SMALL,
            nx.ERF_SMALL,
            nx.ERF_SAT,
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1.0,
        ],
        dtype=np.float32,
    )
    steps = np.arange(-2, 3, dtype=np.int64)[None, :]  # the neighbouring bit patterns
    near = ((edges.view(np.uint32).astype(np.int64)[:, None] + steps) % 2**32).astype(np.uint32)
    near = near.view(np.float32)
    x = np.concatenate(
        [
            random_f32(20_000),
            (RNG.standard_normal(5000) * 20).astype(np.float32),
            edges,
            -near.ravel(),
            near.ravel(),
        ]
    )
    with np.errstate(all="ignore"):
        got = getattr(nx, name)(x)
    want = np.array([scalar(float(v)) for v in x], dtype=np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
