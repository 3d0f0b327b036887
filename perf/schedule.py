"""Instruction costs laid out in time: fetch, issue and unit busy time per instruction.

Two schedules over the same per-instruction costs:

- "sequential", today's RTL (rtl/loom_ctrl.sv): blocking in-order issue, one instruction
  at a time. Each instruction spends its fetch cycles (FETCH_REQ / FETCH_WAIT), one ISSUE
  cycle and its unit's EXEC cycles, one after the other; a segment's cycles are their sum.
- "overlapped", a what-if for a later core, not validated against any RTL: a prefetching
  front end (fetch off the critical path), in-order issue one instruction per cycle,
  each unit running one instruction at a time, and an instruction waiting only for its
  unit and for the earlier instructions whose regions it conflicts with (read-after-
  write, write-after-read, write-after-write, from contract.regions.resolve); FENCE,
  CHECKPOINT and HALT wait until every unit is idle. That is the overlap docs/isa.md
  allows ("Hardware may overlap units only where that cannot change a result").
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.hw import HwConfig
from contract.isa import Insn, Opcode
from contract.regions import OperandError, Operands, overlap, resolve
from perf import dma
from perf.cost import ExecCost
from perf.timing import ISSUE_CYCLES, CoreTiming

MODES = ("sequential", "overlapped")
UNITS = ("dma", "mxu", "vpu")
# The new control unit (a fetch buffer) spends one FETCH_REQ cycle on every instruction,
# the buffer's hit, before ISSUE (rtl/loom_ctrl.sv, ST_FETCH_REQ with fb_hit).
FETCH_HIT_CYCLES = 1


@dataclass
class Slot:
    """One instruction in a schedule (cycles since its segment's start)."""

    number: int  # position in the listing
    unit: str
    fetch: int  # control-unit cycles in FETCH_REQ / FETCH_WAIT
    issue: int
    exec: int  # the unit's busy cycles
    start: int  # first cycle of its fetch (sequential) or of its execution (overlapped)
    end: int  # the cycle after its last one

    @property
    def cycles(self) -> int:
        return self.fetch + self.issue + self.exec


def fetch_plan(pcs: list[int], code_end: int, t: CoreTiming) -> list[tuple[int, int]]:
    """(fetch cycles, instructions requested from DRAM) for each instruction of a
    straight-line segment starting at pcs[0].

    Per-instruction fetch (the control unit without a buffer): each instruction is one
    DRAM round trip. With a fetch buffer of n instructions: a miss requests the next n
    (or what the code has left: the block may run past the segment's HALT) and then hits;
    the buffer is emptied at every start, so each segment begins with a miss.
    """
    block = t.fetch_block_insns
    if block is None:
        return [(dma.fetch_stall_cycles(pc, 1, t), 1) for pc in pcs]
    out, base, words = [], 0, 0
    for pc in pcs:
        if words and base <= pc < base + words * t.insn_bytes:
            out.append((FETCH_HIT_CYCLES, 0))
            continue
        base, words = pc, min(block, (code_end - pc) // t.insn_bytes)
        out.append((dma.fetch_stall_cycles(pc, words, t) + FETCH_HIT_CYCLES, words))
    return out


def sequential(costs: list[ExecCost], fetch: list[int], numbers: list[int]) -> list[Slot]:
    slots, now = [], 0
    for n, c, f in zip(numbers, costs, fetch, strict=True):
        slot = Slot(n, c.unit, f, ISSUE_CYCLES, c.cycles, now, now + f + ISSUE_CYCLES + c.cycles)
        slots.append(slot)
        now = slot.end
    return slots


def _operands(insn: Insn, hw: HwConfig) -> Operands | None:
    try:
        return resolve(insn, hw, hw.dram_bytes)
    except OperandError:  # it would fault at issue: nothing to depend on
        return None


def _conflicts(a: Operands | None, b: Operands | None) -> bool:
    """Whether b must wait for a: a write of either touches a region of the other."""
    if a is None or b is None:
        return False
    for w in a.writes.values():
        if any(overlap(w, r) for r in b.regions()):
            return True
    return any(overlap(w, r) for w in b.writes.values() for r in a.reads.values())


def overlapped(
    costs: list[ExecCost], insns: list[Insn], numbers: list[int], hw: HwConfig
) -> list[Slot]:
    """The what-if schedule of the module docstring. In-order issue with one instruction
    per unit in flight means that at any issue only the last instruction of each unit
    can still be running, so the dependency check looks at those three."""
    slots: list[Slot] = []
    last_on: dict[str, tuple[Slot, Operands | None]] = {}
    issue_at = 0
    for n, c, insn in zip(numbers, costs, insns, strict=True):
        ops = _operands(insn, hw)
        ready = issue_at
        if c.unit == "ctrl":
            if insn.opcode in (Opcode.FENCE, Opcode.CHECKPOINT, Opcode.HALT):
                ready = max([ready, *(s.end for s, _ in last_on.values())])
        else:
            for unit, (prev, prev_ops) in last_on.items():
                if unit == c.unit or _conflicts(prev_ops, ops):
                    ready = max(ready, prev.end)
        start = ready + ISSUE_CYCLES
        slot = Slot(n, c.unit, 0, ISSUE_CYCLES, c.cycles, start, start + c.cycles)
        slots.append(slot)
        if c.unit != "ctrl":
            last_on[c.unit] = (slot, ops)
        issue_at = start
    return slots
