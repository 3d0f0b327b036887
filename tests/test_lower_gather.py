"""aten.index_select and aten.index.Tensor on the device (compiler/ops/gather.py):
GATHER for runtime indices (and constants of many runs), strided DMA copies for
constant indices of few arithmetic runs. Gathers only move values, so every result has
PyTorch's bits exactly (fp32 compared as int32 patterns)."""

import pytest
import torch
from lowering_helpers import Fn

import compiler
import sim
from compiler.ops.gather import arithmetic_runs

gen = torch.Generator().manual_seed(0)
X = torch.randn(3, 5, 37, generator=gen)  # odd sizes, not multiples of the line
SCATTERED = torch.tensor([4, 0, 2, 2, 1, 3, 0])  # many runs: GATHER
RUNS = torch.tensor([1, 2, 3, 0, 0, 4])  # three runs: copies


def same_bits(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype == torch.float32:
        return torch.equal(got.view(torch.int32), want.view(torch.int32))
    return torch.equal(got.to(want.dtype).view(torch.int16), want.view(torch.int16))


def on_device(fn, inputs, op):
    program = compiler.compile(Fn(fn), inputs)
    report = program.meta["report"]
    assert report["cpu_fallback"] == [], report["ops"]
    assert report["ops"][op]["device"] == report["ops"][op]["count"] == 1
    return program


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("kind", ["runtime", "constant", "runs"])
def test_index_select_any_dim(dim, kind):
    size = X.shape[dim]
    index = (SCATTERED if kind != "runs" else RUNS) % size
    if kind == "runtime":
        fn, inputs = (lambda x, i: torch.index_select(x, dim, i)), (X, index)
    else:
        fn, inputs = (lambda x: torch.index_select(x, dim, index)), (X,)
    program = on_device(fn, inputs, "aten.index_select.default")
    assert same_bits(program(*inputs), fn(*inputs))


def test_index_select_of_a_permuted_view_and_bf16():
    x = X.transpose(1, 2).contiguous().transpose(1, 2)  # strided input

    def fn(x, i, y, j):
        return torch.index_select(x.transpose(1, 2), 1, i), torch.index_select(y, 0, j)

    inputs = (x, torch.tensor([36, 3, 3, 0]), X[0].bfloat16(), torch.tensor([4, 0, 4]))
    program = compiler.compile(Fn(fn), inputs)
    assert program.meta["report"]["cpu_fallback"] == []
    got, want = program(*inputs), fn(*inputs)
    assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))


INDEXING = {
    "runtime_dim1": (lambda x, i: x[:, i], torch.tensor([4, 1, 1, 0])),
    "runtime_dim0": (lambda x, i: x[i], torch.tensor([2, 0])),
    "runtime_2d_index_last_dim": (lambda x, i: x[:, :, i], torch.tensor([[1, 36], [0, 5]])),
    "constant_negative": (lambda x: x[:, torch.tensor([-1, 0, -2])], None),
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_index_tensor_one_index(name):
    fn, index = INDEXING[name]
    inputs = (X,) if index is None else (X, index)
    program = on_device(fn, inputs, "aten.index.Tensor")
    assert same_bits(program(*inputs), fn(*inputs))


def test_two_index_tensors_fall_back_with_a_reason():
    def fn(x, i):
        return x[i, i]

    inputs = (X, torch.tensor([2, 0]))
    program = compiler.compile(Fn(fn), inputs)
    reasons = program.meta["report"]["ops"]["aten.index.Tensor"]["reasons"]
    assert "2 index tensors" in reasons[0]
    assert torch.equal(program(*inputs), fn(*inputs))


def test_arithmetic_runs():
    assert arithmetic_runs([1, 2, 3, 0, 0, 4]) == [(1, 1, 3), (0, 0, 2), (4, 0, 1)]
    assert arithmetic_runs([4, 3, 2]) == [(4, 0, 1), (3, 0, 1), (2, 0, 1)]
    assert arithmetic_runs([0, 2, 4, 6]) == [(0, 2, 4)]


@pytest.mark.rtl
def test_gathers_on_the_rtl():
    def fn(x, i):
        return (
            torch.index_select(x, 1, i),  # GATHER per prefix
            torch.index_select(x, 2, i),  # transposed GATHER
            torch.index_select(x, 0, RUNS % 3),  # copies
        )

    inputs = (X, SCATTERED % 5)
    program = compiler.compile(Fn(fn), inputs)
    assert program.meta["report"]["cpu_fallback"] == []
    result = sim.run(program, inputs, backend="verilator", check=False)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    assert all(same_bits(g, w) for g, w in zip(result.outputs, fn(*inputs), strict=True))
