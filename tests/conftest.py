import os

import numpy as np
import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# `make coverage`: sample every ISA-model run of the suite into the functional coverage
# model (verif/coverage.py); the hits are written when the session ends.
if os.environ.get("LOOM_COVERAGE_DIR"):
    from verif import coverage

    coverage.enable(os.environ["LOOM_COVERAGE_DIR"])

from contract.asm import assemble  # noqa: E402
from contract.hw import DEFAULT_HW  # noqa: E402
from contract.isa import encode_program  # noqa: E402
from sim.ref import RefMachine  # noqa: E402


class Machine:
    """A RefMachine with a small DRAM and helpers to place fp32 data and run assembly."""

    def __init__(self, hw=DEFAULT_HW, dram_bytes=1 << 20):
        self.m = RefMachine(hw, np.zeros(dram_bytes, dtype=np.uint8))
        self.hw = hw

    def put_f32(self, addr: int, arr) -> None:
        a = np.ascontiguousarray(arr, dtype=np.float32)
        self.m.dram[addr : addr + a.nbytes] = a.view(np.uint8).reshape(-1)

    def get_f32(self, addr: int, shape) -> np.ndarray:
        n = int(np.prod(shape))
        return self.m.dram[addr : addr + 4 * n].view(np.float32).reshape(shape).copy()

    def run(self, source: str, trace=None) -> None:
        code = encode_program(assemble(source + "\nhalt"))
        self.m.run(code, 0, trace=trace)


@pytest.fixture
def machine():
    return Machine()
