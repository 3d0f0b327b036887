"""Lockstep co-simulation, the ISA model's side.

The RTL's retire trace is checked against the ISA model instruction by instruction. The
check runs in compiled code inside the simulator (sim/hdl/loom_lockstep.cc); this
module prepares what it compares against and explains what it finds:

- write_region(insn): the one region an instruction writes (its destination in SPAD,
  ACC or DRAM), as the record the C++ checker reads;
- expectations(...): runs the ISA model over a segment and records, per retired
  instruction, its pc and the digest of its destination region right after it ran;
- digest(words): the digest both sides compute (see loom_lockstep.cc);
- explain(...): once the RTL diverges, the expected region (the ISA model re-run up to
  that instruction) next to the RTL's, with the first differing elements.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from compiler.asm import format_insn
from compiler.hw import HwConfig
from compiler.isa import INSN_BYTES, DType, Insn, Mem, Opcode, decode
from sim.ref import ExecError, RefMachine

# Region kinds; the record layout is loom_lockstep.cc's struct Region.
NONE, SPAD, ACC, DRAM = 0, 1, 2, 3
REGION_FIELDS = ("kind", "addr", "row_stride", "col_stride", "rows", "cols", "esize")
KIND_NAMES = {NONE: "-", SPAD: "SPAD", ACC: "ACC", DRAM: "DRAM"}

_OFFSET = np.uint64(0x9E3779B97F4A7C15)
_STEP = np.uint64(0xD6E8FEB86659FD93)

# Reasons the checker latches (loom_lockstep.cc enum Reason).
REASONS = {
    1: "retired a different pc than the ISA model",
    2: "wrote different values than the ISA model",
    3: "retired more instructions than the ISA model",
}


def write_region(i: Insn) -> tuple[int, ...]:
    """(kind, addr, row_stride, col_stride, rows, cols, esize) of what i writes."""
    op = i.opcode
    if op in (Opcode.DMA_LD, Opcode.GATHER):
        return (_space(i.space), i.sram, i.sram_stride, 1, i.rows, i.cols, 4)
    if op == Opcode.DMA_ST:
        esize = 4 if i.dtype == DType.FP32 else 2
        return (DRAM, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, esize)
    if op == Opcode.MATMUL:
        return (ACC, i.dst, i.dst_stride, 1, i.m, i.n, 4)
    if op == Opcode.MOVE:
        return (_space(i.dst_space), i.dst, i.dst_stride, 1, i.rows, i.cols, 4)
    if op in (Opcode.VBIN, Opcode.VUNARY, Opcode.VMASK):
        return (ACC, i.dst, i.dst_stride, 1, i.rows, i.cols, 4)
    if op == Opcode.VREDUCE:
        return (ACC, i.dst, i.dst_stride, 1, i.rows, 1, 4)
    return (NONE, 0, 0, 0, 0, 0, 0)


def _space(space: int) -> int:
    return ACC if space == Mem.ACC else SPAD


def region_words(machine: RefMachine, region: tuple[int, ...]) -> np.ndarray:
    """The region's words in the ISA model's state, row-major: fp32 bits for SRAM and
    fp32 DRAM, bf16 bits (zero-extended) for bf16 DRAM. [rows, cols] uint32."""
    kind, addr, rs, cs, rows, cols, esize = region
    if kind == NONE or rows <= 0 or cols <= 0:
        return np.zeros((0, 0), dtype=np.uint32)
    if kind == DRAM:
        flat = machine.dram.view(np.uint32 if esize == 4 else np.uint16)
        r = np.arange(rows)[:, None] * rs + np.arange(cols)[None, :] * cs
        return flat[addr // esize + r].astype(np.uint32)
    mem = machine.spad if kind == SPAD else machine.acc
    r = addr + np.arange(rows)[:, None] * rs + np.arange(cols)[None, :]
    return mem.view(np.uint32)[r]


def digest(words: np.ndarray) -> int:
    """sum_j (w_j + OFFSET) * (j * STEP | 1) mod 2**64 over the words in row-major order."""
    w = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
    if w.size == 0:
        return 0
    j = np.arange(w.size, dtype=np.uint64)
    return int(np.sum((w + _OFFSET) * ((j * _STEP) | np.uint64(1)), dtype=np.uint64))


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
        region = write_region(insn)
        pcs.append(at)
        regions.append(region)
        digests.append(digest(region_words(machine, region)))

    fault = None
    try:
        machine.run(code, pc, on_checkpoint, on_retire=on_retire)
    except ExecError as e:
        fault = e
    return Expectations(
        np.array(pcs, dtype=np.uint32),
        np.array(digests, dtype=np.uint64),
        np.array(regions, dtype=np.int64).reshape(-1, len(REGION_FIELDS)),
        fault,
    )


@dataclass
class Divergence:
    """The first instruction at which the RTL and the ISA model disagree."""

    reason: int
    index: int  # retire index within the segment
    pc: int  # the pc the RTL retired
    expected_pc: int | None
    cycle: int  # clock cycles since reset (the waveform's time axis / clock period)
    start_cycle: int | None  # when the instruction issued (previous retirement)
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
        pc = self.expected_pc if self.reason == 1 and self.expected_pc is not None else self.pc
        return pc // INSN_BYTES

    def to_dict(self) -> dict:
        return {
            "reason": REASONS.get(self.reason, str(self.reason)),
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
    reason, index, pc, cycle = raw[0], raw[1], raw[2] & 0xFFFFFFFF, raw[3]
    expected_pc = int(exp.pc[index]) if index < len(exp.pc) else None
    at = expected_pc if reason == 1 and expected_pc is not None else pc
    try:
        text = format_insn(decode(code[at : at + INSN_BYTES]))
    except Exception:  # an illegal word at a wrong pc is itself the finding
        text = code[at : at + INSN_BYTES].hex()
    d = Divergence(reason, index, pc, expected_pc, cycle, start_cycle, text, {})
    if reason != 2:
        return d
    region = tuple(int(x) for x in exp.regions[index])
    kind, addr, rs, cs, rows, cols, esize = region
    d.region = dict(zip(REGION_FIELDS, region, strict=True)) | {"space": KIND_NAMES[kind]}
    machine = RefMachine(hw, np.array(initial_dram, copy=True))
    with contextlib.suppress(ExecError):  # the RTL got further than a faulting model
        machine.run(code, seg_pc, stop_after=index + 1)
    d.expected = region_words(machine, region)
    d.actual = np.asarray(actual_words[: rows * cols], dtype=np.uint32).reshape(rows, cols)
    bad = np.argwhere(d.expected != d.actual)
    d.mismatches = int(len(bad))
    bf16 = kind == DRAM and esize == 2
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
        f"  what       the RTL {REASONS.get(d.reason, d.reason)}",
    ]
    if d.reason == 1 and d.expected_pc is not None:
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
