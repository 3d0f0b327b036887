"""The bit-exact ISA model of the Loom core: the executable specification.

Executes encoded instructions on a DRAM image (a numpy byte array) with numpy,
vectorised over each instruction's whole region, so one instruction costs a few
numpy calls (MATMUL: a few per step of k). Bit semantics come from
contract.numerics, operand regions and their faults from contract.regions; docs/isa.md
states them in words.

Errors (illegal instruction, misaligned or out-of-range address, SRAM overflow,
overlapping operands, gather index out of range) raise ExecError naming the
instruction index, pc and disassembly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np
from numpy.lib.stride_tricks import as_strided

from contract import numerics as nx
from contract.asm import format_insn
from contract.blob import DRAM_ELEMENTS
from contract.hw import HwConfig
from contract.isa import (
    INSN_BYTES,
    DType,
    Fault,
    IllegalInstruction,
    Insn,
    Mem,
    Opcode,
    VBinFunct,
    VReduceFunct,
    VUnaryFunct,
    decode,
)
from contract.regions import OperandError, Operands, Region, Sram, resolve


class ExecError(RuntimeError):
    """A program fault, named by the instruction that caused it."""

    def __init__(
        self,
        message: str,
        index: int | None = None,
        pc: int | None = None,
        insn: Insn | None = None,
        fault: Fault = Fault.NONE,
    ):
        self.reason = message
        self.fault = fault
        self.index, self.pc, self.insn = index, pc, insn
        where = ""
        if index is not None:
            where = f"instruction {index} (pc {pc:#x})"
            if insn is not None:
                where += f": {format_insn(insn)}"
            where += ": "
        super().__init__(where + message)


@dataclass
class Retired:
    index: int
    pc: int
    opcode: str
    args: dict
    cycle: int | None = None  # when the RTL retired it (RTL traces only)
    issued: int | None = None  # when its unit started it (RTL traces only; control: = cycle)


@dataclass
class RunStats:
    retired: int = 0
    per_unit: Counter = field(default_factory=Counter)
    per_opcode: Counter = field(default_factory=Counter)
    macs: int = 0
    dma_bytes: int = 0


def fetch_segment(code: bytes, pc: int, max_insns: int = 50_000_000):
    """Yield (index, pc, instruction) from pc through HALT, as the core fetches: running
    off the code, an illegal word and a missing HALT are faults (ExecError)."""
    index = 0
    if pc % INSN_BYTES:
        raise ExecError(
            f"pc {pc:#x} is not a multiple of the {INSN_BYTES}-byte instruction",
            index,
            pc,
            fault=Fault.FETCH_RANGE,
        )
    while True:
        if pc + INSN_BYTES > len(code) or pc < 0:
            raise ExecError(
                f"pc {pc:#x} ran off the end of the code ({len(code)} bytes) without HALT",
                index,
                pc,
                fault=Fault.FETCH_RANGE,
            )
        try:
            insn = decode(code[pc : pc + INSN_BYTES], pc=pc)
        except IllegalInstruction as e:
            raise ExecError(
                f"illegal instruction: {e}", index, pc, fault=Fault.ILLEGAL_INSN
            ) from None
        yield index, pc, insn
        if insn.opcode == Opcode.HALT:
            return
        pc += INSN_BYTES
        index += 1
        if index >= max_insns:
            raise ExecError(f"no HALT after {max_insns} instructions", index, pc)


_UNARY = {
    VUnaryFunct.COPY: lambda a: a.copy(),
    VUnaryFunct.EXP: nx.exp,
    VUnaryFunct.RECIP: nx.recip,
    VUnaryFunct.RSQRT: nx.rsqrt,
    VUnaryFunct.TANH: nx.tanh,
    VUnaryFunct.ERF: nx.erf,
}
_BINARY = {
    VBinFunct.ADD: np.add,
    VBinFunct.SUB: np.subtract,
    VBinFunct.MUL: np.multiply,
    VBinFunct.MAX: nx.vmax,
    VBinFunct.MIN: nx.vmin,
    **{VBinFunct[op.upper()]: partial(nx.compare, op) for op in nx.COMPARISONS},
}
# Selects: the immediate is their third operand.
_SELECT = {VBinFunct.KEEP: nx.keep, VBinFunct.FILL: nx.fill}


class Observer(Protocol):
    """Code outside the model that watches every run (functional coverage: verif/).
    Registered in OBSERVERS; the model never imports one."""

    def start(self, machine: RefMachine, pc: int) -> None:
        """A run begins at pc."""

    def issue(self, machine: RefMachine, index: int, pc: int, insn: Insn) -> None:
        """Before `insn` takes effect (its operands still hold their inputs)."""

    def fault(self, machine: RefMachine, err: ExecError) -> None:
        """The run stopped with err."""


OBSERVERS: list[Observer] = []


class RefMachine:
    """One Loom core: SPAD (bf16 values held as fp32), ACC (fp32) and a DRAM image."""

    def __init__(self, hw: HwConfig, dram: np.ndarray):
        if dram.dtype != np.uint8 or dram.ndim != 1 or dram.size % 4:
            raise ValueError("DRAM image must be a 1-D uint8 array, size a multiple of 4")
        self.hw = hw
        self.dram = dram
        self.spad = np.zeros(hw.spad_elems, dtype=np.float32)
        self.acc = np.zeros(hw.acc_elems, dtype=np.float32)
        self.stats = RunStats()

    # ------------------------------------------------------------ addressing helpers
    def operands(self, i: Insn) -> Operands:
        """i's regions, checked (contract.regions); ExecError on an operand fault."""
        try:
            return resolve(i, self.hw, self.dram.size)
        except OperandError as e:
            raise ExecError(e.reason, fault=e.fault) from None

    def view(self, region: Region) -> np.ndarray:
        """A numpy view of a checked region of SRAM or DRAM."""
        if isinstance(region, Sram):
            mem = self.acc if region.space == Mem.ACC else self.spad
            return as_strided(
                mem[region.addr :], shape=(region.rows, region.cols), strides=(region.stride * 4, 4)
            )
        size = region.size
        flat = self.dram.view(DRAM_ELEMENTS[region.dtype].storage)
        return as_strided(
            flat[region.addr // size :],
            shape=(region.rows, region.cols),
            strides=(region.rs * size, region.cs * size),
        )

    # ------------------------------------------------------------ execution
    def run(
        self,
        code: bytes,
        start_pc: int = 0,
        on_checkpoint: Callable[[int], None] | None = None,
        trace: list[Retired] | None = None,
        max_insns: int = 50_000_000,
        on_retire: Callable[[int, int, Insn], None] | None = None,
        stop_after: int | None = None,
    ) -> int:
        """Execute from start_pc until HALT (or until stop_after instructions have
        retired); returns the pc after the last retired instruction. on_retire(index, pc,
        insn) is called after each instruction has taken effect."""
        observers = tuple(OBSERVERS)
        for obs in observers:
            obs.start(self, start_pc)
        try:
            return self._run(
                code, start_pc, on_checkpoint, trace, max_insns, on_retire, stop_after, observers
            )
        except ExecError as e:
            for obs in observers:
                obs.fault(self, e)
            raise

    def _run(
        self, code, start_pc, on_checkpoint, trace, max_insns, on_retire, stop_after, observers
    ) -> int:
        for index, pc, insn in fetch_segment(code, start_pc, max_insns):
            for obs in observers:
                obs.issue(self, index, pc, insn)
            try:
                self.step(insn, on_checkpoint)
            except ExecError as e:
                raise ExecError(e.reason, index, pc, insn, e.fault) from None
            st = self.stats
            st.retired += 1
            st.per_opcode[insn.opcode.name] += 1
            st.per_unit[insn.unit] += 1
            if trace is not None:
                trace.append(Retired(index, pc, insn.opcode.name, dict(insn.args)))
            if on_retire is not None:
                on_retire(index, pc, insn)
            if index + 1 == stop_after:
                break
        return pc + INSN_BYTES

    def step(self, i: Insn, on_checkpoint: Callable[[int], None] | None = None) -> None:
        op = i.opcode
        if op in (Opcode.NOP, Opcode.HALT, Opcode.FENCE):
            return
        if op == Opcode.CHECKPOINT:
            if on_checkpoint is not None:
                on_checkpoint(i.layer)
            return
        ops = self.operands(i)
        getattr(self, f"_exec_{op.name.lower()}")(i, ops)
        self.stats.dma_bytes += ops.dram_read_bytes + ops.dram_write_bytes

    def _exec_dma_ld(self, i: Insn, ops: Operands) -> None:
        src, dst = self.view(ops.reads["src"]), self.view(ops.writes["dst"])
        dst[...] = nx.load_values(src, i.dtype == DType.BF16, i.space == Mem.SPAD)

    def _exec_dma_st(self, i: Insn, ops: Operands) -> None:
        src, dst = self.view(ops.reads["src"]), self.view(ops.writes["dst"])
        dst[...] = nx.f32_to_bf16_bits(src) if i.dtype == DType.BF16 else src

    def _exec_gather(self, i: Insn, ops: Operands) -> None:
        if ops.writes["dst"].empty:
            return  # moves nothing, reads no index (ISA v3)
        table, dst = self.view(ops.reads["table"]), self.view(ops.writes["dst"])
        # Indices are checked as they are read, after the static checks.
        idx = self.view(ops.reads["idx"])[:, 0]
        bad = np.nonzero((idx < 0) | (idx >= i.table_rows))[0]
        if bad.size:
            r = int(bad[0])
            raise ExecError(
                f"gather index {int(idx[r])} (row {r}) outside the {i.table_rows}-row table",
                fault=Fault.GATHER_INDEX,
            )
        dst[...] = nx.load_values(table[idx], i.dtype == DType.BF16, i.space == Mem.SPAD)

    def _exec_matmul(self, i: Insn, ops: Operands) -> None:
        a = np.ascontiguousarray(self.view(ops.reads["a"]))
        b = self.view(ops.reads["b"])
        b = np.ascontiguousarray(b.T if i.trans_b else b)
        c = self.view(ops.writes["dst"])
        if i.use_bias:
            acc = np.repeat(self.view(ops.reads["bias"]), i.m, axis=0).astype(np.float32)
        elif i.acc:
            acc = c.astype(np.float32, copy=True)
        else:
            acc = np.zeros((i.m, i.n), dtype=np.float32)
        prod = np.empty_like(acc)
        # Strictly sequential in k: acc <- fp32(acc + fp32(a[:, k] * b[k, :])).
        for k in range(i.k):
            np.multiply(a[:, k : k + 1], b[k : k + 1, :], out=prod)
            np.add(acc, prod, out=acc)
        c[...] = nx.canon_nan(acc)
        self.stats.macs += i.m * i.n * i.k

    def _exec_move(self, i: Insn, ops: Operands) -> None:
        src, dst = self.view(ops.reads["src"]), self.view(ops.writes["dst"])
        dst[...] = nx.round_bf16(src) if i.dst_space == Mem.SPAD and i.src_space == Mem.ACC else src

    def _exec_vbin(self, i: Insn, ops: Operands) -> None:
        a = self.view(ops.reads["a"])
        b = self.view(ops.reads["b"]) if "b" in ops.reads else np.float32(i.imm)
        funct = VBinFunct(i.funct)
        if funct in _SELECT:
            out = _SELECT[funct](a, b, np.float32(i.imm))
        else:
            out = _BINARY[funct](a, b).astype(np.float32)
        self.view(ops.writes["dst"])[...] = nx.canon_nan(out)

    def _exec_vunary(self, i: Insn, ops: Operands) -> None:
        out = _UNARY[VUnaryFunct(i.funct)](self.view(ops.reads["a"]))
        self.view(ops.writes["dst"])[...] = nx.canon_nan(out)

    def _exec_vreduce(self, i: Insn, ops: Operands) -> None:
        op = "sum" if i.funct == VReduceFunct.SUM else "max"
        a = np.asarray(self.view(ops.reads["a"]))
        self.view(ops.writes["dst"])[:, 0] = nx.reduce_rows(a, self.hw.line_elems, op)

    def _exec_vmask(self, i: Insn, ops: Operands) -> None:
        r = np.arange(i.rows)[:, None]
        c = np.arange(i.cols)[None, :]
        a = self.view(ops.reads["a"])
        out = np.where(c > r + i.offset, np.float32(i.imm), a).astype(np.float32)
        self.view(ops.writes["dst"])[...] = nx.canon_nan(out)
