"""The Backend protocol: what the runtime asks of anything that executes device
segments, and the registry that makes one by name.

A backend gets the program once (bind), may supply the DRAM image (new_dram: the RTL
backend hands out a file it shares with the simulator), runs device segments on it
(run_segment, calling on_checkpoint(layer) at every CHECKPOINT with the layer's
tensors in the image), reports counters (stats) and releases what it holds (close).
Registered by name: sim/__init__.py registers the built-in ones ("ref", "torch",
"verilator") as import paths, so a backend's dependencies (cocotb, CUDA) load only when
it is used; anyone can register another.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from contract.blob import Program
from contract.hw import HwConfig


@runtime_checkable
class Backend(Protocol):
    name: str

    def bind(self, program: Program) -> None:
        """Called before the program's first segment runs."""

    def new_dram(self, nbytes: int) -> np.ndarray:
        """A zeroed DRAM image of nbytes (uint8)."""

    def run_segment(
        self, dram: np.ndarray, code: bytes, pc: int, on_checkpoint: Callable[[int], None]
    ) -> None:
        """Run the device segment at pc until HALT; raise on a fault."""

    @property
    def stats(self) -> dict:
        """Counters so far: retired, macs, dma_bytes, and the backend's own."""

    def close(self) -> None:
        """Release processes, files and device memory."""


# name -> a factory(hw, **options), or "module:attribute" naming one (imported on use)
# The built-in backends, by import path: a backend's module is imported only when one is
# made, so naming them here imports none of them (nor torch, for a process that only
# needs the ISA model: the testbench inside the simulator).
_REGISTRY: dict[str, Callable[..., Backend] | str] = {
    "ref": "sim.ref.backend:RefBackend",
    "torch": "sim.torch_backend.backend:TorchBackend",
    "verilator": "sim.rtl.backend:VerilatorBackend",
}


def register_backend(name: str, factory: Callable[..., Backend] | str) -> None:
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def make_backend(name: str, hw: HwConfig, **options) -> Backend:
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"unknown backend {name!r}; available: {backend_names()}")
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(hw, **options)
