"""The two kinds of operand region a lowering names in an instruction.

A DramTile is a [rows, cols] window of a tensor view in DRAM (its address stays
symbolic until the memory planner places the buffer); an SramTile is where rows of
an on-chip memory start and how far apart they are (rows and columns are the
instruction's). DMA instructions move a DramTile into an SramTile or back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from compiler.ir import DramRef, TensorRef
from compiler.registry import Unsupported
from contract.isa import DType, Mem


def dram_dtype(ref: TensorRef) -> DType:
    """The dtype a DMA instruction names for the tensor (int32 and bool cannot be loaded)."""
    dtype = ref.dtype.layout.isa
    if dtype is None:
        raise Unsupported(f"{ref.dtype.value} tensors cannot be loaded into SRAM")
    return dtype


@dataclass(frozen=True)
class DramTile:
    """rows x cols elements of a view: element [r, c] at view element
    offset + r * rs + c * cs (strides in elements, 0 where broadcast)."""

    ref: TensorRef
    offset: int  # elements from the view's first element
    rows: int
    cols: int
    rs: int
    cs: int

    @staticmethod
    def row_of(ref: TensorRef, start: int, cols: int) -> DramTile:
        """cols elements of a vector (its last dim) from element `start`, as one row."""
        cs = ref.strides[-1]
        return DramTile(ref, start * cs, 1, cols, 0, cs)

    def transposed(self) -> DramTile:
        """The same elements read column by column: [cols, rows]."""
        return replace(self, rows=self.cols, cols=self.rows, rs=self.cs, cs=self.rs)

    def address(self) -> DramRef:
        return DramRef(self.ref.buffer, self.ref.byte_offset(self.offset))


@dataclass(frozen=True)
class SramTile:
    """Rows of `space` from element `addr`, `stride` elements apart (line aligned)."""

    space: Mem
    addr: int
    stride: int

    def fields(self, name: str) -> dict[str, int]:
        """The instruction fields that address this tile as operand `name`: the ISA
        names an SRAM operand's address field `name` and its row stride `name_stride`."""
        return {name: self.addr, f"{name}_stride": self.stride}

    def one_row(self) -> SramTile:
        """The tile as a DMA target of a single row (a bias or a norm weight): stride 0,
        since one row has no row stride."""
        return replace(self, stride=0)
