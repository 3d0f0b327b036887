"""Lockstep co-simulation, the ISA model's side (the scoreboard's reference).

The RTL's retire trace is checked against the ISA model instruction by instruction. The
check runs in compiled code inside the simulator (sim/rtl/hdl/loom_lockstep.cc; its
interface is contract/lockstep.py); this module prepares what it compares against and
explains what it finds:

- expectations(...): runs the ISA model over a segment and records, per retired
  instruction, its pc, the record of the one region it wrote
  (contract.lockstep.write_record) and that region's digest right after it ran;
- explain(...): once the RTL diverges, the expected region (the ISA model re-run up to
  that instruction) next to the RTL's, with the first differing elements.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from contract.blob import Line
from contract.hw import HwConfig
from contract.isa import INSN_BYTES, Insn
from contract.lockstep import (
    REASON_TEXT,
    RECORD_FIELDS,
    Reason,
    Record,
    RegionKind,
    digest,
    write_record,
)
from sim.ref import ExecError, RefMachine


def region_words(machine: RefMachine, region: Record) -> np.ndarray:
    """The region's words in the ISA model's state, row-major: fp32 bits for SRAM and
    fp32 DRAM, bf16 bits (zero-extended) for bf16 DRAM. [rows, cols] uint32."""
    kind, addr, rs, cs, rows, cols, esize = region.astuple()
    if kind == RegionKind.NONE or rows <= 0 or cols <= 0:
        return np.zeros((0, 0), dtype=np.uint32)
    if kind == RegionKind.DRAM:
        flat = machine.dram.view(np.uint32 if esize == 4 else np.uint16)
        r = np.arange(rows)[:, None] * rs + np.arange(cols)[None, :] * cs
        return flat[addr // esize + r].astype(np.uint32)
    mem = machine.spad if kind == RegionKind.SPAD else machine.acc
    r = addr + np.arange(rows)[:, None] * rs + np.arange(cols)[None, :]
    return mem.view(np.uint32)[r]


@dataclass
class Expectations:
    """Per retired instruction of one segment: pc, digest, written region."""

    pc: np.ndarray  # [n] uint32
    digest: np.ndarray  # [n] uint64
    regions: np.ndarray  # [n, 7] int64
    fault: ExecError | None = None

    @property
    def max_region_words(self) -> int:
        if not len(self.regions):
            return 1
        return int(max(1, (self.regions[:, 4] * self.regions[:, 5]).max()))


def expectations(machine: RefMachine, code: bytes, pc: int, on_checkpoint=None) -> Expectations:
    """Run the ISA model over the segment at pc, recording each retirement."""
    pcs: list[int] = []
    digests: list[int] = []
    regions: list[tuple[int, ...]] = []

    def on_retire(index: int, at: int, insn: Insn) -> None:
        region = write_record(insn, machine.hw, machine.dram.size)
        pcs.append(at)
        regions.append(region.astuple())
        digests.append(digest(region_words(machine, region)))

    fault = None
    try:
        machine.run(code, pc, on_checkpoint, on_retire=on_retire)
    except ExecError as e:
        fault = e
    return Expectations(
        np.array(pcs, dtype=np.uint32),
        np.array(digests, dtype=np.uint64),
        np.array(regions, dtype=np.int64).reshape(-1, len(RECORD_FIELDS)),
        fault,
    )


@dataclass
class Divergence:
    """The first instruction at which the RTL and the ISA model disagree."""

    reason: Reason
    index: int  # retire index within the segment
    pc: int  # the pc the RTL retired
    expected_pc: int | None
    cycle: int  # clock cycles since reset (the waveform's time axis / clock period)
    start_cycle: int | None  # when the instruction issued (its unit started it)
    disasm: str
    region: dict
    expected: np.ndarray | None = None  # [rows, cols] words
    actual: np.ndarray | None = None
    first: list[dict] = field(default_factory=list)
    mismatches: int = 0
    layer: str | None = None

    @property
    def insn_number(self) -> int:
        """Position of the diverging instruction in the program listing (pc / 32): the
        one the ISA model retired when the pcs differ."""
        pc = (
            self.expected_pc
            if self.reason == Reason.PC and self.expected_pc is not None
            else self.pc
        )
        return pc // INSN_BYTES

    def to_dict(self) -> dict:
        return {
            "reason": REASON_TEXT.get(self.reason, str(self.reason)),
            "instruction": self.insn_number,
            "retire_index": self.index,
            "pc": self.pc,
            "expected_pc": self.expected_pc,
            "disasm": self.disasm,
            "layer": self.layer,
            "cycle": self.cycle,
            "start_cycle": self.start_cycle,
            "region": self.region,
            "mismatches": self.mismatches,
            "first": self.first,
        }


def explain(
    hw: HwConfig,
    initial_dram: np.ndarray,
    code: bytes,
    seg_pc: int,
    exp: Expectations,
    raw: list[int],
    actual_words: np.ndarray,
    start_cycle: int | None,
) -> Divergence:
    """Turn the checker's latch (reason, index, pc, cycle, ...) into a Divergence: the
    ISA model is re-run from the segment's initial DRAM up to the diverging instruction
    to get the expected region."""
    reason, index, pc, cycle = Reason(raw[0]), raw[1], raw[2] & 0xFFFFFFFF, raw[3]
    expected_pc = int(exp.pc[index]) if index < len(exp.pc) else None
    at = expected_pc if reason == Reason.PC and expected_pc is not None else pc
    # An illegal word at a wrong pc is itself the finding: Line shows its hex.
    d = Divergence(reason, index, pc, expected_pc, cycle, start_cycle, Line.of(code, at).text, {})
    if reason != Reason.VALUE:
        return d
    region = Record(*(int(x) for x in exp.regions[index]))
    kind, rows, cols, esize = region.kind, region.rows, region.cols, region.esize
    space = "-" if kind == RegionKind.NONE else RegionKind(kind).name
    d.region = dict(zip(RECORD_FIELDS, region.astuple(), strict=True)) | {"space": space}
    machine = RefMachine(hw, np.array(initial_dram, copy=True))
    with contextlib.suppress(ExecError):  # the RTL got further than a faulting model
        machine.run(code, seg_pc, stop_after=index + 1)
    d.expected = region_words(machine, region)
    d.actual = np.asarray(actual_words[: rows * cols], dtype=np.uint32).reshape(rows, cols)
    bad = np.argwhere(d.expected != d.actual)
    d.mismatches = int(len(bad))
    bf16 = kind == RegionKind.DRAM and esize == 2
    for r, c in bad[:8]:
        e, a = int(d.expected[r, c]), int(d.actual[r, c])
        d.first.append(
            {
                "row": int(r),
                "col": int(c),
                "expected": _as_float(e, bf16),
                "actual": _as_float(a, bf16),
                "expected_hex": f"{e:#0{6 if bf16 else 10}x}",
                "actual_hex": f"{a:#0{6 if bf16 else 10}x}",
            }
        )
    return d


def as_floats(words: np.ndarray, bf16: bool) -> np.ndarray:
    w = np.asarray(words, dtype=np.uint32)
    return (w << 16 if bf16 else w).view(np.float32)


def _as_float(word: int, bf16: bool) -> float:
    return float(as_floats(np.array([word], dtype=np.uint32), bf16)[0])


def format_divergence(d: Divergence) -> str:
    """The report printed when the RTL first disagrees with the ISA model."""
    lines = [
        f"first divergence from the ISA model: instruction {d.insn_number}"
        f" (pc {d.insn_number * INSN_BYTES:#x}): {d.disasm}",
        f"  layer      {d.layer or '-'}",
        f"  cycle      {d.cycle:,} (issued at cycle {d.start_cycle:,})"
        if d.start_cycle is not None
        else f"  cycle      {d.cycle:,}",
        f"  what       the RTL {REASON_TEXT.get(d.reason, d.reason)}",
    ]
    if d.reason == Reason.PC and d.expected_pc is not None:
        lines.append(
            f"  pc         RTL {d.pc:#x}, ISA model {d.expected_pc:#x}"
            f" (instruction {d.expected_pc // INSN_BYTES})"
        )
    if d.region:
        r = d.region
        lines.append(
            f"  region     {r['space']} addr {r['addr']:#x} rows {r['rows']} cols {r['cols']}"
            f" row stride {r['row_stride']}: {d.mismatches} of {r['rows'] * r['cols']}"
            " elements differ"
        )
        for f in d.first:
            lines.append(
                f"    [{f['row']}, {f['col']}]  expected {f['expected']:.9g} ({f['expected_hex']})"
                f"  RTL {f['actual']:.9g} ({f['actual_hex']})"
            )
    return "\n".join(lines)
