"""Running Loom programs: `sim.run(program, inputs, backend="ref", check=True)`.

The public API over the rooms below it (docs/architecture.md):
  sim.runtime        segments, host ops, the DRAM image, the Backend protocol + registry
  sim.ref            the ISA model (backend "ref")
  sim.torch_backend  the program on PyTorch, CPU or CUDA (backend "torch")
  sim.rtl            the RTL under Verilator + the cocotb testbench (backend "verilator")
  sim.cli            `python -m sim` / `make sim`: options, models, reports, dumps
"""

from sim.runtime import RunResult, execute, register_backend, run

# The built-in backends, imported only when one is asked for.
register_backend("ref", "sim.ref.backend:RefBackend")
register_backend("torch", "sim.torch_backend.backend:TorchBackend")
register_backend("verilator", "sim.rtl.backend:VerilatorBackend")

__all__ = ["RunResult", "execute", "register_backend", "run"]
