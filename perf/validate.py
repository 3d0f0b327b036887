"""The model against the RTL: run a program on the core (backend "verilator") and compare
predicted and measured cycles per instruction, per layer, per layer kind and per
performance counter."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from contract.blob import Program
from contract.isa import INSN_BYTES
from perf.predict import Prediction

# The RTL's counters (sim/rtl/backend.py stats) the model predicts, by the Figures name.
COUNTERS = {
    "cycles": "cycles",
    "fetch_stall": "fetch_stall",
    "dma_busy": "dma_busy",
    "mxu_busy": "mxu_busy",
    "vpu_busy": "vpu_busy",
    "overlap": "overlap",
    "stall_dep": "stall_dep",
    "stall_unit": "stall_unit",
    "stall_drain": "stall_drain",
    "macs": "macs",
    "dram_read_bytes": "dma_rd_bytes",
    "dram_write_bytes": "dma_wr_bytes",
}


@dataclass
class Measured:
    """What one RTL run reports: its counters, cycles per layer, and optionally the
    cycle each instruction retired."""

    counters: dict[str, int]
    layer_cycles: dict[int, int]
    wall_s: float
    retired: list[tuple[int, int]] = field(default_factory=list)  # (pc, cycle), in order


def measure(program: Program, inputs, trace: bool = False) -> Measured:
    """Run the program on the RTL (no golden checks: only the cycles are wanted)."""
    import sim

    t0 = time.perf_counter()
    result = sim.run(program, inputs, backend="verilator", check=False, trace=trace)
    wall = time.perf_counter() - t0
    stats = result.stats
    counters = {name: int(stats.get(key, 0)) for name, key in COUNTERS.items()}
    retired = [(r.pc, r.cycle) for r in stats.get("trace") or []]
    return Measured(counters, dict(stats["layer_cycles"]), wall, retired)


def error(predicted: float, measured: float) -> float | None:
    """Relative error of the prediction; None where nothing was measured."""
    return (predicted - measured) / measured if measured else None


@dataclass
class Comparison:
    layers: list[dict]  # id, path, kind, predicted, measured, error, utilization both ways
    kinds: dict[str, dict]  # kind -> predicted, measured, error, layers
    counters: dict[str, dict]  # counter -> predicted, measured, error
    wall_s: float

    def worst_kind_error(self) -> float:
        return max(abs(k["error"]) for k in self.kinds.values() if k["error"] is not None)

    def to_dict(self) -> dict:
        return {
            "layers": self.layers,
            "kinds": self.kinds,
            "counters": self.counters,
            "rtl_wall_s": self.wall_s,
        }


def compare(pred: Prediction, meas: Measured) -> Comparison:
    peak = pred.timing.peak_macs_per_cycle
    layers = []
    kinds: dict[str, dict] = defaultdict(lambda: {"predicted": 0, "measured": 0, "layers": 0})
    for la in pred.layers:
        measured = meas.layer_cycles.get(la.id)
        predicted = la.figures.cycles
        layers.append(
            {
                "id": la.id,
                "path": la.path,
                "kind": la.kind,
                "predicted": predicted,
                "measured": measured,
                "error": error(predicted, measured) if measured is not None else None,
                "macs": la.figures.macs,
                "mxu_utilization_predicted": la.figures.mxu_utilization(pred.timing),
                # MACs per layer are the instructions' own (the RTL's MAC counter equals
                # their sum; compare() checks the total), so only the cycles are measured.
                "mxu_utilization_measured": (
                    la.figures.macs / (measured * peak) if measured else None
                ),
            }
        )
        if measured is not None:
            k = kinds[la.kind]
            k["predicted"] += predicted
            k["measured"] += measured
            k["layers"] += 1
    for k in kinds.values():
        k["error"] = error(k["predicted"], k["measured"])
    total = pred.total.to_dict(pred.timing)
    counters = {}
    for name in COUNTERS:
        p, m = total[name], meas.counters[name]
        counters[name] = {"predicted": p, "measured": m, "error": error(p, m)}
    return Comparison(layers, dict(kinds), counters, meas.wall_s)


def instruction_mismatches(pred: Prediction, meas: Measured) -> list[dict]:
    """Instructions whose time between their retirement and the previous one's differs
    from the RTL's (the first instruction of a run has no previous retirement to
    measure from)."""
    by_number = {s.number: s for s in pred.slots}
    out, prev, prev_slot = [], None, None
    for pc, cycle in meas.retired:
        slot = by_number.get(pc // INSN_BYTES)
        same_run = prev is not None and cycle >= prev  # CYCLES restarts with each segment
        if same_run and slot is not None and prev_slot is not None:
            measured = cycle - prev
            predicted = slot.retire - prev_slot.retire
            if measured != predicted:
                out.append({"number": slot.number, "predicted": predicted, "measured": measured})
        prev, prev_slot = cycle, slot
    return out
