"""What each instruction reads and writes: its operand regions, checked as the core
checks them.

`resolve(insn, hw, dram_bytes)` is the one place that knows, per opcode, which SRAM and
DRAM regions an instruction touches, how many DRAM bytes it moves, and which operand
faults it raises, in the order the ISA defines (the first failing check names the
fault). Everything else derives from it: the ISA model executes on these regions, the
torch backend plans and batches on them, the compiler's verifier takes its buffer
read/write sets from them (each region names the address field it comes from), the
lockstep checker digests the written one, and the RTL watchdog sizes its cycle budget
from them. rtl/loom_insn_check.sv implements the same checks in the same order.

Empty regions (zero rows or zero columns) touch no memory: they are never out of
range and never overlap another region; their addresses and strides are still
checked for alignment (docs/isa.md, "Empty regions").
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

from contract.hw import HwConfig
from contract.isa import INDEX_BYTES, BMode, DType, Fault, Insn, Mem, Opcode


class OperandError(Exception):
    """An operand fault; the caller adds the instruction index, pc and disassembly."""

    def __init__(self, reason: str, fault: Fault):
        super().__init__(reason)
        self.reason = reason
        self.fault = fault


@dataclass(frozen=True)
class Sram:
    """rows x cols elements of SPAD or ACC from `addr`, rows `stride` elements apart.
    `field` names the instruction field holding the address (not part of equality:
    two operands over the same elements are the same region)."""

    space: Mem
    addr: int
    stride: int
    rows: int
    cols: int
    field: str = dc_field(default="", compare=False)

    @property
    def empty(self) -> bool:
        return not (self.rows and self.cols)

    @property
    def end(self) -> int:
        """One past the last element (the region's address span is [addr, end))."""
        if self.empty:
            return self.addr
        return self.addr + (self.rows - 1) * self.stride + self.cols

    def overlaps(self, other: Sram) -> bool:
        """Whether the two address spans share an element (empty regions share none)."""
        return (
            self.space == other.space
            and not (self.empty or other.empty)
            and self.addr < other.end
            and other.addr < self.end
        )


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
    field: str = dc_field(default="", compare=False)

    @property
    def size(self) -> int:
        """Bytes per element."""
        return INDEX_BYTES if self.dtype is None else self.dtype.size

    @property
    def empty(self) -> bool:
        return not (self.rows and self.cols)

    @property
    def nbytes(self) -> int:
        """Bytes the region holds (what a transfer of all of it moves)."""
        return self.rows * self.cols * self.size

    @property
    def end(self) -> int:
        """One past the last byte."""
        if self.empty:
            return self.addr
        return self.addr + ((self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1) * self.size

    def overlaps(self, other: Dram) -> bool:
        """Whether the two byte spans share a byte (empty regions share none)."""
        return not (self.empty or other.empty) and self.addr < other.end and other.addr < self.end


Region = Sram | Dram


def overlap(a: Region, b: Region) -> bool:
    """Whether two regions share memory (an SRAM and a DRAM region never do)."""
    return type(a) is type(b) and a.overlaps(b)


@dataclass
class Operands:
    """Named regions, in the order the instruction uses them, and the DRAM bytes the
    instruction moves (what the ISA model's and the RTL's DMA byte counters count)."""

    reads: dict[str, Region] = dc_field(default_factory=dict)
    writes: dict[str, Region] = dc_field(default_factory=dict)
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0

    def regions(self) -> list[Region]:
        """Reads, then writes."""
        return [*self.reads.values(), *self.writes.values()]


def _sram(hw: HwConfig, space: int, addr: int, stride: int, rows: int, cols: int, what, name):
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
    region = Sram(space, addr, stride, rows, cols, name)
    if not region.empty and region.end > size:
        raise OperandError(
            f"{what}: {space.name} region [{addr}, {region.end}) overflows the"
            f" {size}-element {space.name}",
            Fault.SRAM_RANGE,
        )
    return region


def _dram(dram_bytes: int, dtype, addr: int, rs: int, cs: int, rows: int, cols: int, what, name):
    region = Dram(None if dtype is None else DType(dtype), addr, rs, cs, rows, cols, name)
    if addr % region.size:
        raise OperandError(
            f"{what}: DRAM address {addr:#x} not aligned to {region.size} bytes", Fault.DRAM_ALIGN
        )
    if not region.empty and region.end > dram_bytes:
        raise OperandError(
            f"{what}: DRAM access [{addr:#x}, {region.end:#x}) out of range"
            f" (DRAM is {dram_bytes:#x} bytes)",
            Fault.DRAM_RANGE,
        )
    return region


def _check_alias(dst: Sram, src: Sram, what: str) -> None:
    """An element-wise destination is identical to its source or disjoint from it."""
    if dst != src and dst.overlaps(src):
        raise OperandError(f"{what}: destination partially overlaps a source", Fault.ALIAS)


def resolve(i: Insn, hw: HwConfig, dram_bytes: int) -> Operands:
    """The regions `i` reads and writes; OperandError on the first operand fault."""
    op, ops = i.opcode, Operands()
    r, w = ops.reads, ops.writes
    if op == Opcode.DMA_LD:
        r["src"] = _dram(
            dram_bytes, i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "source", "dram"
        )
        w["dst"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination", "sram")
        ops.dram_read_bytes = r["src"].nbytes
    elif op == Opcode.DMA_ST:
        if i.rows > 1 and i.dram_rs == 0 or i.cols > 1 and i.dram_cs == 0:
            raise OperandError(
                "store with a zero stride writes one address twice", Fault.BAD_OPERANDS
            )
        r["src"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "source", "sram")
        w["dst"] = _dram(
            dram_bytes, i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "destination", "dram"
        )
        if i.dtype != DType.BF16 and i.space == Mem.SPAD:
            raise OperandError("SPAD holds bf16: store it as bf16, not fp32", Fault.BAD_OPERANDS)
        ops.dram_write_bytes = w["dst"].nbytes
    elif op == Opcode.GATHER:
        if i.idx % INDEX_BYTES:
            raise OperandError(f"index address {i.idx:#x} not aligned to 4 bytes", Fault.DRAM_ALIGN)
        # An empty destination reads and checks no index (ISA v3).
        idx = Dram(None, i.idx, 1, 1, i.rows if i.cols else 0, 1, "idx")
        if not idx.empty and idx.end > dram_bytes:
            raise OperandError(f"index array at {i.idx:#x} out of range", Fault.DRAM_RANGE)
        r["idx"] = idx
        r["table"] = _dram(
            dram_bytes,
            i.dtype,
            i.table_addr,
            i.table_rs,
            1,
            i.table_rows,
            i.cols,
            "table",
            "table_addr",
        )
        w["dst"] = _sram(hw, i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination", "sram")
        # The indices, then one table row per index (not the whole table).
        ops.dram_read_bytes = idx.nbytes + i.rows * i.cols * r["table"].size
    elif op == Opcode.MATMUL:
        if i.acc and i.use_bias:
            raise OperandError("acc and use_bias are exclusive", Fault.BAD_OPERANDS)
        r["a"] = _sram(hw, Mem.SPAD, i.a, i.a_stride, i.m, i.k, "A", "a")
        if i.trans_b:
            r["b"] = _sram(hw, Mem.SPAD, i.b, i.b_stride, i.n, i.k, "B^T", "b")
        else:
            r["b"] = _sram(hw, Mem.SPAD, i.b, i.b_stride, i.k, i.n, "B", "b")
        c = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.m, i.n, "C", "dst")
        if i.use_bias:
            r["bias"] = _sram(hw, Mem.ACC, i.bias, 0, 1, i.n, "bias", "bias")
            _check_alias(c, r["bias"], "C/bias")
        elif i.acc:
            r["c"] = c
        w["dst"] = c
    elif op == Opcode.MOVE:
        r["src"] = _sram(hw, i.src_space, i.src, i.src_stride, i.rows, i.cols, "source", "src")
        w["dst"] = _sram(hw, i.dst_space, i.dst, i.dst_stride, i.rows, i.cols, "destination", "dst")
        _check_alias(w["dst"], r["src"], "move")
    elif op == Opcode.VBIN:
        dst = Sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a", "a")
        _check_alias(dst, r["a"], "a")
        mode = BMode(i.bmode)
        if mode == BMode.FULL:
            r["b"] = _sram(hw, Mem.ACC, i.b, i.b_stride, i.rows, i.cols, "b", "b")
            _check_alias(dst, r["b"], "b")
        elif mode == BMode.ROW:
            r["b"] = _sram(hw, Mem.ACC, i.b, 0, 1, i.cols, "b", "b")
            _check_alias(dst, r["b"], "b (row)")
        elif mode == BMode.COL:
            r["b"] = _sram(hw, Mem.ACC, i.b, i.b_stride, i.rows, 1, "b", "b")
            _check_alias(dst, r["b"], "b (column)")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst", "dst")
    elif op in (Opcode.VUNARY, Opcode.VMASK):
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a", "a")
        _check_alias(Sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols), r["a"], "a")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst", "dst")
    elif op == Opcode.VREDUCE:
        r["a"] = _sram(hw, Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a", "a")
        w["dst"] = _sram(hw, Mem.ACC, i.dst, i.dst_stride, i.rows, 1, "dst", "dst")
        if w["dst"].overlaps(r["a"]):  # even an identical one: the shapes differ
            raise OperandError("reduction destination overlaps its source", Fault.ALIAS)
    return ops
