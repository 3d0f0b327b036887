"""The lowering context: what a lowering sees while it emits one node's code (the
hardware, its tile limits, the SRAM arenas, the buffers and the stream), and the
DMA helpers that move tiles between DRAM and SRAM."""

from __future__ import annotations

import math

import torch
from torch import fx

from compiler.frontend import tensor_bytes
from compiler.ir import (
    Buffer,
    BufferKind,
    PendingInsn,
    StreamItem,
    TensorRef,
    VDType,
    contiguous_strides,
)
from compiler.registry import Unsupported
from compiler.tiles import DramTile, SramTile, dram_dtype
from compiler.tiling import TileLimits
from contract.hw import HwConfig
from contract.isa import Mem


class SramArena:
    """Bump allocator for one op's use of an on-chip memory (reset between ops)."""

    def __init__(self, space: Mem, capacity: int, line: int):
        self.space, self.capacity, self.line = space, capacity, line
        self.top = 0

    def pad(self, cols: int) -> int:
        return -(-max(cols, 1) // self.line) * self.line

    def alloc(self, rows: int, cols: int) -> SramTile:
        """A [rows, cols] region, each row padded to whole lines."""
        stride = self.pad(cols)
        addr = self.top
        self.top += stride * max(rows, 1)
        if self.top > self.capacity:
            raise Unsupported(
                f"{self.space.name} overflow: needs {self.top} of {self.capacity} elements"
            )
        return SramTile(self.space, addr, stride)

    def free(self) -> int:
        return self.capacity - self.top


class LowerCtx:
    """What a lowering sees: the hardware and its tile limits, SRAM arenas, buffers,
    and the stream."""

    def __init__(self, hw: HwConfig, stream: list[StreamItem], buffers: list[Buffer]):
        self.hw = hw
        self.limits = TileLimits.of(hw)
        self.stream = stream
        self.buffers = buffers
        self.node_name = ""
        self.acc = SramArena(Mem.ACC, hw.acc_elems, hw.line_elems)
        self.spad = SramArena(Mem.SPAD, hw.spad_elems, hw.line_elems)
        self.constant_values: dict[Buffer, torch.Tensor] = {}
        # Nodes whose values a CHECKPOINT reads (layer outputs and inputs): their
        # buffers must stay as lowered, so no later lowering may redirect their writes.
        self.checkpointed: set[str] = set()
        self.checkpoint_outputs: set[str] = set()  # the layer outputs among them
        # Every lowered node's value by node name (compiler.lower fills it as it walks):
        # a lowering may ask what an earlier node is (say, whether an argument of one of
        # its users is a constant).
        self.values: dict[str, object] = {}

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
        dtype = dtype or VDType.of(value.dtype)
        data = tensor_bytes(value, dtype)
        buf = Buffer(name, max(len(data), 4), BufferKind.CONSTANT, data)
        self.buffers.append(buf)
        shape = tuple(value.shape)
        return TensorRef(buf, dtype, shape, contiguous_strides(shape))

    # -- DMA ---------------------------------------------------------------------
    def _dma(self, mnemonic: str, dram: DramTile, sram: SramTile) -> None:
        self.emit(mnemonic, **dma_fields(dram, sram))

    def load(self, src: DramTile, dst: SramTile) -> None:
        """DMA a DRAM tile into SRAM."""
        self._dma("dma_ld", src, dst)

    def store(self, src: SramTile, dst: DramTile) -> None:
        """DMA an SRAM region into a DRAM tile."""
        self._dma("dma_st", dst, src)


def dma_fields(dram: DramTile, sram: SramTile) -> dict:
    """The fields of a DMA_LD or DMA_ST between a DRAM tile and an SRAM tile."""
    return dict(
        space=sram.space,
        dtype=dram_dtype(dram.ref),
        **sram.fields("sram"),
        dram=dram.address(),
        dram_rs=dram.rs,
        dram_cs=dram.cs,
        rows=dram.rows,
        cols=dram.cols,
    )


def tensor_meta(node: fx.Node) -> torch.Tensor:
    """The node's value as traced (shape and dtype); Unsupported if it has none."""
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise Unsupported(f"{node.name} has no static tensor value")
    return val
