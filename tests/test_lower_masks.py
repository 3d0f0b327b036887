"""Runtime masks on the device: integer -> bool conversion (int_to_mask), indexing at
constant affine positions as a view, padding masks of transformers models as one device
segment, and rows that a mask hides throughout (0, as PyTorch's sdpa gives, not NaN)."""

import pytest
import torch
import transformers

import compiler
import sim
from contract.isa import Opcode
from golden import check_outputs, eager_outputs
from golden.metrics import END_TO_END, compare

INT32_EDGES = [
    0, 1, -1, 2, -2, 7, 2**31 - 1, -(2**31), -(2**31) + 1,
    0x7F800000,  # +inf as fp32 bits
    0x7FC00000,  # a quiet NaN
    0x7F800001,  # a signalling NaN
    0x00800000,  # the smallest normal
    0x007FFFFF,  # the largest subnormal
    -0x00800000,  # negative bit patterns: sign bit set
    -0x7FFFFFFF,
]  # fmt: skip


class WhereInt(torch.nn.Module):
    """where(bool(i), x, -x): the integer tensor becomes a mask on the device."""

    def forward(self, x, i):
        return torch.where(i.to(torch.bool), x, -x)


def test_int_to_mask_is_exact_for_every_class_of_int32():
    """bool(i) for the words whose fp32 patterns are +-0, subnormals, normals, inf and
    NaNs: the one that is -0.0 (the integer -2**31) included."""
    i = torch.tensor(INT32_EDGES * 2, dtype=torch.int64).reshape(4, -1)  # [4, 8]
    x = torch.arange(1.0, 1.0 + i.numel()).reshape(i.shape)  # [4, 8]
    model = WhereInt()
    program = compiler.compile(model, (x, i))
    assert program.meta["report"]["cpu_fallback"] == [] and not program.meta["host_ops"]
    got = program(x, i)
    assert torch.equal(got, model(x, i))
    rng = torch.Generator().manual_seed(0)
    for _ in range(3):  # other values through the same program
        i2 = torch.randint(-(2**31), 2**31, i.shape, generator=rng)
        i2[0, :3] = 0
        assert torch.equal(program(x, i2), model(x, i2))


def test_int_to_mask_refuses_int64_that_does_not_fit():
    """The int32 narrowing of a model input is range-checked when it is written: an
    error naming the input, never a wrapped value."""
    i = torch.zeros(2, 8, dtype=torch.int64)
    x = torch.ones(2, 8)
    program = compiler.compile(WhereInt(), (x, i))
    i[1, 3] = 2**40
    with pytest.raises(ValueError, match="do not fit in int32"):
        program(x, i)


class Grid(torch.nn.Module):
    """Indexing with constant index grids: broadcast (a view), and a permutation (not
    affine: gathered)."""

    def forward(self, x):  # x [B, S]
        b = torch.arange(x.shape[0])[:, None, None]  # [B, 1, 1]
        s = torch.arange(x.shape[1])[None, None, :]  # [1, 1, S]
        grid = x[b, s]  # [B, 1, S], a strided view of x
        perm = x[:, torch.tensor([2, 0, 1, 3])]  # [B, 4]
        tail = x[torch.tensor([-1])]  # [1, S], a negative index wraps
        return grid * 2.0, perm + 1.0, tail - 1.0


def _opcodes(program) -> list[str]:
    skip = (Opcode.HALT, Opcode.CHECKPOINT, Opcode.FENCE)
    return [ln.insn.opcode.name for ln in program.listing.lines if ln.insn.opcode not in skip]


def test_constant_affine_index_is_a_view():
    x = torch.randn(3, 6)
    program = compiler.compile(Grid(), (x,))
    ops = program.meta["report"]["ops"]
    assert program.meta["report"]["cpu_fallback"] == []
    assert ops["aten.index.Tensor"]["count"] == 3
    got, want = program(x), Grid()(x)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)

    class GridOnly(torch.nn.Module):
        def forward(self, x):  # x [B, S] -> [B, 1, S]
            return x[torch.arange(3)[:, None, None], torch.arange(6)[None, None, :]] * 2.0

    program = compiler.compile(GridOnly(), (x,))
    assert torch.equal(program(x), GridOnly()(x))
    # The multiply reads x in place through the view's strides: no copy for the index.
    assert _opcodes(program) == ["DMA_LD", "VBIN", "DMA_ST"]


def _tiny(config: str, model: str, **fields):
    torch.manual_seed(0)
    cfg = getattr(transformers, config)(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=256, max_position_embeddings=128, **fields,
    )  # fmt: skip
    return getattr(transformers, model)(cfg).eval()


class Padded(torch.nn.Module):
    """A transformers model called with a runtime attention_mask (padding)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, attention_mask):
        kw = {"use_cache": False} if "use_cache" in self.model.forward.__code__.co_varnames else {}
        out = self.model(input_ids=ids, attention_mask=attention_mask, **kw)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


PADDED = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=2)),
    "bert": ("BertConfig", "BertModel", {}),
    "neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {}),
}


def _padded_inputs(left: int):
    ids = torch.randint(0, 256, (2, 13), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 13, dtype=torch.int64)
    mask[1, :left] = 0  # left padding in the second sequence
    return ids, mask


@pytest.mark.parametrize("name", sorted(PADDED))
def test_padding_mask_runs_on_the_device(name):
    """The integer attention_mask becomes a device mask, combined with the causal mask
    on the device and selected with in every attention: one device segment, no host op.
    The same program with another padding passes too (the mask is data, not code)."""
    config, cls, fields = PADDED[name]
    model = Padded(_tiny(config, cls, **fields))
    program = compiler.compile(model, _padded_inputs(4))
    assert program.meta["report"]["cpu_fallback"] == []
    assert len(program.meta["segments"]) == 1 and not program.meta["host_ops"]
    for left in (4, 9):
        inputs = _padded_inputs(left)
        result = sim.run(program, inputs, backend="ref", check=True)
        failed = [r for r in result.layers if r["status"] != "pass"]
        assert not failed, failed[:2]
        rows = check_outputs(eager_outputs(model, inputs, {}), result.outputs)
        assert rows and all(r["status"] == "pass" for r in rows), rows


@pytest.mark.rtl
def test_int_to_mask_on_rtl():
    """The int32 words as fp32 patterns (subnormals, NaNs, -0.0) through the RTL's
    comparisons and recip: in lockstep with the ISA model, and PyTorch's answer."""
    i = torch.tensor(INT32_EDGES, dtype=torch.int64).reshape(2, -1)  # [2, 8]
    x = torch.arange(1.0, 1.0 + i.numel()).reshape(i.shape)
    program = compiler.compile(WhereInt(), (x, i))
    result = sim.run(program, (x, i), backend="verilator", check=False)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    assert torch.equal(result.outputs[0], WhereInt()(x, i))


@pytest.mark.rtl
def test_padding_mask_on_rtl():
    """A padded llama through the RTL, in lockstep with the ISA model, bit-exact."""
    model = Padded(_tiny("LlamaConfig", "LlamaForCausalLM", num_key_value_heads=2))
    inputs = _padded_inputs(5)
    program = compiler.compile(model, inputs)
    result = sim.run(program, inputs, backend="verilator", check=True)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    assert all(r["status"] == "pass" and r["isa"] == "bit-exact" for r in result.layers)
    ref = sim.run(program, inputs, backend="ref", check=False)
    assert torch.equal(result.outputs[0], ref.outputs[0])


class HiddenRows(torch.nn.Module):
    def forward(self, q, k, v, keep):  # keep [T, S] bool
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)


@pytest.mark.parametrize("float_mask", [False, True])
def test_rows_masked_throughout_are_zero(float_mask):
    """Untiled attention with a row that the mask hides throughout: 0, as PyTorch's sdpa
    gives, through the two guards of softmax_rows (not NaN)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 12, 16, generator=g) for _ in range(3))  # [B, H, T, D]
    keep = torch.rand(12, 12, generator=g) > 0.3  # [T, S]
    keep[4] = False
    mask = torch.zeros(12, 12).masked_fill(~keep, float("-inf")) if float_mask else keep
    model = HiddenRows()
    program = compiler.compile(model, (q, k, v, mask))
    assert program.meta["report"]["cpu_fallback"] == []
    got, want = program(q, k, v, mask), model(q, k, v, mask)
    assert torch.equal(want[..., 4, :], torch.zeros(1, 2, 16))
    assert torch.equal(got[..., 4, :], want[..., 4, :])
    assert END_TO_END.accepts(compare(want, got))
