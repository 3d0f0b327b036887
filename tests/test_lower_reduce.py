"""Reductions (sum, mean, amax, amin over any dims), RMSNorm, softmax and log_softmax
over any dim on the device, against float64 formulations of their own (numpy), on the
ISA model; RMSNorm and softmax over the first dim through the RTL in lockstep."""

import numpy as np
import pytest
import torch
from lowering_helpers import Fn

import compiler
import sim
from compiler.ops.norm import halley_log_steps
from sim.cli.models import build

# Odd sizes: no dim a multiple of the 16-lane line.
X = torch.randn(5, 37, 19, generator=torch.Generator().manual_seed(0))
XD = X.double().numpy()


def on_device(module, *inputs, hw=None):
    """(the program, its result on the ISA model); every op ran on the device."""
    program = compiler.compile(module, inputs, hw=hw)
    assert program.meta["report"]["cpu_fallback"] == []
    return program, program(*inputs)


# name -> (torch formulation, numpy float64 formulation, dims, keepdim)
SUMS = {
    "sum_last": (lambda x: x.sum(-1), lambda a: a.sum(-1)),
    "sum_middle_keepdim": (lambda x: x.sum(1, keepdim=True), lambda a: a.sum(1, keepdims=True)),
    "sum_first": (lambda x: x.sum(0), lambda a: a.sum(0)),
    "sum_first_and_last": (lambda x: x.sum((0, 2)), lambda a: a.sum((0, 2))),
    "sum_all": (lambda x: x.sum(), lambda a: a.sum()),
    "mean_last_keepdim": (lambda x: x.mean(-1, keepdim=True), lambda a: a.mean(-1, keepdims=True)),
    "mean_middle": (lambda x: x.mean(1), lambda a: a.mean(1)),
    "mean_first_keepdim": (lambda x: x.mean(0, keepdim=True), lambda a: a.mean(0, keepdims=True)),
    "mean_last_two": (lambda x: x.mean((-2, -1)), lambda a: a.mean((-2, -1))),
    "mean_all": (lambda x: x.mean(), lambda a: a.mean()),
}


@pytest.mark.parametrize("name", list(SUMS))
def test_sum_and_mean(name):
    fn, reference = SUMS[name]
    _, got = on_device(Fn(fn), X)
    want = reference(XD)
    assert got.shape == want.shape
    # fp32 summation: error within a few ulps of the sum of magnitudes it reduces.
    scale = np.abs(reference(np.abs(XD)))
    assert np.all(np.abs(got.double().numpy() - want) <= 1e-6 * scale)


EXTREMES = {
    "amax_last": (lambda x: x.amax(-1), lambda a: a.max(-1)),
    "amax_middle_keepdim": (lambda x: x.amax(1, keepdim=True), lambda a: a.max(1, keepdims=True)),
    "amax_first": (lambda x: x.amax(0), lambda a: a.max(0)),
    "amax_first_and_last_keepdim": (
        lambda x: x.amax((0, 2), keepdim=True),
        lambda a: a.max((0, 2), keepdims=True),
    ),
    "amin_middle": (lambda x: x.amin(1), lambda a: a.min(1)),
    "amin_all": (lambda x: x.amin((0, 1, 2)), lambda a: a.min()),
}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_amax_and_amin_are_exact(name):
    fn, reference = EXTREMES[name]
    _, got = on_device(Fn(fn), X)
    want = reference(XD)
    assert got.shape == want.shape
    assert np.array_equal(got.double().numpy(), want)


def test_rows_longer_than_a_tile_and_strided_views():
    """A run longer than one ACC tile is reduced in chunks; a permuted input is read
    through its strides."""
    long_rows = torch.randn(3, 5000, generator=torch.Generator().manual_seed(1))
    _, got = on_device(Fn(lambda x: x.sum(-1)), long_rows)
    want = long_rows.double().sum(-1)
    assert torch.all((got - want).abs() <= 1e-6 * long_rows.double().abs().sum(-1))
    _, got = on_device(Fn(lambda x: x.permute(2, 0, 1).amax(-1)), X)
    assert torch.equal(got, X.permute(2, 0, 1).amax(-1))


class RMSNorm(torch.nn.Module):
    """As in Llama: x * rsqrt(mean(x^2, -1) + eps) * weight."""

    def __init__(self, width, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(width) + 0.5)
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def rms_norm_reference(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def test_rms_norm():
    norm = RMSNorm(19).eval()
    program, got = on_device(norm, X)
    assert program.meta["report"]["ops"]["aten.mean.dim"]["device"] == 1
    want = rms_norm_reference(XD, norm.weight.detach().double().numpy(), norm.eps)
    assert np.abs(got.double().numpy() - want).max() <= 1e-6 * np.abs(want).max()


def softmax_reference(x: np.ndarray, dim: int) -> np.ndarray:
    e = np.exp(x - x.max(dim, keepdims=True))
    return e / e.sum(dim, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_over_any_dim(dim):
    _, got = on_device(Fn(lambda x: torch.softmax(x * 3, dim)), X)
    want = softmax_reference(XD * 3, dim)
    assert np.abs(got.double().numpy() - want).max() <= 1e-6


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_softmax_over_any_dim(dim):
    # Rows of every spread: the denominator takes values from ~1 (one dominant term)
    # to the row length (all terms equal), the range the log's step count covers.
    spread = torch.logspace(-3, 1.5, 37)[:, None]
    x = X * spread
    _, got = on_device(Fn(lambda x: torch.log_softmax(x, dim)), x)
    a = x.double().numpy()
    shifted = a - a.max(dim, keepdims=True)
    want = shifted - np.log(np.exp(shifted).sum(dim, keepdims=True))
    # As close as PyTorch's own fp32 log_softmax: a few fp32 ulps of max(|y|, 1).
    err = np.abs(got.double().numpy() - want) / np.maximum(np.abs(want), 1.0)
    assert err.max() <= 4 * 2.0**-23
    torch_err = np.abs(torch.log_softmax(x, dim).double().numpy() - want)
    assert (err * np.maximum(np.abs(want), 1.0)).max() <= 2 * torch_err.max() + 2.0**-22


def test_log_steps_cover_the_denominator_range():
    """Halley's iteration from log(C) / 2: cubic once close, so few steps even for a
    GPT-2 vocabulary."""
    assert [halley_log_steps(c) for c in (1, 2, 19, 50257)] == [1, 3, 3, 5]


def test_unsupported_patterns_fall_back_with_a_reason():
    ids = torch.arange(12, dtype=torch.int32).reshape(3, 4)
    program = compiler.compile(Fn(lambda x: x.sum(-1)), (ids,))
    reasons = program.meta["report"]["ops"]["aten.sum.dim_IntList"]["reasons"]
    assert reasons and "int32" in reasons[0]
    assert torch.equal(program(ids), ids.sum(-1).to(program(ids).dtype))


def test_llama_tiny_runs_rms_norm_on_the_device():
    spec = build("llama-tiny")
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    ops = program.meta["report"]["ops"]
    assert ops["aten.mean.dim"] == {"count": 5, "device": 5, "reasons": []}
    assert not [op for op in program.meta["host_ops"] if "mean" in op["target"]]


@pytest.mark.rtl
def test_rms_norm_and_softmax_over_the_first_dim_on_rtl():
    """One program (one simulator start): every instruction in lockstep with the ISA
    model, the DRAM image bit-exact with it at the end of the segment."""
    norm = RMSNorm(19).eval()

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = norm

        def forward(self, x):
            return self.norm(x), torch.softmax(x, 0), torch.log_softmax(x, 1)

    program = compiler.compile(Both().eval(), (X,))
    assert program.meta["report"]["cpu_fallback"] == []
    result = sim.run(program, (X,), backend="verilator", check=False)
    assert result.passed and not result.stats["isa_mismatches"]
    for got, want in zip(result.outputs, program(X), strict=True):
        assert torch.equal(got, want)
