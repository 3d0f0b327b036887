"""Comparisons, masks, where and masked_fill on the device (ISA v5 VBIN eq ... ge, keep,
fill), against PyTorch on the ISA model: exact, since masks and selects only move
values (NaNs become the canonical NaN: compared as NaN)."""

import pytest
import torch
from lowering_helpers import Fn

import compiler
import sim

NAN = float("nan")
INF = float("inf")
SPECIAL = [0.0, -0.0, INF, -INF, NAN, 1e-45, -1e-45, 1.0, -1.0, 2.0, 0.5, -3.0e38]


def specials(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * 2
    flat = x.reshape(-1)
    idx = torch.randperm(flat.numel(), generator=g)[: 3 * len(SPECIAL)]
    flat[idx] = torch.tensor(SPECIAL * 3)
    return x


def same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Bit-identical, except that any NaN equals any NaN (NaNs become canonical)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype == torch.bool:
        return torch.equal(got, want)
    nan = torch.isnan(want)
    return torch.equal(torch.isnan(got), nan) and torch.equal(
        got[~nan].view(torch.int32), want[~nan].view(torch.int32)
    )


X, Y = specials(3, 5, 40, seed=1), specials(3, 5, 40, seed=2)
Y[0, 0, :12] = torch.tensor(SPECIAL)
X[0, 0, :12] = torch.tensor(SPECIAL[::-1])
X[0, 1, :12] = torch.tensor(SPECIAL)  # every special against itself too
Y[0, 1, :12] = torch.tensor(SPECIAL)


def _tensor_case(op):
    return lambda x, y: torch.where(getattr(x, op)(y), x, y)


def _scalar_case(op):
    return lambda x, y: torch.where(getattr(x, op)(0.5), y, x)


COMPARISONS = ("gt", "lt", "ge", "le", "eq", "ne")
CASES = {
    # Six comparisons, Tensor and Scalar overloads, through where (masks stay on device)
    **{f"{op}_tensor": _tensor_case(op) for op in COMPARISONS},
    **{f"{op}_scalar": _scalar_case(op) for op in COMPARISONS},
    "eq_zero_signed": lambda x, y: torch.where(x == -0.0, y, 7.0),  # -0 == +0
    "scalar_rounds_to_fp32": lambda x, y: torch.where(x > 0.1, x, -INF),
    "masked_fill_inf": lambda x, y: x.masked_fill(y > 0, -INF),
    "masked_fill_nan": lambda x, y: x.masked_fill(y.isnan().logical_not() & (y < 0), NAN),
    "where_scalars": lambda x, y: torch.where(x >= y, 1.5, -0.0),
    "where_row_broadcast": lambda x, y: torch.where(y[:, :1, :] != 0, x, y),
    "logical": lambda x, y: torch.where(((x > 0) | (y > 0)) & ~(x == y), x, y),
    "logical_xor": lambda x, y: torch.where(torch.logical_xor(x > 0, y < 0), x, y),
    "logical_on_floats": lambda x, y: torch.where(torch.logical_and(x, y), x, y),
}


@pytest.mark.parametrize("name", list(CASES))
def test_select_matches_pytorch_exactly(name):
    module = Fn(CASES[name])
    program = compiler.compile(module, (X, Y))
    report = program.meta["report"]
    assert report["cpu_fallback"] == [], report["cpu_fallback"]
    assert same(program(X, Y), module(X, Y))


def test_bool_inputs_constants_and_outputs():
    """A bool model input reaches the device through a host _to_copy; a bool constant
    becomes an fp32 constant; a mask that is a model output is computed on the host
    (a real bool tensor), its other uses read it converted."""
    keep = torch.rand(5, 40) > 0.5

    def fn(x, b):
        m = x > 0
        return torch.where(b, x, -x), torch.where(keep, x, 0.0), m, torch.where(m, x, 1.0)

    module = Fn(fn)
    b = torch.rand(5, 40) > 0.5
    x = specials(5, 40, seed=3)
    program = compiler.compile(module, (x, b))
    hosts = [op["target"] for op in program.meta["host_ops"]]
    assert "aten.where.self" not in hosts
    assert hosts.count("aten._to_copy.default") == 2  # the input b and the output mask m
    for got, want in zip(program(x, b), module(x, b), strict=True):
        assert same(got, want)


class PaddedAttention(torch.nn.Module):
    """Attention over a batch with a runtime padding mask computed from an input (token
    ids, 0 = padding) by a comparison, masked_fill(-inf) before the softmax."""

    def __init__(self, d=32):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k = torch.nn.Linear(d, d), torch.nn.Linear(d, d)

    def forward(self, x, ids):
        pad = (ids == 0)[:, None, :]  # [B, 1, S]
        s = self.q(x) @ self.k(x).transpose(-1, -2) / 4.0
        s = s.masked_fill(pad, -INF)
        return torch.softmax(s, dim=-1)


def padded_inputs():
    torch.manual_seed(1)
    x = torch.randn(2, 16, 32)
    ids = torch.randint(1, 9, (2, 16)).float()
    ids[0, 11:] = 0
    ids[1, 5:] = 0
    return x, ids


def test_runtime_padding_mask_on_the_device():
    model = PaddedAttention().eval()
    x, ids = padded_inputs()
    program = compiler.compile(model, (x, ids))
    assert program.meta["report"]["cpu_fallback"] == []
    assert [s["kind"] for s in program.segments] == ["device"]
    got, want = program(x, ids), model(x, ids)
    assert torch.equal(got == 0, want == 0)  # masked keys get exactly 0
    assert (got - want).abs().max() < 2e-2


@pytest.mark.rtl
def test_runtime_padding_mask_on_rtl():
    model = PaddedAttention().eval()
    x, ids = padded_inputs()
    program = compiler.compile(model, (x, ids))
    result = sim.run(program, (x, ids), backend="verilator", check=True)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    ref = sim.run(program, (x, ids), backend="ref", check=False)
    assert torch.equal(result.outputs[0], ref.outputs[0])
    assert torch.equal(result.outputs[0] == 0, model(x, ids) == 0)
