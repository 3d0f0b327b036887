"""What each instruction reads and writes: its operand regions, checked as the core
checks them.

`resolve(insn, hw, dram_bytes)` is the one place that knows, per opcode, which SRAM and
DRAM regions an instruction touches and which operand faults it raises, in the order
the ISA defines (the first failing check names the fault). The ISA model executes on
these regions, the torch backend plans on them, and the torch backend's loop batching
reads them as the instruction's read and write sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.hw import HwConfig
from compiler.isa import BMode, DType, Fault, Insn, Mem, Opcode


class OperandError(Exception):
    """An operand fault; the caller adds the instruction index, pc and disassembly."""

    def __init__(self, reason: str, fault: Fault):
        super().__init__(reason)
        self.reason = reason
        self.fault = fault


@dataclass(frozen=True)
class Sram:
    """rows x cols elements of SPAD or ACC from `addr`, rows `stride` elements apart."""

    space: Mem
    addr: int
    stride: int
    rows: int
    cols: int

    @property
    def end(self) -> int:
        """One past the last element (the region's address span is [addr, end))."""
        if not (self.rows and self.cols):
            return self.addr
        return self.addr + (self.rows - 1) * self.stride + self.cols


@dataclass(frozen=True)
class Dram:
    """rows x cols elements of `dtype` from byte `addr`, strides in elements. dtype None
    is the int32 index array of GATHER."""

    dtype: DType | None
    addr: int
    rs: int
    cs: int
    rows: int
    cols: int

    @property
    def size(self) -> int:
        return 2 if self.dtype == DType.BF16 else 4

    @property
    def end(self) -> int:
        """One past the last byte."""
        if not (self.rows and self.cols):
            return self.addr
        return self.addr + ((self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1) * self.size


Region = Sram | Dram


@dataclass
class Operands:
    """Named regions, in the order the instruction uses them."""

    reads: dict[str, Region] = field(default_factory=dict)
    writes: dict[str, Region] = field(default_factory=dict)


def _sram(hw: HwConfig, space: int, addr: int, stride: int, rows: int, cols: int, what: str):
    space = Mem(space)
    line = hw.line_elems
    size = hw.acc_elems if space == Mem.ACC else hw.spad_elems
    if addr % line or stride % line:
        raise OperandError(
            f"{what}: {space.name} address {addr} / stride {stride} not aligned"
            f" to the {line}-element line",
            Fault.SRAM_ALIGN,
        )
    if rows > 1 and cols > stride:
        raise OperandError(
            f"{what}: {cols} columns overlap rows of stride {stride}", Fault.SRAM_LAYOUT
        )
    region = Sram(space, addr, stride, rows, cols)
    if region.end > size:
        raise OperandError(
            f"{what}: {space.name} region [{addr}, {region.end}) overflows the"
            f" {size}-element {space.name}",
            Fault.SRAM_RANGE,
        )
    return region


def _dram(dram_bytes: int, dtype, addr: int, rs: int, cs: int, rows: int, cols: int, what: str):
    region = Dram(None if dtype is None else DType(dtype), addr, rs, cs, rows, cols)
    if addr % region.size:
        raise OperandError(
            f"{what}: DRAM address {addr:#x} not aligned to {region.size} bytes", Fault.DRAM_ALIGN
        )
    if rows and cols and region.end > dram_bytes:
        raise OperandError(
            f"{what}: DRAM access [{addr:#x}, {region.end:#x}) out of range"
            f" (DRAM is {dram_bytes:#x} bytes)",
            Fault.DRAM_RANGE,
        )
    return region


def _check_alias(dst: Sram, src: Sram, what: str) -> None:
    """An element-wise destination is identical to its source or disjoint from it."""
    if dst.space != src.space or dst == src:
        return
    # (rows - 1) * stride + cols, unguarded: how the ISA has always measured overlap.
    d_end = dst.addr + (dst.rows - 1) * dst.stride + dst.cols
    s_end = src.addr + (src.rows - 1) * src.stride + src.cols
    if dst.addr < s_end and src.addr < d_end:
        raise OperandError(f"{what}: destination partially overlaps a source", Fault.ALIAS)


def resolve(i: Insn, hw: HwConfig, dram_bytes: int) -> Operands:
    """The regions `i` reads and writes; OperandError on the first operand fault."""
    op, ops = i.opcode, Operands()
    r, w = ops.reads, ops.writes
    if op == Opcode.DMA_LD:
        r["src"] = _dram(
            dram_bytes, i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "source"
        )
        w["dst"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
    elif op == Opcode.DMA_ST:
        if i.rows > 1 and i.dram_rs == 0 or i.cols > 1 and i.dram_cs == 0:
            raise OperandError(
                "store with a zero stride writes one address twice", Fault.BAD_OPERANDS
            )
        r["src"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "source")
        w["dst"] = _dram(
            dram_bytes, i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "destination"
        )
        if i.dtype != DType.BF16 and i.space == Mem.SPAD:
            raise OperandError("SPAD holds bf16: store it as bf16, not fp32", Fault.BAD_OPERANDS)
    elif op == Opcode.GATHER:
        if i.idx % 4:
            raise OperandError(f"index address {i.idx:#x} not aligned to 4 bytes", Fault.DRAM_ALIGN)
        if i.idx + 4 * i.rows > dram_bytes:
            raise OperandError(f"index array at {i.idx:#x} out of range", Fault.DRAM_RANGE)
        r["idx"] = Dram(None, i.idx, 1, 1, i.rows, 1)
        r["table"] = _dram(
            dram_bytes, i.dtype, i.table_addr, i.table_rs, 1, i.table_rows, i.cols, "table"
        )
        w["dst"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
    elif op == Opcode.MATMUL:
        if i.acc and i.use_bias:
            raise OperandError("acc and use_bias are exclusive", Fault.BAD_OPERANDS)
        r["a"] = _sram(hw, Mem.SPAD, i.a, i.a_stride, i.m, i.k, "A")
        if i.trans_b:
            r["b"] = _sram(hw, Mem.SPAD, i.b, i.b_stride, i.n, i.k, "B^T")
        else:
            r["b"] = _sram(hw, Mem.SPAD, i.b, i.b_stride, i.k, i.n, "B")
        c = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.m, i.n, "C")
        if i.use_bias:
            r["bias"] = _sram(hw, Mem.ACC, i.bias, 0, 1, i.n, "bias")
            _check_alias(c, r["bias"], "C/bias")
        elif i.acc:
            r["c"] = c
        w["dst"] = c
    elif op == Opcode.MOVE:
        r["src"] = _sram(hw, i.src_space, i.src, i.src_stride, i.rows, i.cols, "source")
        w["dst"] = _sram(hw, i.dst_space, i.dst, i.dst_stride, i.rows, i.cols, "destination")
        _check_alias(w["dst"], r["src"], "move")
    elif op == Opcode.VBIN:
        dst = Sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols)
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        _check_alias(dst, r["a"], "a")
        mode = BMode(i.bmode)
        if mode == BMode.FULL:
            r["b"] = _sram(hw, Mem.ACC, i.b, i.b_stride, i.rows, i.cols, "b")
            _check_alias(dst, r["b"], "b")
        elif mode == BMode.ROW:
            r["b"] = _sram(hw, Mem.ACC, i.b, 0, 1, i.cols, "b")
            _check_alias(dst, r["b"], "b (row)")
        elif mode == BMode.COL:
            r["b"] = _sram(hw, Mem.ACC, i.b, i.b_stride, i.rows, 1, "b")
            _check_alias(dst, r["b"], "b (column)")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
    elif op in (Opcode.VUNARY, Opcode.VMASK):
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        _check_alias(Sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols), r["a"], "a")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
    elif op == Opcode.VREDUCE:
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, 1, "dst")
        span = max(i.rows - 1, 0)
        if i.dst < i.a + span * i.a_stride + i.cols and i.a < i.dst + span * i.dst_stride + 1:
            raise OperandError("reduction destination overlaps its source", Fault.ALIAS)
    return ops
