"""How lowerings cut tensors into tiles: the largest tile sizes the hardware allows,
and row tiles of element-wise outputs over (broadcast) strided views."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from compiler.ir import TensorRef
from compiler.registry import Unsupported
from compiler.tiles import DramTile
from contract.hw import HwConfig


# ---------------------------------------------------------------- tile limits
@dataclass(frozen=True)
class TileLimits:
    """Caps on tile sizes, from the hardware config. On the default core (16x16 array,
    262144-element SPAD, 65536-element ACC) they are 128, 1024, 2048, 4096 and 32768."""

    # Rows of A (and C) per matmul tile: eight array heights, so each B tile DMA'd
    # into SPAD serves eight array heights of A rows before the next row tile reloads it.
    matmul_rows: int
    # Reduction length per matmul tile: the A tile [matmul_rows, matmul_depth] (bf16)
    # takes at most half of SPAD, leaving the other half for the B tile.
    matmul_depth: int
    # Columns per element-wise tile: ACC holds 32 rows that wide, so a body's three
    # regions at most (two operands and the result, or an operand, a temporary and
    # the result) still get 10 rows per tile.
    elementwise_cols: int
    # Columns per tile of a materialising copy: it holds one region, and ACC holds
    # 16 rows that wide.
    copy_cols: int
    # Columns per gathered embedding tile: at most half of ACC, so a tile takes at
    # least two table rows.
    gather_cols: int

    @staticmethod
    def of(hw: HwConfig) -> TileLimits:
        matmul_rows = 8 * hw.array_dim
        return TileLimits(
            matmul_rows=matmul_rows,
            matmul_depth=hw.spad_elems // (2 * matmul_rows),
            elementwise_cols=hw.acc_elems // 32,
            copy_cols=hw.acc_elems // 16,
            gather_cols=hw.acc_elems // 2,
        )


# ---------------------------------------------------------------- row tiling of views
@dataclass(frozen=True)
class Operand:
    """A view's element strides after broadcasting to the output shape."""

    ref: TensorRef
    strides: tuple[int, ...]  # one per output dim, 0 where broadcast

    def row_offset(self, out_shape: tuple[int, ...], row: int) -> int:
        """Element offset of output row `row` (output seen as [prod(leading), last])."""
        off = 0
        for d, st in zip(reversed(out_shape[:-1]), reversed(self.strides[:-1]), strict=True):
            row, i = divmod(row, d)
            off += i * st
        return off

    def inner_group(self, out_shape: tuple[int, ...]) -> tuple[int, int]:
        """(rows, row stride) of the longest run of trailing leading dims that one
        row stride walks; row tiles never cross a group."""
        rows, stride = 1, None
        for d, st in zip(reversed(out_shape[:-1]), reversed(self.strides[:-1]), strict=True):
            if d == 1:
                continue
            if stride is None:
                rows, stride = d, st
            elif st == stride * rows:
                rows *= d
            else:
                break
        return rows, (stride or 0)

    def dram_tile(self, out_shape: tuple[int, ...], tile: RowTile) -> DramTile:
        """This operand's elements of one row tile of the output."""
        _, row_stride = self.inner_group(out_shape)
        col_stride = self.strides[-1] if self.strides else 0
        offset = self.row_offset(out_shape, tile.row0) + tile.col0 * col_stride
        return DramTile(self.ref, offset, tile.rows, tile.cols, row_stride, col_stride)


def broadcast_operand(ref: TensorRef, out_shape: tuple[int, ...]) -> Operand:
    pad = len(out_shape) - len(ref.shape)
    if pad < 0:
        raise Unsupported(f"cannot broadcast {ref.shape} to {out_shape}")
    strides = []
    for i, d in enumerate(out_shape):
        j = i - pad
        if j < 0:
            strides.append(0)
        elif ref.shape[j] == d:
            strides.append(ref.strides[j] if d != 1 else 0)
        elif ref.shape[j] == 1:
            strides.append(0)
        else:
            raise Unsupported(f"cannot broadcast {ref.shape} to {out_shape}")
    return Operand(ref, tuple(strides))


def result_tile(ref: TensorRef, tile: RowTile) -> DramTile:
    """Where one row tile of a result (a view seen as [R, C]) is stored. A single row
    has no next row: its row stride is 0. A 0-d view (no strides) is stored as one
    element at column stride 1 rather than the broadcast stride 0 a load would use."""
    dram = Operand(ref, ref.strides).dram_tile(ref.shape, tile)
    col_stride = ref.strides[-1] if ref.strides else 1
    return replace(dram, rs=dram.rs if tile.rows > 1 else 0, cs=col_stride)


@dataclass(frozen=True)
class RowTile:
    row0: int
    rows: int
    col0: int
    cols: int


def row_tiles(
    out_shape: tuple[int, ...], operands: list[Operand], max_rows: int, max_cols: int
) -> Iterator[RowTile]:
    """Tiles of the output seen as [R, C] such that every operand's rows in a tile are
    at one row stride (a tile never crosses an operand's inner group)."""
    cols = out_shape[-1] if out_shape else 1
    total_rows = math.prod(out_shape[:-1]) if out_shape else 1
    block = min([op.inner_group(out_shape)[0] for op in operands] or [total_rows])
    block = max(block, 1)
    max_rows = max(1, min(max_rows, block))
    for b0 in range(0, total_rows, block):
        for r0 in range(b0, b0 + block, max_rows):
            nr = min(max_rows, b0 + block - r0)
            for c0 in range(0, cols, max_cols):
                yield RowTile(r0, nr, c0, min(max_cols, cols - c0))
