"""backend="ref": device segments run on the ISA model (sim.runtime.Backend)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from contract.hw import HwConfig
from sim.ref.machine import RefMachine, Retired


class RefBackend:
    """The bit-exact ISA model."""

    name = "ref"

    def __init__(self, hw: HwConfig, trace: bool = False):
        self.hw = hw
        self.machine: RefMachine | None = None
        self.trace: list[Retired] | None = [] if trace else None

    def bind(self, program) -> None:
        """Nothing to prepare: the ISA model decodes as it fetches."""

    def new_dram(self, nbytes: int) -> np.ndarray:
        return np.zeros(nbytes, dtype=np.uint8)

    def run_segment(
        self, dram: np.ndarray, code: bytes, pc: int, on_checkpoint: Callable[[int], None]
    ) -> None:
        if self.machine is None or self.machine.dram is not dram:
            self.machine = RefMachine(self.hw, dram)
        self.machine.run(code, pc, on_checkpoint, self.trace)

    @property
    def stats(self) -> dict:
        st = self.machine.stats if self.machine else None
        if st is None:
            return {}
        return {
            "retired": st.retired,
            "per_unit": dict(st.per_unit),
            "macs": st.macs,
            "dma_bytes": st.dma_bytes,
        }

    def close(self) -> None:
        """Nothing to release."""
