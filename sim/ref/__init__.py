"""The ISA model: the bit-exact executable specification of the Loom core (machine.py)
and its adapter to the runtime's Backend protocol (backend.py, backend="ref")."""

from sim.ref.machine import (
    OBSERVERS,
    ExecError,
    Observer,
    RefMachine,
    Retired,
    RunStats,
    fetch_segment,
)

__all__ = [
    "OBSERVERS",
    "Observer",
    "ExecError",
    "RefMachine",
    "Retired",
    "RunStats",
    "fetch_segment",
]
