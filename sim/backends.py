"""Backends execute device segments on a DRAM image. Each is a class with
run_segment(dram, code, pc, on_checkpoint) and a stats dict; select one by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.hw import HwConfig
from sim.ref import RefMachine, Retired


class RefBackend:
    """The bit-exact ISA model."""

    name = "ref"

    def __init__(self, hw: HwConfig, trace: bool = False):
        self.hw = hw
        self.machine: RefMachine | None = None
        self.trace: list[Retired] | None = [] if trace else None

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


def _verilator(hw: HwConfig, **options):
    from sim.verilator import VerilatorBackend  # imports cocotb's runner only when used

    return VerilatorBackend(hw, **options)


def _torch(hw: HwConfig, **options):
    from sim.torch_backend import TorchBackend

    return TorchBackend(hw, **options)


BACKENDS = {"ref": RefBackend, "verilator": _verilator, "torch": _torch}


def make_backend(name: str, hw: HwConfig, **options):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {sorted(BACKENDS)}")
    return BACKENDS[name](hw, **options)
