"""Models through the RTL: every instruction in lockstep with the ISA model, every
checkpoint bit-exact with it (checked by the testbench's scoreboard as the core reaches
it) and within tolerance of PyTorch; on the default core and on the small one
(configs/hw/small.yaml: 8x8 array, 128-bit bus, 32 KiB scratchpad), which the RTL
must build and run from the same sources."""

import pytest
import torch

import compiler
import sim
from golden import check_outputs, eager_outputs
from sim.cli.models import build

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize(
    ("name", "hw"),
    [
        ("gpt2-tiny", None),
        ("mlp", None),
        ("gpt2-tiny", "small"),
        ("mlp", "small"),
        # The modern families, whole on the device (one segment each): RMSNorm, rotary
        # (whole and partial), SwiGLU, exact GELU, the patch convolution.
        ("llama-tiny", None),
        ("neox-tiny", None),
        ("bert-tiny", None),
        ("vit-tiny", None),
    ],
)
def test_model_on_rtl(name, hw):
    spec = build(name)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=hw)
    result = sim.run(program, spec.inputs, backend="verilator", check=True)
    assert result.layers
    assert len(program.meta["segments"]) == 1 and not program.meta["host_ops"]
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    failed = [r for r in result.layers if r["status"] != "pass"]
    assert not failed, failed[:3]
    assert all(r["isa"] == "bit-exact" and r["cycles"] > 0 for r in result.layers)
    outputs = check_outputs(eager_outputs(spec.model, spec.inputs, spec.kwargs), result.outputs)
    assert outputs and all(o["status"] == "pass" for o in outputs), outputs
    # The core's performance counters agree with the ISA model's accounting.
    ref = sim.run(program, spec.inputs, backend="ref", check=False).stats
    assert result.stats["macs"] == ref["macs"]
    assert result.stats["retired"] == ref["retired"]
    # DMA bytes as the RTL's engine moved them = the bytes of each instruction's regions.
    moved = result.stats["dma_rd_bytes"] + result.stats["dma_wr_bytes"]
    assert moved == ref["dma_bytes"]


def test_exact_gelu_on_rtl():
    """Exact GELU (VUNARY erf) between two Linear layers through the RTL: in lockstep
    with the ISA model and within tolerance of the eager module."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 48), torch.nn.GELU(), torch.nn.Linear(48, 16)
    ).eval()
    x = (torch.randn(8, 32) * 2,)
    program = compiler.compile(model, x)
    assert program.meta["report"]["cpu_fallback"] == []
    result = sim.run(program, x, backend="verilator", check=True)
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    ref = sim.run(program, x, backend="ref", check=False)
    assert torch.equal(result.outputs[0], ref.outputs[0])
    outputs = check_outputs(eager_outputs(model, x, {}), result.outputs)
    assert outputs and all(o["status"] == "pass" for o in outputs), outputs
