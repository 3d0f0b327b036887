"""The bit-exact ISA model of the Loom core: the executable specification.

Executes encoded instructions on a DRAM image (a numpy byte array) with numpy,
vectorised over each instruction's whole region, so one instruction costs a few
numpy calls (MATMUL: a few per step of k). Bit semantics come from
compiler.numerics; docs/isa.md states them in words.

Errors (illegal instruction, misaligned or out-of-range address, SRAM overflow,
overlapping operands, gather index out of range) raise ExecError naming the
instruction index, pc and disassembly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from compiler import numerics as nx
from compiler.asm import format_insn
from compiler.hw import HwConfig
from compiler.isa import (
    FORMATS,
    INSN_BYTES,
    BMode,
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
}
_BINARY = {
    VBinFunct.ADD: np.add,
    VBinFunct.SUB: np.subtract,
    VBinFunct.MUL: np.multiply,
    VBinFunct.MAX: nx.vmax,
    VBinFunct.MIN: nx.vmin,
}


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
    def _sram(
        self, space: int, addr: int, stride: int, rows: int, cols: int, what: str
    ) -> np.ndarray:
        mem = self.acc if space == Mem.ACC else self.spad
        name = Mem(space).name
        line = self.hw.line_elems
        if addr % line or stride % line:
            raise ExecError(
                f"{what}: {name} address {addr} / stride {stride} not aligned"
                f" to the {line}-element line",
                fault=Fault.SRAM_ALIGN,
            )
        if rows > 1 and cols > stride:
            raise ExecError(
                f"{what}: {cols} columns overlap rows of stride {stride}", fault=Fault.SRAM_LAYOUT
            )
        end = addr + (rows - 1) * stride + cols if rows and cols else addr
        if end > mem.size:
            raise ExecError(
                f"{what}: {name} region [{addr}, {end}) overflows the {mem.size}-element {name}",
                fault=Fault.SRAM_RANGE,
            )
        return as_strided(mem[addr:], shape=(rows, cols), strides=(stride * 4, 4))

    def _dram(
        self, dtype: int, addr: int, rs: int, cs: int, rows: int, cols: int, what: str
    ) -> np.ndarray:
        size = 4 if dtype == DType.FP32 else 2
        if addr % size:
            raise ExecError(
                f"{what}: DRAM address {addr:#x} not aligned to {size} bytes",
                fault=Fault.DRAM_ALIGN,
            )
        last = addr + ((rows - 1) * rs + (cols - 1) * cs) * size + size
        if rows and cols and last > self.dram.size:
            raise ExecError(
                f"{what}: DRAM access [{addr:#x}, {last:#x}) out of range"
                f" (DRAM is {self.dram.size:#x} bytes)",
                fault=Fault.DRAM_RANGE,
            )
        flat = self.dram.view(np.float32 if dtype == DType.FP32 else np.uint16)
        return as_strided(flat[addr // size :], shape=(rows, cols), strides=(rs * size, cs * size))

    @staticmethod
    def _check_alias(dst: tuple, src: tuple, what: str) -> None:
        """dst and src (space, addr, stride, rows, cols) must be identical or disjoint."""
        if dst[0] != src[0] or dst == src:
            return
        d0, d1 = dst[1], dst[1] + (dst[3] - 1) * dst[2] + dst[4]
        s0, s1 = src[1], src[1] + (src[3] - 1) * src[2] + src[4]
        if d0 < s1 and s0 < d1:
            raise ExecError(f"{what}: destination partially overlaps a source", fault=Fault.ALIAS)

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
        for index, pc, insn in fetch_segment(code, start_pc, max_insns):
            try:
                self.step(insn, on_checkpoint)
            except ExecError as e:
                raise ExecError(e.reason, index, pc, insn, e.fault) from None
            st = self.stats
            st.retired += 1
            st.per_opcode[insn.opcode.name] += 1
            st.per_unit[FORMATS[insn.opcode].unit] += 1
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
        handler = getattr(self, f"_exec_{op.name.lower()}")
        handler(i)

    def _exec_dma_ld(self, i: Insn) -> None:
        src = self._dram(i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "source")
        dst = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
        if i.dtype == DType.BF16:
            vals = nx.bf16_bits_to_f32(src)
        else:
            vals = src if i.space == Mem.ACC else nx.round_bf16(src)
        dst[...] = nx.canon_nan(vals)
        self.stats.dma_bytes += src.size * src.itemsize

    def _exec_dma_st(self, i: Insn) -> None:
        if i.rows > 1 and i.dram_rs == 0 or i.cols > 1 and i.dram_cs == 0:
            raise ExecError(
                "store with a zero stride writes one address twice", fault=Fault.BAD_OPERANDS
            )
        src = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "source")
        dst = self._dram(i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "destination")
        if i.dtype == DType.BF16:
            dst[...] = nx.f32_to_bf16_bits(src)
        else:
            if i.space == Mem.SPAD:
                raise ExecError(
                    "SPAD holds bf16: store it as bf16, not fp32", fault=Fault.BAD_OPERANDS
                )
            dst[...] = src
        self.stats.dma_bytes += dst.size * dst.itemsize

    def _exec_gather(self, i: Insn) -> None:
        if i.idx % 4:
            raise ExecError(
                f"index address {i.idx:#x} not aligned to 4 bytes", fault=Fault.DRAM_ALIGN
            )
        if i.idx + 4 * i.rows > self.dram.size:
            raise ExecError(f"index array at {i.idx:#x} out of range", fault=Fault.DRAM_RANGE)
        table = self._dram(i.dtype, i.table_addr, i.table_rs, 1, i.table_rows, i.cols, "table")
        dst = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
        # Indices are checked as they are read, after the static checks above.
        idx = self.dram.view(np.int32)[i.idx // 4 : i.idx // 4 + i.rows]
        bad = np.nonzero((idx < 0) | (idx >= i.table_rows))[0]
        if bad.size:
            r = int(bad[0])
            raise ExecError(
                f"gather index {int(idx[r])} (row {r}) outside the {i.table_rows}-row table",
                fault=Fault.GATHER_INDEX,
            )
        rows = table[idx]
        if i.dtype == DType.BF16:
            vals = nx.bf16_bits_to_f32(rows)
        else:
            vals = rows if i.space == Mem.ACC else nx.round_bf16(rows)
        dst[...] = nx.canon_nan(vals)
        self.stats.dma_bytes += rows.size * rows.itemsize + 4 * i.rows

    def _exec_matmul(self, i: Insn) -> None:
        if i.acc and i.use_bias:
            raise ExecError("acc and use_bias are exclusive", fault=Fault.BAD_OPERANDS)
        a = self._sram(Mem.SPAD, i.a, i.a_stride, i.m, i.k, "A")
        if i.trans_b:
            bt = self._sram(Mem.SPAD, i.b, i.b_stride, i.n, i.k, "B^T")
            b = bt.T
        else:
            b = self._sram(Mem.SPAD, i.b, i.b_stride, i.k, i.n, "B")
        c = self._sram(Mem.ACC, i.dst, i.dst_stride, i.m, i.n, "C")
        if i.use_bias:
            bias = self._sram(Mem.ACC, i.bias, 0, 1, i.n, "bias")
            self._check_alias(
                (Mem.ACC, i.dst, i.dst_stride, i.m, i.n), (Mem.ACC, i.bias, 0, 1, i.n), "C/bias"
            )
            acc = np.repeat(bias, i.m, axis=0).astype(np.float32)
        elif i.acc:
            acc = c.astype(np.float32, copy=True)
        else:
            acc = np.zeros((i.m, i.n), dtype=np.float32)
        a = np.ascontiguousarray(a)
        b = np.ascontiguousarray(b)
        prod = np.empty_like(acc)
        # Strictly sequential in k: acc <- fp32(acc + fp32(a[:, k] * b[k, :])).
        for k in range(i.k):
            np.multiply(a[:, k : k + 1], b[k : k + 1, :], out=prod)
            np.add(acc, prod, out=acc)
        c[...] = nx.canon_nan(acc)
        self.stats.macs += i.m * i.n * i.k

    def _exec_move(self, i: Insn) -> None:
        src = self._sram(i.src_space, i.src, i.src_stride, i.rows, i.cols, "source")
        dst = self._sram(i.dst_space, i.dst, i.dst_stride, i.rows, i.cols, "destination")
        self._check_alias(
            (i.dst_space, i.dst, i.dst_stride, i.rows, i.cols),
            (i.src_space, i.src, i.src_stride, i.rows, i.cols),
            "move",
        )
        vals = nx.round_bf16(src) if i.dst_space == Mem.SPAD and i.src_space == Mem.ACC else src
        dst[...] = vals

    def _exec_vbin(self, i: Insn) -> None:
        region = (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols)
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        self._check_alias(region, (Mem.ACC, i.a, i.a_stride, i.rows, i.cols), "a")
        mode = BMode(i.bmode)
        if mode == BMode.IMM:
            b = np.float32(i.imm)
        elif mode == BMode.FULL:
            b = self._sram(Mem.ACC, i.b, i.b_stride, i.rows, i.cols, "b")
            self._check_alias(region, (Mem.ACC, i.b, i.b_stride, i.rows, i.cols), "b")
        elif mode == BMode.ROW:
            b = self._sram(Mem.ACC, i.b, 0, 1, i.cols, "b")
            self._check_alias(region, (Mem.ACC, i.b, 0, 1, i.cols), "b (row)")
        else:
            b = self._sram(Mem.ACC, i.b, i.b_stride, i.rows, 1, "b")
            self._check_alias(region, (Mem.ACC, i.b, i.b_stride, i.rows, 1), "b (column)")
        out = _BINARY[VBinFunct(i.funct)](a, b).astype(np.float32)
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        dst[...] = nx.canon_nan(out)

    def _exec_vunary(self, i: Insn) -> None:
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        self._check_alias(
            (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols),
            (Mem.ACC, i.a, i.a_stride, i.rows, i.cols),
            "a",
        )
        out = _UNARY[VUnaryFunct(i.funct)](a)
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        dst[...] = nx.canon_nan(out)

    def _exec_vreduce(self, i: Insn) -> None:
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, 1, "dst")
        d0, d1 = i.dst, i.dst + max(i.rows - 1, 0) * i.dst_stride + 1
        a0, a1 = i.a, i.a + max(i.rows - 1, 0) * i.a_stride + i.cols
        if d0 < a1 and a0 < d1:
            raise ExecError("reduction destination overlaps its source", fault=Fault.ALIAS)
        op = "sum" if i.funct == VReduceFunct.SUM else "max"
        dst[:, 0] = nx.reduce_rows(np.asarray(a), self.hw.line_elems, op)

    def _exec_vmask(self, i: Insn) -> None:
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        self._check_alias(
            (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols),
            (Mem.ACC, i.a, i.a_stride, i.rows, i.cols),
            "a",
        )
        r = np.arange(i.rows)[:, None]
        c = np.arange(i.cols)[None, :]
        out = np.where(c > r + i.offset, np.float32(i.imm), a).astype(np.float32)
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        dst[...] = nx.canon_nan(out)
