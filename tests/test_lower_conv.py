"""aten.convolution on the device (compiler/ops/conv.py): patch embeddings (stride =
kernel) and general 1-D / 2-D convolutions as im2col by DMA addressing times the weight
on the matrix unit, against PyTorch.

Two comparisons per case. Sharp: against PyTorch's convolution of the bf16-rounded input
and weight (the numerics contract's operands) in fp32, every element within the bound
that summation order alone explains (golden.metrics.reorder_bound over the K products
and the bias). Loose: against PyTorch fp32, within the end-to-end tolerance of
docs/golden.md (the contract of a linear layer: bf16 operands, fp32 accumulation).
"""

import pytest
import torch
import torch.nn.functional as F

import compiler
import sim
from contract.isa import Opcode
from golden.metrics import END_TO_END, beyond_reorder_bound

gen = torch.Generator().manual_seed(0)


def randn(*shape):
    return torch.randn(*shape, generator=gen)


def _bf16(t):
    return t.to(torch.bfloat16).float()


def conv_of(conv: torch.nn.Module):
    return F.conv2d if isinstance(conv, torch.nn.Conv2d) else F.conv1d


def check_conv(conv: torch.nn.Module, x: torch.Tensor, got: torch.Tensor) -> None:
    """got against conv(x) in bf16 operands (sharp) and fp32 (end to end)."""
    f = conv_of(conv)
    args = (conv.stride, conv.padding, conv.dilation)
    with torch.no_grad():
        want = conv(x)
        exact = f(_bf16(x), _bf16(conv.weight), conv.bias, *args)
        bias = conv.bias.abs() if conv.bias is not None else None
        terms = f(_bf16(x).abs(), _bf16(conv.weight).abs(), bias, *args)
    assert got.shape == want.shape
    k = conv.weight[0].numel()
    assert beyond_reorder_bound(exact.numpy(), got.numpy(), terms.numpy(), k + 1) == 0
    rel_l2 = ((got - want).norm() / want.norm()).item()
    assert rel_l2 < END_TO_END.max_rel_l2, rel_l2


def compile_on_device(module, inputs):
    program = compiler.compile(module, inputs)
    assert program.meta["report"]["cpu_fallback"] == [], program.meta["report"]["ops"]
    return program


def conv_opcodes(program) -> list[Opcode]:
    """The opcodes of the instructions the convolution node emits."""
    lines = program.listing.lines
    return [
        line.insn.opcode
        for node, line in zip(program.debug_nodes, lines, strict=True)
        if node.startswith("convolution")
    ]


# Odd sizes throughout: channels and hidden not multiples of the 16-element line.
PATCH = {
    "2d_bias": (torch.nn.Conv2d(3, 37, kernel_size=4, stride=4), (2, 3, 12, 8)),
    "2d_nobias": (torch.nn.Conv2d(3, 37, kernel_size=4, stride=4, bias=False), (2, 3, 12, 8)),
    "2d_rect": (torch.nn.Conv2d(5, 19, kernel_size=(2, 3), stride=(2, 3)), (2, 5, 6, 9)),
    "1d_bias": (torch.nn.Conv1d(5, 37, kernel_size=4, stride=4), (2, 5, 24)),
    "1d_nobias": (torch.nn.Conv1d(3, 21, kernel_size=5, stride=5, bias=False), (2, 3, 35)),
}


def test_patch_tiles_are_loaded_by_dma_addressing():
    """The 12x8 image in 4x4 patches (3 x 2 of them): per image one B tile written by
    C * p * Ho = 3 * 4 * 3 strided loads (rows j of one kernel row, columns the patches
    of one output row), one weight load and one bias load. No copy of the image."""
    conv = torch.nn.Conv2d(3, 37, kernel_size=4, stride=4).eval()
    x = randn(2, 3, 12, 8)
    program = compile_on_device(conv, (x,))
    ops = conv_opcodes(program)
    assert ops.count(Opcode.DMA_LD) == 2 * (3 * 4 * 3 + 1 + 1)
    assert ops.count(Opcode.MATMUL) == 2
    assert ops.count(Opcode.VBIN) == 2  # the bias, per image
    assert ops.count(Opcode.DMA_ST) == 2 * 3  # per output row (3 columns, not a line)


GENERAL = {
    "3x3_same": (torch.nn.Conv2d(3, 37, 3, padding=1), (2, 3, 7, 9)),
    "strided_padded_dilated": (
        torch.nn.Conv2d(4, 21, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
        (2, 4, 9, 13),
    ),
    "1d_k3_s2_p1": (torch.nn.Conv1d(5, 19, 3, stride=2, padding=1), (2, 5, 17)),
    # More output channels than one array tile (128) and a row wider than 16 columns.
    "wide": (torch.nn.Conv2d(2, 130, 2, stride=1, bias=True), (1, 2, 3, 21)),
}


@pytest.mark.parametrize("name", [*PATCH, *GENERAL])
def test_convolution(name):
    """Patch convolutions (stride = kernel) by DMA addressing, the others by im2col."""
    torch.manual_seed(1)
    conv, shape = (PATCH | GENERAL)[name]
    conv = conv.eval()
    x = randn(*shape)
    program = compile_on_device(conv, (x,))
    check_conv(conv, x, program(x))


def test_unsupported_convolutions_fall_back_with_a_reason():
    torch.manual_seed(3)
    cases = {
        "grouped convolution (groups=2)": torch.nn.Conv2d(4, 6, 2, groups=2),
        "transposed convolution": torch.nn.ConvTranspose2d(4, 6, 2, stride=2),
        "convolution of rank 5": torch.nn.Conv3d(4, 6, 2),
    }
    for reason, conv in cases.items():
        x = randn(1, 4, 4, 4, 4) if isinstance(conv, torch.nn.Conv3d) else randn(1, 4, 4, 4)
        program = compiler.compile(conv.eval(), (x,))
        ops = program.meta["report"]["ops"]
        (op,) = [k for k in ops if "convolution" in k]
        assert ops[op].get("cpu") == 1 and any(reason in r for r in ops[op]["reasons"]), ops
        with torch.no_grad():
            torch.testing.assert_close(program(x), conv(x))


class PatchEmbed(torch.nn.Module):
    """ViT's patch embedding: conv, flatten, transpose, class token, positions."""

    def __init__(self, channels=3, patch=4, hidden=37, patches=6):
        super().__init__()
        self.proj = torch.nn.Conv2d(channels, hidden, kernel_size=patch, stride=patch)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, hidden))
        self.pos = torch.nn.Parameter(torch.randn(1, patches + 1, hidden))

    def forward(self, x):
        t = self.proj(x).flatten(2).transpose(1, 2)  # [B, patches, hidden]
        cls = self.cls.expand(x.shape[0], -1, -1)
        return torch.cat((cls, t), dim=1) + self.pos


def test_vit_style_patch_embedding_module():
    torch.manual_seed(4)
    module = PatchEmbed().eval()
    x = randn(2, 3, 12, 8)
    program = compile_on_device(module, (x,))
    with torch.no_grad():
        want = module(x)
        conv = module.proj
        exact = F.conv2d(_bf16(x), _bf16(conv.weight), conv.bias, conv.stride)
        exact = torch.cat((module.cls.expand(2, -1, -1), exact.flatten(2).transpose(1, 2)), 1)
        exact = exact + module.pos
    got = program(x)
    assert (got - exact).abs().max() < 1e-5
    assert ((got - want).norm() / want.norm()) < END_TO_END.max_rel_l2


def tiny_vit():
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return ViTModel(config, add_pooling_layer=False).eval()


def test_tiny_vit_runs_on_the_device_and_passes_every_checkpoint():
    model = tiny_vit()
    x = randn(2, 3, 16, 16)
    program = compiler.compile(model, (x,))
    report = program.meta["report"]
    assert report["ops"]["aten.convolution.default"] == {
        "count": 1,
        "device": 1,
        "reasons": [],
    }
    assert program.meta["host_ops"] == []
    assert len(program.meta["segments"]) == 1
    result = sim.run(program, (x,), backend="ref", check=True)
    assert result.passed, [la for la in result.layers if la["status"] != "pass"]
    paths = {la["path"] for la in result.layers}
    assert "embeddings.patch_embeddings" in paths


@pytest.mark.rtl
def test_convolutions_on_the_rtl():
    """Patch convolutions (2-D with bias, 1-D without) and a padded, strided one through
    the RTL in lockstep with the ISA model: bit for bit."""
    torch.manual_seed(5)
    p2 = torch.nn.Conv2d(3, 37, kernel_size=4, stride=4).eval()
    p1 = torch.nn.Conv1d(5, 21, kernel_size=4, stride=4, bias=False).eval()
    g2 = torch.nn.Conv2d(3, 19, 3, stride=2, padding=1).eval()

    class Convs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p2, self.p1, self.g2 = p2, p1, g2

        def forward(self, x, s):
            return self.p2(x), self.p1(s), self.g2(x)

    inputs = (randn(2, 3, 12, 8), randn(2, 5, 24))
    program = compile_on_device(Convs().eval(), inputs)
    result = sim.run(program, inputs, backend="verilator", check=False)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    on_ref = sim.run(program, inputs, backend="ref", check=False)
    for got, ref in zip(result.outputs, on_ref.outputs, strict=True):
        assert torch.equal(got.view(torch.int32), ref.view(torch.int32))
    check_conv(p2, inputs[0], result.outputs[0])
    check_conv(p1, inputs[1], result.outputs[1])
    check_conv(g2, inputs[0], result.outputs[2])
