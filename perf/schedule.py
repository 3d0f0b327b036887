"""Instruction costs laid out in time: fetch, issue, execution and retirement.

Two schedules over the same per-instruction costs:

- "overlapped", today's RTL (rtl/loom_ctrl.sv), cycle for cycle: in-order issue, one
  instruction in flight per unit (DMA, MXU, VPU), in-order retirement. An instruction
  spends one FETCH_REQ cycle on a fetch-buffer hit (a miss waits for the DMA engine to
  finish its instruction, then costs the round trip), then waits in ISSUE until its unit
  is free, no instruction in flight conflicts with its SRAM regions (read-after-write,
  write-after-read, write-after-write, from contract.regions.resolve) and the memory
  ports it drives (`ports`) are free; each of those frees the cycle after the
  instruction holding it retires. It executes from the next cycle for its unit's busy
  cycles and retires in its done cycle or, behind an older one still running, the
  cycle after that one retires. NOP, FENCE, CHECKPOINT and HALT wait until everything
  has retired and retire in their ISSUE cycle; nothing issues behind a GATHER until it
  retires. The ISSUE cycles spent waiting are attributed as the RTL's stall counters
  attribute them (STALL_DRAIN, STALL_UNIT, STALL_DEP, in that priority).
- "sequential", the core before overlap (0a92f02 and earlier), kept for comparison:
  blocking issue, one instruction at a time. Each instruction spends its fetch cycles
  (FETCH_REQ / FETCH_WAIT), one ISSUE cycle and its unit's EXEC cycles, one after the
  other; a segment's cycles are their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.hw import HwConfig
from contract.isa import BMode, Insn, Mem, Opcode
from contract.regions import OperandError, Operands, Sram, resolve
from perf import dma
from perf.cost import ExecCost
from perf.timing import ISSUE_CYCLES, CoreTiming

MODES = ("overlapped", "sequential")
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
    retire: int = -1  # the cycle it retires in (the retire trace's cycle)
    # ISSUE cycles spent waiting, by the RTL's stall counters (overlapped only)
    stall_drain: int = 0
    stall_unit: int = 0
    stall_dep: int = 0
    fetch_requests: int = 0  # block requests made for it, and the instructions they asked
    fetch_words: int = 0

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


def sequential(
    costs: list[ExecCost], plan: list[tuple[int, int]], numbers: list[int]
) -> list[Slot]:
    """`plan`: fetch_plan's (fetch cycles, instructions requested) per instruction."""
    slots, now = [], 0
    for n, c, (f, words) in zip(numbers, costs, plan, strict=True):
        end = now + f + ISSUE_CYCLES + c.cycles
        slot = Slot(n, c.unit, f, ISSUE_CYCLES, c.cycles, now, end, retire=end - 1)
        slot.fetch_requests, slot.fetch_words = (1, words) if words else (0, 0)
        slots.append(slot)
        now = slot.end
    return slots


# rtl/loom_footprint.sv: the memory ports each instruction's unit drives (claimed at
# issue). The matrix unit reads C (acc) and the bias row through ACC read port 1, the DMA
# engine and the vector unit's first operand through port 0 of their memory.
def ports(insn: Insn) -> frozenset[str]:
    """The memory ports (space_rd0, space_rd1, space_wr) `insn`'s unit drives."""
    op = insn.opcode

    def mem(space) -> str:
        return "acc" if Mem(space) == Mem.ACC else "spad"

    if op in (Opcode.DMA_LD, Opcode.GATHER):
        return frozenset({f"{mem(insn.space)}_wr"})
    if op == Opcode.DMA_ST:
        return frozenset({f"{mem(insn.space)}_rd0"})
    if op == Opcode.MATMUL:
        return frozenset({"spad_rd0", "spad_rd1", "acc_wr", "acc_rd1"})
    if op == Opcode.MOVE:
        return frozenset({f"{mem(insn.src_space)}_rd0", f"{mem(insn.dst_space)}_wr"})
    if op == Opcode.VBIN:
        second = {"acc_rd1"} if BMode(insn.bmode) != BMode.IMM else set()
        return frozenset({"acc_rd0", "acc_wr", *second})
    if op in (Opcode.VUNARY, Opcode.VMASK, Opcode.VREDUCE):
        return frozenset({"acc_rd0", "acc_wr"})
    return frozenset()


def _operands(insn: Insn, hw: HwConfig) -> Operands | None:
    try:
        return resolve(insn, hw, hw.dram_bytes)
    except OperandError:  # it would fault at issue: nothing to depend on
        return None


def _sram_regions(insn: Insn, hw: HwConfig) -> tuple[list[Sram], list[Sram]]:
    """The SRAM regions `insn` reads and writes (DRAM order needs no check: one DMA
    engine executes its instructions in program order)."""
    ops = _operands(insn, hw)
    if ops is None:
        return [], []
    reads = [r for r in ops.reads.values() if isinstance(r, Sram)]
    writes = [w for w in ops.writes.values() if isinstance(w, Sram)]
    return reads, writes


def _depends(earlier: tuple[list[Sram], list[Sram]], later: tuple[list[Sram], list[Sram]]) -> bool:
    """rtl/loom_mem_pkg.sv depends_on: RAW, WAR or WAW on an SRAM element span."""
    e_reads, e_writes = earlier
    l_reads, l_writes = later
    return any(w.overlaps(r) for w in e_writes for r in (*l_reads, *l_writes)) or any(
        w.overlaps(r) for w in l_writes for r in e_reads
    )


@dataclass
class _InFlight:
    unit: str
    retire: int
    regions: tuple[list[Sram], list[Sram]]
    ports: frozenset[str]
    gather: bool


def overlapped(
    costs: list[ExecCost],
    insns: list[Insn],
    numbers: list[int],
    pcs: list[int],
    code_end: int,
    t: CoreTiming,
    hw: HwConfig,
) -> list[Slot]:
    """The RTL's schedule (module docstring). Cycle 0 is the segment's first FETCH_REQ;
    CYCLES at the end is the HALT's retire cycle + 1.

    Fetch: the buffer holds one block (emptied at the start). A miss in FETCH_REQ waits
    until the DMA engine is not executing, then costs the round trip; before a DMA
    instruction issues, the block after it is fetched if the buffer does not hold its
    successor (from ISSUE, once the engine is free), so that what follows can issue
    while it executes."""
    slots: list[Slot] = []
    now = 0  # this instruction's first FETCH_REQ cycle
    last_retire = -1
    dma_done = -1  # done cycle of the last DMA instruction (the engine fetches after it)
    free = dict.fromkeys(UNITS, 0)  # first cycle each unit may issue again
    flight: list[_InFlight] = []  # issued instructions that may still be in flight
    block = t.fetch_block_insns or 1
    fb_base, fb_words = 0, 0

    def holds(pc: int) -> bool:
        return fb_words > 0 and fb_base <= pc < fb_base + fb_words * t.insn_bytes

    requests: list[int] = []  # the words of each request for this instruction

    def request(pc: int) -> int:
        """Fill the buffer from pc; the round trip's cycles (request to last beat)."""
        nonlocal fb_base, fb_words
        fb_base, fb_words = pc, min(block, (code_end - pc) // t.insn_bytes)
        requests.append(fb_words)
        return dma.fetch_stall_cycles(pc, fb_words, t)

    for n, c, insn, pc in zip(numbers, costs, insns, pcs, strict=True):
        requests.clear()
        if holds(pc):
            issue_from = now + FETCH_HIT_CYCLES
        else:  # a miss: the request waits until the DMA engine is not executing
            issue_from = max(now, dma_done + 1) + request(pc) + FETCH_HIT_CYCLES
        fetch = issue_from - now
        flight = [f for f in flight if f.retire >= issue_from]
        drain_at = unit_at = 0  # waits before the next block's fetch (prefetch)
        if c.unit == "ctrl":
            t_drain = last_retire + 1
            t_unit = t_dep = t_port = 0
        else:
            t_drain = max((f.retire + 1 for f in flight if f.gather), default=0)
            nxt = pc + t.insn_bytes
            if c.unit == "dma" and not holds(nxt) and nxt + t.insn_bytes <= code_end:
                # ISSUE waits (drain, then for the engine), requests, and is back in
                # ISSUE the cycle after the last beat.
                at = max(issue_from, t_drain)
                drain_at, at = at - issue_from, max(at, dma_done + 1)
                unit_at = at - issue_from - drain_at
                cycles = request(nxt)
                fetch += cycles - 1  # FETCH_NEXT; the request cycle is an ISSUE cycle
                issue_from = at + cycles
                flight = [f for f in flight if f.retire >= issue_from]
            regions = _sram_regions(insn, hw)
            claims = ports(insn)
            t_unit = free[c.unit]
            t_dep = max((f.retire + 1 for f in flight if _depends(f.regions, regions)), default=0)
            t_port = max((f.retire + 1 for f in flight if f.ports & claims), default=0)
        y = max(issue_from, t_drain, t_unit, t_dep, t_port)
        # Each waiting ISSUE cycle goes to the first condition still holding in it.
        drain = max(0, min(t_drain, y) - issue_from)
        after_drain = max(issue_from, t_drain)
        unit_wait = max(0, t_unit - after_drain)
        after_unit = max(after_drain, t_unit)
        dep = max(0, t_dep - after_unit)
        port = max(0, t_port - max(after_unit, t_dep))
        if c.unit == "ctrl":
            done = retire = y
        else:
            done = y + c.cycles
            retire = max(done, last_retire + 1)
            free[c.unit] = retire + 1
            if c.unit == "dma":
                dma_done = done
            flight.append(_InFlight(c.unit, retire, regions, claims, insn.opcode == Opcode.GATHER))
        slots.append(
            Slot(
                n,
                c.unit,
                fetch,
                y - issue_from + ISSUE_CYCLES,
                c.cycles,
                y + 1,
                done + 1,
                retire=retire,
                stall_drain=drain_at + drain,
                stall_unit=unit_at + unit_wait + port,
                stall_dep=dep,
                fetch_requests=len(requests),
                fetch_words=sum(requests),
            )
        )
        last_retire = retire
        now = y + 1
    return slots


def overlap_cycles(slots: list[Slot]) -> int:
    """Cycles in which two or more units execute (the RTL's OVERLAP counter): the unit
    busy intervals [start, end) of one segment's schedule, swept."""
    events = []
    for s in slots:
        if s.unit != "ctrl" and s.exec:
            events += [(s.start, 1), (s.end, -1)]
    events.sort()
    out, busy, since = 0, 0, 0
    for at, step in events:
        if busy >= 2:
            out += at - since
        busy += step
        since = at
    return out
