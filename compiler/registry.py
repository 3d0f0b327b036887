"""Op registry: one lowering per exact ATen overload, registered by decorator.

    @lowering(aten.add.Tensor, aten.add.Scalar)
    def lower_add(ctx: LowerCtx, node: fx.Node) -> TensorRef: ...

A lowering emits instructions through ctx and returns the TensorRef(s) of the node's
value. It raises Unsupported (with a reason) for argument patterns it cannot handle;
the partitioner then runs that node on the CPU and the compile report says why.
`bf16_args` names the argument positions that the device only reads as bf16 matrix
operands, so constants used only there are stored in DRAM as bf16.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import fx

from compiler.ir import (
    Buffer,
    BufferKind,
    DramRef,
    PendingInsn,
    StreamItem,
    TensorRef,
    VDType,
    contiguous_strides,
)
from contract.hw import HwConfig
from contract.isa import Mem


class Unsupported(Exception):
    """This node (with these arguments) has no device lowering."""


@dataclass(frozen=True)
class Lowering:
    fn: Callable
    bf16_args: tuple[int, ...] = ()


REGISTRY: dict[object, Lowering] = {}


def lowering(*targets, bf16_args: tuple[int, ...] = ()):
    def register(fn):
        for t in targets:
            if t in REGISTRY:
                raise ValueError(f"two lowerings registered for {t}")
            REGISTRY[t] = Lowering(fn, bf16_args)
        return fn

    return register


def op_name(target) -> str:
    """'aten.add.Tensor' for an OpOverload; a readable name for anything else."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._schema.name.split('::')[-1]}.{target._overloadname}"
    return getattr(target, "__name__", str(target))


# ---------------------------------------------------------------- SRAM allocation
class SramArena:
    """Bump allocator for one op's use of an on-chip memory (reset between ops)."""

    def __init__(self, name: str, capacity: int, line: int):
        self.name, self.capacity, self.line = name, capacity, line
        self.top = 0

    def pad(self, cols: int) -> int:
        return -(-max(cols, 1) // self.line) * self.line

    def alloc(self, rows: int, cols: int) -> tuple[int, int]:
        """(address, row stride) of a [rows, cols] region."""
        stride = self.pad(cols)
        addr = self.top
        self.top += stride * max(rows, 1)
        if self.top > self.capacity:
            raise Unsupported(f"{self.name} overflow: needs {self.top} of {self.capacity} elements")
        return addr, stride

    def free(self) -> int:
        return self.capacity - self.top


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


# ---------------------------------------------------------------- lowering context
class LowerCtx:
    """What a lowering sees: the hardware, SRAM arenas, buffers, and the stream."""

    def __init__(self, hw: HwConfig, stream: list[StreamItem], buffers: list[Buffer]):
        self.hw = hw
        self.stream = stream
        self.buffers = buffers
        self.node_name = ""
        self.acc = SramArena("ACC", hw.acc_elems, hw.line_elems)
        self.spad = SramArena("SPAD", hw.spad_elems, hw.line_elems)
        self.constant_values: dict[Buffer, torch.Tensor] = {}

    def constant_value(self, ref: TensorRef) -> torch.Tensor | None:
        """The compile-time value of a view of a constant buffer, else None."""
        base = self.constant_values.get(ref.buffer)
        if base is None:
            return None
        return base.reshape(-1).as_strided(ref.shape, ref.strides, ref.offset)

    def begin(self, node_name: str) -> None:
        self.node_name = node_name
        self.acc.top = 0
        self.spad.top = 0

    def emit(self, mnemonic: str, **args) -> None:
        self.stream.append(PendingInsn(mnemonic, args, self.node_name))

    def new_tensor(
        self,
        shape: tuple[int, ...],
        dtype: VDType = VDType.F32,
        kind: BufferKind = BufferKind.ACTIVATION,
        name: str = "",
    ) -> TensorRef:
        numel = math.prod(shape)
        buf = Buffer(
            name or f"{self.node_name}#{len(self.buffers)}", max(numel * dtype.itemsize, 4), kind
        )
        self.buffers.append(buf)
        return TensorRef(buf, dtype, tuple(shape), contiguous_strides(tuple(shape)))

    def new_constant(
        self, value: torch.Tensor, name: str, dtype: VDType | None = None
    ) -> TensorRef:
        from compiler.frontend import tensor_bytes

        dtype = dtype or VDType.of(value.dtype)
        data = tensor_bytes(value, dtype)
        buf = Buffer(name, max(len(data), 4), BufferKind.CONSTANT, data)
        self.buffers.append(buf)
        shape = tuple(value.shape)
        return TensorRef(buf, dtype, shape, contiguous_strides(shape))

    # -- DMA helpers -------------------------------------------------------------
    @staticmethod
    def dram_dtype(ref: TensorRef) -> int:
        dtype = ref.dtype.layout.isa
        if dtype is None:
            raise Unsupported(f"{ref.dtype.value} tensors cannot be loaded into SRAM")
        return dtype

    def _dma(
        self,
        mnemonic: str,
        ref: TensorRef,
        elem_offset: int,
        rows: int,
        cols: int,
        rs: int,
        cs: int,
        space: Mem,
        sram: int,
        sram_stride: int,
    ) -> None:
        self.emit(
            mnemonic,
            space=space,
            dtype=self.dram_dtype(ref),
            sram=sram,
            sram_stride=sram_stride,
            dram=DramRef(ref.buffer, ref.byte_offset(elem_offset)),
            dram_rs=rs,
            dram_cs=cs,
            rows=rows,
            cols=cols,
        )

    def load_2d(
        self,
        ref: TensorRef,
        elem_offset: int,
        rows: int,
        cols: int,
        rs: int,
        cs: int,
        space: Mem,
        sram: int,
        sram_stride: int,
    ) -> None:
        """DMA a [rows, cols] DRAM region (element strides rs, cs) into SRAM."""
        self._dma("dma_ld", ref, elem_offset, rows, cols, rs, cs, space, sram, sram_stride)

    def store_2d(
        self,
        ref: TensorRef,
        elem_offset: int,
        rows: int,
        cols: int,
        rs: int,
        cs: int,
        sram: int,
        sram_stride: int,
        space: Mem = Mem.ACC,
    ) -> None:
        """DMA an SRAM region into a [rows, cols] DRAM region (element strides rs, cs)."""
        self._dma("dma_st", ref, elem_offset, rows, cols, rs, cs, space, sram, sram_stride)

    def load(
        self, op: Operand, out_shape, tile: RowTile, space: Mem, sram: int, sram_stride: int
    ) -> None:
        """DMA one row tile of a (broadcast) operand into SRAM."""
        _, row_stride = op.inner_group(out_shape)
        col_stride = op.strides[-1] if op.strides else 0
        off = op.row_offset(out_shape, tile.row0) + tile.col0 * col_stride
        self.load_2d(
            op.ref, off, tile.rows, tile.cols, row_stride, col_stride, space, sram, sram_stride
        )

    def store(
        self, ref: TensorRef, tile: RowTile, sram: int, sram_stride: int, space: Mem = Mem.ACC
    ) -> None:
        """DMA one row tile from SRAM into an output tensor seen as [R, C]."""
        op = Operand(ref, ref.strides)
        _, row_stride = op.inner_group(ref.shape)
        col_stride = ref.strides[-1] if ref.strides else 1
        off = op.row_offset(ref.shape, tile.row0) + tile.col0 * col_stride
        self.store_2d(
            ref,
            off,
            tile.rows,
            tile.cols,
            row_stride if tile.rows > 1 else 0,
            col_stride,
            sram,
            sram_stride,
            space,
        )


def tensor_meta(node: fx.Node):
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise Unsupported(f"{node.name} has no static tensor value")
    return val
