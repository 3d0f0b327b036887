"""Running Loom programs: `sim.run(program, inputs, backend="ref", check=True)`.

The public API over the rooms below it (docs/architecture.md):
  sim.runtime        segments, host ops, the DRAM image, the Backend protocol + registry
  sim.ref            the ISA model (backend "ref")
  sim.torch_backend  the program on PyTorch, CPU or CUDA (backend "torch")
  sim.rtl            the RTL under Verilator + the cocotb testbench (backend "verilator")
  sim.cli            `python -m sim` / `make sim`: options, models, reports, dumps
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.runtime import RunResult, execute, register_backend, run

__all__ = ["RunResult", "execute", "register_backend", "run"]


def __getattr__(name: str):
    """The API, imported when first used: the runtime imports torch (~1 s), which a
    process that imports only a room below it (the testbench inside the simulator
    imports the ISA model, sim.ref) never needs. The built-in backends are named in the
    runtime's registry (sim/runtime/backend.py)."""
    if name in __all__:
        import sim.runtime

        return getattr(sim.runtime, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
