"""aten.cat on the device (compiler/ops/concat.py): concatenation along any dim, slices
as views, rotate-half and partial rotary embeddings, against PyTorch.

A concatenation only moves values, so every comparison here is exact: the device's
fp32 result has the same bits as PyTorch's (compared as int32 bit patterns, so -0.0 and
+0.0 differ), and a bf16 result converts to the same bf16 values. The rotary cases add
fp32 multiplies and adds, each one IEEE rounding on the device (docs/isa.md) as in
PyTorch, so they are exact too.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from lowering_helpers import Fn

import compiler
import sim
from compiler.context import LowerCtx
from compiler.emit import encode, segment_stream
from compiler.ir import BufferKind, VDType
from compiler.memplan import plan_memory
from compiler.ops.concat import cat_parts, concat, remap_rows, remap_tile
from compiler.verify import verify_stream
from contract.hw import DEFAULT_HW
from sim.ref import RefMachine


def same_bits(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Exactly PyTorch's values: fp32 bit for bit; lower precisions after converting the
    device's fp32 result to the reference dtype."""
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype == torch.float32:
        return torch.equal(got.view(torch.int32), want.view(torch.int32))
    return torch.equal(got.to(want.dtype).view(torch.int16), want.view(torch.int16))


def compile_on_device(fn, inputs):
    """Compile fn and check that no op fell back to the CPU."""
    program = compiler.compile(Fn(fn), inputs)
    assert program.meta["report"]["cpu_fallback"] == [], program.meta["report"]["ops"]
    return program


def cat_instructions(program) -> int:
    """Instructions the cat nodes themselves emit (copies); redirected producers emit
    theirs under their own node."""
    return sum(node.startswith("cat") for node in program.debug_nodes)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def heads(x, n_heads):
    """[b, t, n_heads * d] -> [b, n_heads, t, d], a permuted view as in attention."""
    b, t, width = x.shape
    return x.view(b, t, n_heads, width // n_heads).transpose(1, 2)


gen = torch.Generator().manual_seed(0)


def randn(*shape):
    return torch.randn(*shape, generator=gen)


# Odd sizes (not multiples of the 16-element SRAM line), 2 to 4 inputs; and the 2-D
# DMA tiles that copy them: one per input (along dim 1 of [2, n, 37], each batch's n rows
# are one DMA row of n * 37 elements, the batches one row stride apart).
CATS = {
    "dim0": (0, [(5, 37), (3, 37), (1, 37), (7, 37)], 4),
    "dim1": (1, [(2, 5, 37), (2, 3, 37), (2, 1, 37)], 3),
    "dim-1": (-1, [(5, 37), (5, 11)], 2),
    "dim-1_3d": (-1, [(2, 3, 5), (2, 3, 1), (2, 3, 19), (2, 3, 17)], 4),
}


@pytest.mark.parametrize("name", list(CATS))
def test_cat_of_inputs_copies_each_into_its_slice(name):
    dim, shapes, tiles = CATS[name]
    inputs = tuple(randn(*s) for s in shapes)
    inputs[0].view(-1)[0] = -0.0  # kept as -0.0: bits, not values, are compared

    def fn(*xs):
        return torch.cat(xs, dim=dim)

    program = compile_on_device(fn, inputs)
    assert same_bits(program(*inputs), fn(*inputs))
    # Model inputs have no producer to redirect: a load and a store per tile.
    assert cat_instructions(program) == 2 * tiles


@pytest.mark.parametrize("name", list(CATS))
def test_cat_of_device_results_is_written_in_place(name):
    """Each input is an element-wise result only the cat reads: its producer stores
    straight into the output's slice, and the cat emits nothing."""
    dim, shapes, _ = CATS[name]
    inputs = tuple(randn(*s) for s in shapes)

    def fn(*xs):
        return torch.cat([x * (i + 2) for i, x in enumerate(xs)], dim=dim)

    program = compile_on_device(fn, inputs)
    assert same_bits(program(*inputs), fn(*inputs))
    assert cat_instructions(program) == 0


def test_a_producer_read_elsewhere_is_copied():
    """x * 2 is also returned, so it keeps its own buffer and the cat copies it; the
    same tensor twice is copied twice."""
    x, y = randn(5, 37), randn(5, 11)

    def fn(x, y):
        doubled = x * 2
        twice = y + 1
        return torch.cat((doubled, twice, twice), dim=-1), doubled

    program = compile_on_device(fn, (x, y))
    got, want = program(x, y), fn(x, y)
    assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))
    assert cat_instructions(program) == 6


def test_slices_along_any_dim_are_views():
    """Slices (with steps, along every dim) cost no instruction; the cat reads them in
    place through the DMA's strides."""
    x = randn(6, 10, 37)

    def fn(x):
        parts = (x[1:4, ::3, :], x[:3, 2:6:2, 5:], x[::2, -1:, 1::2])
        return torch.cat(
            (parts[0][..., :18], parts[1][..., :18], parts[2][..., :18]), dim=1
        ), torch.cat((x[:, 3, :], x[:, 7, :]), dim=0)

    program = compile_on_device(fn, (x,))
    got, want = program(x), fn(x)
    assert all(same_bits(g, w) for g, w in zip(got, want, strict=True))
    ops = program.meta["report"]["ops"]
    assert ops["aten.slice.Tensor"]["view"] == ops["aten.slice.Tensor"]["count"]
    assert ops["aten.cat.default"]["device"] == 2


def test_rotate_half_of_attention_heads():
    """Llama's rotary embedding: q * cos + rotate_half(q) * sin on the permuted heads
    view of a projection; the negated half is written into the cat's output directly."""
    x = randn(1, 7, 4 * 16)
    cos, sin = randn(7, 16), randn(7, 16)

    def fn(x, cos, sin):
        q = heads(x, 4)  # [1, 4, 7, 16]
        return q * cos + rotate_half(q) * sin

    program = compile_on_device(fn, (x, cos, sin))
    assert same_bits(program(x, cos, sin), fn(x, cos, sin))
    # Only x1 is copied: one load and one store per head (the heads view has no single
    # row stride across heads).
    assert cat_instructions(program) == 2 * 4


@pytest.mark.parametrize("head_dim,rotary_dim", [(16, 4), (20, 6)])
def test_partial_rotary(head_dim, rotary_dim):
    """GPT-NeoX's rotary_pct: rotate the first rotary_dim of each head, pass the rest."""
    tokens, n_heads = 5, 3
    x = randn(1, tokens, n_heads * head_dim)
    cos, sin = randn(tokens, rotary_dim), randn(tokens, rotary_dim)

    def fn(x, cos, sin):
        q = heads(x, n_heads)  # [1, n_heads, tokens, head_dim]
        q_rot, q_pass = q[..., :rotary_dim], q[..., rotary_dim:]
        q_rot = q_rot * cos + rotate_half(q_rot) * sin
        return torch.cat((q_rot, q_pass), dim=-1)

    program = compile_on_device(fn, (x, cos, sin))
    assert same_bits(program(x, cos, sin), fn(x, cos, sin))


def test_bf16_inputs_concatenate_to_the_same_bf16_values():
    x, y = randn(5, 37).bfloat16(), randn(5, 11).bfloat16()

    def fn(x, y):
        return torch.cat((y, x), dim=-1)

    program = compile_on_device(fn, (x, y))
    assert same_bits(program(x, y), fn(x, y))


def test_bf16_dram_tensors_move_through_acc_unchanged():
    """bf16 in DRAM (as the compiler stores matrix-operand constants): DMA_LD widens
    into ACC, DMA_ST rounds back, so every bf16 bit pattern (NaN aside) survives."""
    hw = DEFAULT_HW
    ctx = LowerCtx(hw, stream := [], buffers := [])
    ctx.begin("cat")
    shapes = [(3, 37), (3, 11), (3, 5)]
    refs = [
        ctx.new_tensor(s, VDType.BF16, BufferKind.INPUT, f"in{i}") for i, s in enumerate(shapes)
    ]
    out = ctx.new_tensor((3, 53), VDType.BF16, BufferKind.OUTPUT, "out")
    concat(ctx, None, cat_parts(refs, [None] * 3, out, 1), out, 1)
    verify_stream(stream, buffers, hw)
    segmented = segment_stream(stream)
    plan = plan_memory(stream, buffers, segmented.code_bytes, hw)
    code, _ = encode(segmented.insns)

    # Every bf16 pattern that is not a NaN: subnormals, -0.0, infinities included.
    patterns = np.arange(1 << 16, dtype=np.uint16)
    finite = patterns[(patterns & 0x7F80) != 0x7F80]
    specials = np.array([0x7F80, 0xFF80, 0x8000, 0x0001, 0x807F], dtype=np.uint16)
    pool = np.concatenate([specials, np.random.default_rng(0).choice(finite, 400)])
    starts = np.cumsum([0] + [math.prod(s) for s in shapes])
    data = [pool[a:b].reshape(s) for a, b, s in zip(starts[:-1], starts[1:], shapes, strict=True)]

    dram = np.zeros(plan.total, dtype=np.uint8)
    for ref, values in zip(refs, data, strict=True):
        dram[ref.buffer.addr : ref.buffer.addr + values.nbytes] = values.view(np.uint8).ravel()
    machine = RefMachine(hw, dram)
    machine.run(code, 0)
    got = machine.dram[out.buffer.addr : out.buffer.addr + 2 * 3 * 53].view(np.uint16)
    np.testing.assert_array_equal(got.reshape(3, 53), np.concatenate(data, axis=1))


def test_integer_cat_falls_back_with_a_reason():
    emb = torch.nn.Embedding(20, 8)
    ids = torch.tensor([[1, 19, 3]])

    def fn(ids):
        return emb(torch.cat((ids, ids.flip(-1)), dim=-1))

    program = compiler.compile(Fn(fn), (ids,))
    reasons = program.meta["report"]["ops"]["aten.cat.default"]["reasons"]
    assert program.meta["report"]["cpu_fallback"] == ["aten.cat.default", "aten.flip.default"]
    assert "cat of torch.int64 tensors" in reasons[0]
    assert torch.equal(program(ids), fn(ids))


def test_redirected_tiles_match_the_element_map():
    """remap_tile and remap_rows against the element map itself, on every small tile of
    a [3, 4, 5] input concatenated into a [3, 9, 5] output along dim 1 (block 20,
    out_block 45)."""
    block, out_block, numel = 20, 45, 60

    def to_out(e):
        return (e // block) * out_block + e % block

    whole = split = 0
    for e0, rows, cols, rs, cs in itertools.product(
        range(0, 60, 3), range(1, 5), range(1, 6), (0, 1, 5, 20, 40), (1, 5, 20)
    ):
        elems = [[e0 + r * rs + c * cs for c in range(cols)] for r in range(rows)]
        if elems[-1][-1] >= numel:
            continue
        pieces = remap_rows(e0, rows, cols, rs, cs, block, out_block)
        if pieces is None:
            continue
        assert sum(n for _, n, *_ in pieces) == rows
        for row0, n, out_e0, out_rs, out_cs in pieces:
            for r in range(n):
                mapped = [out_e0 + r * out_rs + c * out_cs for c in range(cols)]
                assert mapped == [to_out(e) for e in elems[row0 + r]], (e0, rows, cols, rs, cs)
        whole += len(pieces) == 1
        split += len(pieces) > 1
        assert (len(pieces) == 1) == (
            remap_tile(e0, rows, cols, rs, cs, block, out_block) is not None
        )
    assert whole > 500 and split > 50, (whole, split)
    # A row that runs across a block boundary has no place in the output as one row.
    assert remap_tile(15, 1, 10, 0, 1, block, out_block) is None
    assert remap_rows(15, 1, 10, 0, 1, block, out_block) is None
    # Ten rows of five, 4 to a block (a [2, 5, 5] row tile of a [3, 4, 5] input).
    assert remap_rows(0, 10, 5, 5, 1, block, out_block) == [
        (0, 4, 0, 5, 1),
        (4, 4, 45, 5, 1),
        (8, 2, 90, 5, 1),
    ]


@pytest.mark.parametrize("name", ["llama-tiny", "neox-tiny"])
def test_rotary_models_concatenate_on_the_device(name):
    from sim.cli.models import build

    spec = build(name)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    cat = program.meta["report"]["ops"]["aten.cat.default"]
    assert cat["device"] == cat["count"] > 0, cat
    assert not any(h["target"] == "aten.cat.default" for h in program.meta["host_ops"])


@pytest.mark.rtl
def test_partial_rotary_on_the_rtl():
    """Copies, redirected (and split) producer stores and strided views through the RTL,
    in lockstep with the ISA model (the testbench compares every instruction and the
    final state)."""
    tokens, n_heads, head_dim, rotary_dim = 5, 3, 20, 6
    x = randn(1, tokens, n_heads * head_dim)
    cos, sin = randn(tokens, rotary_dim), randn(tokens, rotary_dim)
    y = randn(2, 3, 37)

    def fn(x, cos, sin, y):
        q = heads(x, n_heads)
        q_rot, q_pass = q[..., :rotary_dim], q[..., rotary_dim:]
        q_rot = q_rot * cos + rotate_half(q_rot) * sin
        return (
            torch.cat((q_rot, q_pass), dim=-1),
            torch.cat((x[0, 1:], x[0, :2]), dim=0),
            # y * 2's row tile [6, 37] is stored as one piece per batch.
            torch.cat((y * 2, y[:, :1]), dim=1),
        )

    inputs = (x, cos, sin, y)
    program = compile_on_device(fn, inputs)
    # Copied, a load and a store per tile: rotate-half's x1 and q_pass (a tile per head),
    # both slices of x, y[:, :1]. Redirected: -x2, the rotated q, y * 2.
    assert cat_instructions(program) == 2 * (3 + 3 + 2 + 1)
    result = sim.run(program, inputs, backend="verilator", check=False)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    want = fn(*inputs)
    assert all(same_bits(g, w) for g, w in zip(result.outputs, want, strict=True))
