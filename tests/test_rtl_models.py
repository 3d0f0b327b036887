"""Models through the RTL: every checkpoint bit-exact with the ISA model (checked by the
testbench's scoreboard as the core reaches it) and within tolerance of PyTorch."""

import pytest

import compiler
import sim
from sim.models import build

pytestmark = pytest.mark.rtl


@pytest.mark.parametrize("name", ["gpt2-tiny", "mlp"])
def test_model_on_rtl(name):
    spec = build(name)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    result = sim.run(program, spec.inputs, backend="verilator", check=True)
    assert result.layers
    assert not result.stats["isa_mismatches"], result.stats["isa_mismatches"][:2]
    failed = [r for r in result.layers if r["status"] != "pass"]
    assert not failed, failed[:3]
    assert all(r["isa"] == "bit-exact" and r["cycles"] > 0 for r in result.layers)
    # The core's performance counters agree with the ISA model's accounting.
    ref = sim.run(program, spec.inputs, backend="ref", check=False).stats
    assert result.stats["macs"] == ref["macs"]
    assert result.stats["retired"] == ref["retired"]
