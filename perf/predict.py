"""A program's predicted cycles per instruction, per layer, per layer kind and in total.

`predict(program)` reads only the program's code, segments and layer table and its
hardware config: no simulation. Per-layer figures are defined as the RTL reports them
(sim/rtl/backend.py, `layer_cycles`): the core's CYCLES counter when the layer's
CHECKPOINT retires minus its value at the previous CHECKPOINT of the segment (or at the
segment's start). The counter does not yet include the CHECKPOINT's own ISSUE cycle,
which the next layer's figure then carries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from contract.blob import Program
from contract.isa import INSN_BYTES, Mem, Opcode
from contract.regions import OperandError, Sram, resolve
from perf import schedule
from perf.cost import ExecCost, exec_cost
from perf.dma import StoreDeadlock
from perf.timing import CoreTiming


@dataclass
class Figures:
    """Cycles and work of a set of instructions (a layer, a kind, a program)."""

    cycles: int = 0
    insns: int = 0
    fetch: int = 0  # FETCH_STALL
    issue: int = 0
    stall_dep: int = 0  # STALL_DEP, STALL_UNIT, STALL_DRAIN
    stall_unit: int = 0
    stall_drain: int = 0
    overlap: int = 0  # OVERLAP (a program's total only)
    busy: dict[str, int] = field(default_factory=lambda: dict.fromkeys(schedule.UNITS, 0))
    macs: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0

    def add(self, other: Figures) -> None:
        self.cycles += other.cycles
        self.insns += other.insns
        self.fetch += other.fetch
        self.issue += other.issue
        self.stall_dep += other.stall_dep
        self.stall_unit += other.stall_unit
        self.stall_drain += other.stall_drain
        self.overlap += other.overlap
        for unit, c in other.busy.items():
            self.busy[unit] += c
        self.macs += other.macs
        self.dram_read_bytes += other.dram_read_bytes
        self.dram_write_bytes += other.dram_write_bytes

    def count(self, slot: schedule.Slot, cost: ExecCost) -> None:
        self.insns += 1
        self.fetch += slot.fetch
        self.issue += slot.issue
        self.stall_dep += slot.stall_dep
        self.stall_unit += slot.stall_unit
        self.stall_drain += slot.stall_drain
        if slot.unit in self.busy:
            self.busy[slot.unit] += slot.exec
        self.macs += cost.macs
        self.dram_read_bytes += cost.dram_read_bytes
        self.dram_write_bytes += cost.dram_write_bytes

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    def mxu_utilization(self, t: CoreTiming) -> float:
        """MACs over what the array could do in these cycles."""
        return self.macs / (self.cycles * t.peak_macs_per_cycle) if self.cycles else 0.0

    def intensity(self) -> float:
        """MACs per DRAM data byte (instruction fetch not counted)."""
        return self.macs / self.dram_bytes if self.dram_bytes else float("inf")

    def to_dict(self, t: CoreTiming) -> dict:
        return {
            "cycles": self.cycles,
            "insns": self.insns,
            "fetch_stall": self.fetch,
            "issue": self.issue,
            "stall_dep": self.stall_dep,
            "stall_unit": self.stall_unit,
            "stall_drain": self.stall_drain,
            "overlap": self.overlap,
            **{f"{u}_busy": c for u, c in self.busy.items()},
            "macs": self.macs,
            "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes,
            "mxu_utilization": self.mxu_utilization(t),
        }


@dataclass
class Layer:
    id: int
    path: str
    kind: str
    figures: Figures


@dataclass
class Prediction:
    hw_name: str
    mode: str
    timing: CoreTiming
    layers: list[Layer]
    total: Figures
    # Instructions after a segment's last CHECKPOINT (its HALT at least): in no layer.
    unattributed: Figures
    slots: list[schedule.Slot]
    fetch_requests: int
    fetch_bytes: int  # instruction bytes the fetches move (not in the DMA byte counters)
    spad_used_bytes: int
    acc_used_bytes: int

    def by_kind(self) -> dict[str, Figures]:
        kinds: dict[str, Figures] = defaultdict(Figures)
        for la in self.layers:
            kinds[la.kind].add(la.figures)
        return dict(kinds)

    def to_dict(self) -> dict:
        t = self.timing
        return {
            "hw": self.hw_name,
            "mode": self.mode,
            "total": self.total.to_dict(t),
            "unattributed": self.unattributed.to_dict(t),
            "fetch_requests": self.fetch_requests,
            "fetch_bytes": self.fetch_bytes,
            "spad_used_bytes": self.spad_used_bytes,
            "acc_used_bytes": self.acc_used_bytes,
            "layers": [
                {"id": la.id, "path": la.path, "kind": la.kind, **la.figures.to_dict(t)}
                for la in self.layers
            ],
            "kinds": {k: f.to_dict(t) for k, f in self.by_kind().items()},
        }


def _sram_used(program: Program) -> tuple[int, int]:
    """Bytes of SPAD and of ACC up to the highest element any instruction touches."""
    hw = program.hw
    end = {Mem.SPAD: 0, Mem.ACC: 0}
    for ln in program.listing.lines:
        if ln.insn is None:
            continue
        try:
            ops = resolve(ln.insn, hw, hw.dram_bytes)
        except OperandError:
            continue
        for r in ops.regions():
            if isinstance(r, Sram) and not r.empty:
                end[r.space] = max(end[r.space], r.end)
    return end[Mem.SPAD] * 2, end[Mem.ACC] * 4


def predict(
    program: Program, mode: str = "overlapped", timing: CoreTiming | None = None
) -> Prediction:
    """The program's cycles on its own core, or with `timing` on another whose DRAM and bus
    differ (the compiler's output depends only on the array, the SRAMs and the DRAM
    size: perf/explore.py compiles once for the configs that share those)."""
    if mode not in schedule.MODES:
        raise ValueError(f"mode must be one of {schedule.MODES}, got {mode!r}")
    t = timing or CoreTiming.of(program.hw)
    listing = program.listing
    kinds = {la["id"]: (la["path"], la.get("kind", "module")) for la in program.layers}
    layers: list[Layer] = []
    total, unattributed = Figures(), Figures()
    all_slots: list[schedule.Slot] = []
    requests = request_bytes = 0
    for seg in program.segments:
        if seg["kind"] != "device":
            continue
        first = seg["pc"] // INSN_BYTES
        lines = listing.lines[first : first + seg["insns"]]
        if any(ln.insn is None for ln in lines):
            raise ValueError(f"segment at pc {seg['pc']:#x} has a word that does not decode")
        insns = [ln.insn for ln in lines]
        numbers = [ln.number for ln in lines]
        costs = []
        for ln in lines:
            try:
                costs.append(exec_cost(ln.insn, t))
            except StoreDeadlock as e:
                raise StoreDeadlock(f"instruction {ln.number} ({ln.text}): {e}") from None
        plan = schedule.fetch_plan([ln.pc for ln in lines], len(program.code), t)
        if mode == "sequential":
            slots = schedule.sequential(costs, plan, numbers)
        else:
            pcs, end = [ln.pc for ln in lines], len(program.code)
            slots = schedule.overlapped(costs, insns, numbers, pcs, end, t, program.hw)
        all_slots += slots
        requests += sum(s.fetch_requests for s in slots)
        request_bytes += sum(s.fetch_words for s in slots) * INSN_BYTES
        span, mark = Figures(), 0
        for insn, slot, cost in zip(insns, slots, costs, strict=True):
            span.count(slot, cost)
            if insn.opcode == Opcode.CHECKPOINT:
                at = slot.retire  # CYCLES when the CHECKPOINT retires
                span.cycles = at - mark
                mark = at
                path, kind = kinds.get(insn.layer, (f"layer {insn.layer}", "module"))
                layers.append(Layer(insn.layer, path, kind, span))
                total.add(span)
                span = Figures()
        end = slots[-1].end if slots else 0
        span.cycles = end - mark
        unattributed.add(span)
        total.add(span)
        total.overlap += schedule.overlap_cycles(slots)
    spad, acc = _sram_used(program)
    return Prediction(
        program.hw.name,
        mode,
        t,
        layers,
        total,
        unattributed,
        all_slots,
        requests,
        request_bytes,
        spad,
        acc,
    )
