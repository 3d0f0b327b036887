"""scaled_dot_product_attention tiled over the key/value sequence (online softmax,
docs/isa.md "Attention tiled over the key sequence"): against PyTorch fp32 within the
end-to-end tolerance, against golden.reference's emulation of the documented sequence (sharp:
only exp's last bits and the bf16 roundings they flip differ), causal tile skipping,
runtime float and bool masks in both paths, the golden reference following the
tiled roundings, the untiled path unchanged where it fits, and one
program through the RTL in lockstep with the ISA model."""

import pytest
import torch

import compiler
import sim
from compiler.context import LowerCtx
from compiler.ops import attention
from contract.hw import DEFAULT_HW, load_hw
from contract.isa import Opcode, VBinFunct
from golden.metrics import END_TO_END, compare
from golden.reference import sdpa_tiled


class Attn(torch.nn.Module):
    """sdpa of q, k, v [B, H, T|S, D]; the additive mask is computed from an input."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal

    def forward(self, q, k, v, m=None):
        mask = None if m is None else m * 2.0  # [T, S], computed at run time
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=self.causal
        )


def _inputs(T, S, D, mask, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2, T, D, generator=g)  # [B, H, T, D]
    k = torch.randn(1, 2, S, D, generator=g)  # [B, H, S, D]
    v = torch.randn(1, 2, S, D, generator=g)  # [B, H, S, D]
    return (q, k, v) + ((torch.randn(T, S, generator=g),) if mask else ())  # mask [T, S]


def _matmuls(program):
    return [ln.insn for ln in program.listing.lines if ln.insn.opcode == Opcode.MATMUL]


# T, S, D, causal, mask, hw, forced (query rows, keys) per tile or None (the rule's)
CASES = [
    (37, 37, 16, False, False, None, (16, 16)),
    (37, 37, 40, True, False, None, (16, 16)),
    (37, 150, 40, False, True, None, (16, 16)),  # cross-attention, 10 K/V tiles
    (150, 150, 16, True, False, None, (32, 48)),
    (150, 300, 40, False, True, "small", None),  # K/V exceed the small core's SPAD
    (300, 300, 40, True, False, "small", None),
]


@pytest.mark.parametrize("T,S,D,causal,mask,hw,force", CASES)
def test_tiled_attention_matches_pytorch(monkeypatch, T, S, D, causal, mask, hw, force):
    monkeypatch.setattr(attention, "FORCE_TILES", force)
    inputs = _inputs(T, S, D, mask)
    model = Attn(causal)
    program = compiler.compile(model, inputs, hw=hw)
    assert program.meta["report"]["cpu_fallback"] == []
    mms = _matmuls(program)
    assert any(i.acc for i in mms), "the tiled path accumulates P @ V over K/V tiles"
    got = program(*inputs)
    e2e = compare(model(*inputs), got)
    assert END_TO_END.accepts(e2e), e2e
    assert e2e["rel_l2"] < 5e-3, e2e  # what the untiled path measures: ~3e-3 (bf16)
    tq, ts = force or attention.tiled_sizes(LowerCtx(program.hw, [], []), T, S, D, D, mask)
    bias = inputs[3] * 2.0 if mask else None
    sharp = compare(sdpa_tiled(*inputs[:3], bias, is_causal=causal, tiles=(tq, ts)), got)
    assert sharp["rel_l2"] < 1e-4 and sharp["far_fraction"] == 0, sharp
    assert not sharp["nonfinite_mismatch"]
    # One Q @ K^T per processed K/V tile: causal blocks skip the tiles they mask whole.
    tiles = sum(
        len(list(attention.kv_tiles(S, ts, t0, min(tq, T - t0), 0 if causal else None)))
        for t0 in range(0, T, tq)
    )
    assert tiles >= 3 * -(-T // tq) or causal
    assert sum(i.trans_b for i in mms) == 2 * tiles  # two heads
    if causal:
        assert tiles < -(-T // tq) * -(-S // ts)


def test_tile_rule_on_the_cores():
    """The rule's sizes (docs/isa.md): large blocks on the default core, smaller on the
    small one; always whole lines."""
    big, small = LowerCtx(DEFAULT_HW, [], []), LowerCtx(load_hw("small"), [], [])
    assert attention.tiled_sizes(big, 4096, 4096, 64, 64, False) == (128, 368)
    assert attention.tiled_sizes(big, 4096, 4096, 64, 64, True) == (128, 176)
    assert attention.tiled_sizes(small, 150, 300, 40, 40, True) == (16, 88)
    assert attention.tiled_sizes(small, 300, 300, 40, 40, False) == (32, 48)


def test_masked_rows(monkeypatch):
    """A row whose first K/V tile is masked throughout (-inf) but a later one is not:
    the running max starts at -FLT_MAX, so p = 0 there, not NaN. A row masked
    everywhere is 0, as PyTorch's sdpa gives (l = 0 is raised to 1 before the recip)."""
    monkeypatch.setattr(attention, "FORCE_TILES", (16, 16))
    q, k, v, bias = _inputs(20, 40, 16, True)
    bias[3, :32] = float("-inf")  # row 3 sees only tile 2
    bias[5, :] = float("-inf")  # row 5 sees nothing
    model = Attn(False)
    program = compiler.compile(model, (q, k, v, bias))
    got, want = program(q, k, v, bias), model(q, k, v, bias)
    assert torch.equal(want[..., 5, :], torch.zeros(1, 2, 16))
    assert torch.equal(got[..., 5, :], want[..., 5, :])
    assert END_TO_END.accepts(compare(want, got))
    sharp = compare(sdpa_tiled(q, k, v, bias * 2.0, tiles=(16, 16)), got)
    assert sharp["rel_l2"] < 1e-4 and not sharp["nonfinite_mismatch"], sharp


UNTILED = ["DMA_LD", "DMA_LD"] + [
    "DMA_LD", "MATMUL", "VBIN", "VMASK", "DMA_LD", "VBIN",
    "VREDUCE", "VBIN", "VUNARY", "VREDUCE", "VUNARY", "VBIN", "MOVE", "MATMUL", "DMA_ST",
]  # fmt: skip


@pytest.mark.parametrize("causal,mask", [(True, False), (False, True), (False, False)])
def test_untiled_path_where_it_fits(causal, mask):
    """Where K, V and the score rows fit, the instructions are the untiled sequence of
    before (one block per head here); a runtime float mask now runs on the device, with
    the two guards that make a row it hides throughout 0 (VBIN max after each of the
    softmax's reductions)."""
    inputs = _inputs(10, 10, 16, mask)
    model = Attn(causal)
    program = compiler.compile(model, inputs)
    assert program.meta["report"]["cpu_fallback"] == []
    # UNTILED[5] is the VMASK, [6:8] the mask tile's load and add
    per_head = [
        n for i, n in enumerate(UNTILED) if (i != 5 or causal) and (i not in (6, 7) or mask)
    ]
    if mask:  # the guards follow the row max and the row sum
        for at in sorted((i for i, n in enumerate(per_head) if n == "VREDUCE"), reverse=True):
            per_head.insert(at + 1, "VBIN")
    names = [
        ln.insn.opcode.name
        for ln in program.listing.lines
        if ln.insn.opcode not in (Opcode.HALT, Opcode.CHECKPOINT, Opcode.FENCE)
    ]
    if mask:  # the graph's m * 2.0 runs first
        names = names[len(names) - 2 * len(per_head) :]
    assert names == per_head * 2
    assert not any(i.acc for i in _matmuls(program))
    got = program(*inputs)
    assert END_TO_END.accepts(compare(model(*inputs), got))


class BoolMaskAttn(torch.nn.Module):
    """sdpa with a boolean mask computed at run time (a comparison)."""

    def forward(self, q, k, v, m):
        keep = (m > -0.5) | torch.eye(m.shape[-2], m.shape[-1], dtype=torch.bool)  # [T, S]
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)


class BoolMask(torch.nn.Module):
    """The attention as a checkpointed layer, and a projection after it."""

    def __init__(self):
        super().__init__()
        self.attn, self.proj = BoolMaskAttn(), torch.nn.Linear(16, 16)

    def forward(self, q, k, v, m):
        return self.proj(self.attn(q, k, v, m))


@pytest.mark.parametrize("force", [None, (16, 16)])
def test_runtime_bool_mask_on_device(monkeypatch, force):
    """The comparison stays an fp32 mask on the device and the attention selects with it
    (VBIN KEEP), untiled and tiled; every checkpoint passes, the tiled one followed by
    golden.reference.sdpa_tiled, sharply."""
    monkeypatch.setattr(attention, "FORCE_TILES", force)
    inputs = _inputs(40, 40, 16, True)
    model = BoolMask().eval()
    program = compiler.compile(model, inputs)
    assert program.meta["report"]["cpu_fallback"] == []
    assert not program.meta["host_ops"]
    keeps = [
        ln.insn
        for ln in program.listing.lines
        if ln.insn.opcode == Opcode.VBIN and ln.insn.funct == VBinFunct.KEEP
    ]
    assert keeps and all(i.imm == float("-inf") for i in keeps)
    result = sim.run(program, inputs, backend="ref", check=True)
    assert all(row["status"] == "pass" for row in result.layers), result.layers
    assert END_TO_END.accepts(compare(model(*inputs), result.outputs[0]))
    follow = max(row["follow"]["rel_l2"] for row in result.layers)
    assert follow < 1e-4, result.layers


def test_golden_follows_the_tiled_sequence(monkeypatch):
    """Without the tiled reference, follow-actual would compare the tiled roundings
    with whole-row softmax ones (~1e-3, over the bound): the reference uses the
    compiler's tile sizes."""
    monkeypatch.setattr(attention, "FORCE_TILES", (16, 16))
    inputs = _inputs(40, 40, 16, True)
    program = compiler.compile(BoolMask().eval(), inputs)
    (node,) = [
        n
        for n in program.graph.graph.nodes
        if n.target is torch.ops.aten.scaled_dot_product_attention.default
    ]
    assert node.meta["loom_sdpa_tiles"] == (16, 16)

    def attention_follow() -> dict:
        rows = sim.run(program, inputs, backend="ref", check=True).layers
        (row,) = [r for r in rows if r["path"] == "attn"]
        return row

    tiled = attention_follow()
    del node.meta["loom_sdpa_tiles"]  # now followed as one whole-row softmax
    untiled = attention_follow()
    assert tiled["status"] == "pass" and untiled["status"] == "fail", (tiled, untiled)
    assert untiled["follow"]["rel_l2"] > 10 * tiled["follow"]["rel_l2"]


@pytest.mark.rtl
def test_tiled_attention_on_rtl(monkeypatch):
    """Causal (with skipped and partly masked tiles), runtime float-masked and runtime
    bool-masked attention, four K/V tiles each, through the RTL in lockstep with the ISA model, bit-exact."""
    monkeypatch.setattr(attention, "FORCE_TILES", (16, 16))

    class Two(torch.nn.Module):
        def forward(self, q, k, v, m):
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            b = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m * 2.0)
            c = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m > -1.0)
            return a + b + c

    inputs = _inputs(50, 50, 16, True)
    program = compiler.compile(Two(), inputs)
    assert program.meta["report"]["cpu_fallback"] == []
    result = sim.run(program, inputs, backend="verilator", check=True)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    ref = sim.run(program, inputs, backend="ref", check=False)
    assert torch.equal(result.outputs[0], ref.outputs[0])
    assert END_TO_END.accepts(compare(Two()(*inputs), result.outputs[0]))
