"""Reductions over any set of dims: sum, mean, amax and amin (keepdim either way).

The input is never copied or transposed. Its DRAM view is re-read through DMA strides
as [kept..., run]: the kept dims in order (the output's element order) and, as the
columns of each row, the longest run of reduced dims that one column stride walks. The
vector unit reduces each row (VREDUCE: lane partials, then a fixed tree); reduced dims
outside the run, and runs longer than a tile, are more loads whose row results are
combined in a fixed order (VBIN on [rows, 1] columns). Reducing the last dim is the
plain case (column stride 1); reducing a middle or first dim reads the same tile with a
large column stride. The same view moves a softmax's dim last (`moved_last`).

The vector unit reduces by sum and max only: amin is -amax(-x) (negation is exact) and
mean is sum * fp32(1/N).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType, contiguous_strides
from compiler.ops.vector import Vec
from compiler.registry import Unsupported, lowering
from compiler.tiling import Operand, RowTile, row_tiles
from contract.isa import VBinFunct, VReduceFunct

aten = torch.ops.aten

# Reduced-dim index combinations outside the strided run that one lowering unrolls; each
# is one more load and reduce per row tile.
MAX_OUTER_STEPS = 4096
# DMA stride fields (contract/isa.py: dram_rs 24 bits, dram_cs 16 bits).
MAX_DRAM_ROW_STRIDE = (1 << 24) - 1
MAX_DRAM_COL_STRIDE = (1 << 16) - 1


def normalize_dims(dims, rank: int) -> tuple[int, ...]:
    """Sorted non-negative dims; None or [] means every dim (ATen's convention)."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    out = set()
    for d in dims:
        if not isinstance(d, int) or not -max(rank, 1) <= d < max(rank, 1):
            raise Unsupported(f"reduction dim {d!r} of a rank-{rank} tensor")
        out.add(d % rank if rank else 0)
    return tuple(sorted(out))


def moved_last(ref: TensorRef, dim: int) -> TensorRef:
    """The same elements with `dim` moved to the end (a strided view, no copy)."""
    order = [d for d in range(len(ref.shape)) if d != dim] + [dim]
    return TensorRef(
        ref.buffer,
        ref.dtype,
        tuple(ref.shape[d] for d in order),
        tuple(ref.strides[d] for d in order),
        ref.offset,
    )


@dataclass(frozen=True)
class ReductionLayout:
    """x read as rows of `rows_view` ([kept..., run]); each output element reduces its
    row at every offset of `outer_offsets` (element offsets into x)."""

    rows_view: TensorRef
    outer_offsets: tuple[int, ...]
    count: int  # elements reduced into each output element


def reduction_layout(x: TensorRef, dims: tuple[int, ...]) -> ReductionLayout:
    kept = [d for d in range(len(x.shape)) if d not in dims]
    # Dims of size 1 reduce nothing; the run is built from the smallest stride outwards.
    reduced = sorted(
        ((x.shape[d], x.strides[d]) for d in dims if x.shape[d] != 1),
        key=lambda size_stride: size_stride[1],
    )
    run_len, run_stride = 1, 1
    outer: list[tuple[int, int]] = []
    for size, stride in reduced:
        if not outer and run_len == 1:
            run_len, run_stride = size, stride
        elif not outer and stride == run_stride * run_len:
            run_len *= size
        else:
            outer.append((size, stride))
    offsets = [0]
    for size, stride in outer:
        offsets = [o + i * stride for o in offsets for i in range(size)]
    if len(offsets) > MAX_OUTER_STEPS:
        raise Unsupported(
            f"reducing dims {list(dims)} of a {list(x.shape)} view with strides"
            f" {list(x.strides)} takes {len(offsets)} strided passes"
            f" (at most {MAX_OUTER_STEPS})"
        )
    view = TensorRef(
        x.buffer,
        x.dtype,
        tuple(x.shape[d] for d in kept) + (run_len,),
        tuple(x.strides[d] for d in kept) + (run_stride,),
        x.offset,
    )
    count = math.prod(x.shape[d] for d in dims)
    return ReductionLayout(view, tuple(offsets), count)


def check_dma_strides(op: Operand, shape: tuple[int, ...]) -> None:
    """Unsupported if a row tile of this operand needs a stride the DMA cannot encode."""
    _, row_stride = op.inner_group(shape)
    col_stride = op.strides[-1] if op.strides else 0
    if row_stride > MAX_DRAM_ROW_STRIDE or col_stride > MAX_DRAM_COL_STRIDE:
        raise Unsupported(
            f"DMA strides ({row_stride}, {col_stride}) of a {list(shape)} view exceed the"
            " dram_rs / dram_cs fields"
        )


def reduce_into(
    ctx: LowerCtx,
    x: TensorRef,
    dims: tuple[int, ...],
    funct: VReduceFunct,
    out: TensorRef,
    negate: bool = False,
    scale: float | None = None,
) -> None:
    """out[kept...] = reduce over `dims` of x (out is contiguous with x's kept dims in
    order). negate: reduce -x and negate the result (amin = -amax(-x)); scale: multiply
    the result (mean)."""
    layout = reduction_layout(x, dims)
    view = layout.rows_view
    run = view.shape[-1]
    kept_shape = view.shape[:-1]
    # out seen as [kept..., 1]: one element per row of the view.
    out_view = TensorRef(
        out.buffer,
        out.dtype,
        kept_shape + (1,),
        contiguous_strides(kept_shape) + (1,),
        out.offset,
    )
    x_op = Operand(view, view.strides)
    out_op = Operand(out_view, out_view.strides)
    check_dma_strides(x_op, view.shape)
    line = ctx.hw.line_elems
    chunk = min(run, ctx.limits.elementwise_cols)
    # Per row: the loaded chunk, the running result and one row result, each line padded.
    rows = ctx.acc.capacity // (ctx.acc.pad(chunk) + 2 * line)
    combine = VBinFunct.ADD if funct == VReduceFunct.SUM else VBinFunct.MAX
    for tile in row_tiles(view.shape, [x_op, out_op], rows, run):
        ctx.acc.top = 0
        data = ctx.acc.alloc(tile.rows, chunk)
        result = ctx.acc.alloc(tile.rows, 1)
        partial = ctx.acc.alloc(tile.rows, 1)
        col = Vec(ctx, tile.rows, 1)
        first = True
        for offset, c0 in itertools.product(layout.outer_offsets, range(0, run, chunk)):
            cols = min(chunk, run - c0)
            src = x_op.dram_tile(view.shape, RowTile(tile.row0, tile.rows, c0, cols))
            ctx.load(replace(src, offset=src.offset + offset), data)
            vec = Vec(ctx, tile.rows, cols)
            if negate:
                vec.imm(VBinFunct.MUL, data, data, -1.0)
            # Fixed order: row results combine in (outer offset, chunk) order.
            vec.reduce(funct, result if first else partial, data)
            if not first:
                col.bin(combine, result, result, partial)
            first = False
        if negate:
            col.imm(VBinFunct.MUL, result, result, -1.0)
        if scale is not None:
            col.imm(VBinFunct.MUL, result, result, scale)
        dst = out_op.dram_tile(view.shape, RowTile(tile.row0, tile.rows, 0, 1))
        ctx.store(result, replace(dst, rs=dst.rs if tile.rows > 1 else 0, cs=1))


def _reduction(
    ctx: LowerCtx, node, x, dims, funct: VReduceFunct, negate=False, mean=False
) -> TensorRef:
    if not isinstance(x, TensorRef):
        raise Unsupported("reduction of a non-tensor")
    if x.dtype not in (VDType.F32, VDType.BF16):
        raise Unsupported(f"reduction of a {x.dtype.value} tensor (device computes float32)")
    meta = tensor_meta(node)
    if meta.dtype != torch.float32:
        raise Unsupported(f"reduction to {meta.dtype} (device computes float32)")
    if x.numel == 0:
        raise Unsupported("reduction of an empty tensor")
    if x.shape:
        dims = normalize_dims(dims, len(x.shape))
    else:  # a 0-d tensor: seen as one element
        x = TensorRef(x.buffer, x.dtype, (1,), (1,), x.offset)
        dims = (0,)
    out = ctx.new_tensor(tuple(meta.shape))
    count = math.prod(x.shape[d] for d in dims)
    # mean = sum * fp32(1/N): one rounding more than PyTorch's sum / N (<= 1 ulp).
    scale = 1.0 / count if mean else None
    reduce_into(ctx, x, dims, funct, out, negate=negate, scale=scale)
    return out


def _check_dtype(kwargs) -> None:
    """Reject a dtype argument (keyword-only in ATen) other than float32: the device
    reduces in fp32."""
    dtype = kwargs.get("dtype")
    if dtype not in (None, torch.float32):
        raise Unsupported(f"reduction with dtype={dtype}")


@lowering(aten.sum.dim_IntList, aten.mean.dim)
def lower_sum_mean_dim(ctx: LowerCtx, node, args, kwargs):
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    _check_dtype(kwargs)
    mean = node.target == aten.mean.dim
    return _reduction(ctx, node, x, dims, VReduceFunct.SUM, mean=mean)


@lowering(aten.sum.default, aten.mean.default)
def lower_sum_mean_all(ctx: LowerCtx, node, args, kwargs):
    _check_dtype(kwargs)
    mean = node.target == aten.mean.default
    return _reduction(ctx, node, args[0], None, VReduceFunct.SUM, mean=mean)


@lowering(aten.amax.default, aten.amin.default)
def lower_amax_amin(ctx: LowerCtx, node, args, kwargs):
    dims = args[1] if len(args) > 1 else kwargs.get("dim", [])
    negate = node.target == aten.amin.default
    return _reduction(ctx, node, args[0], dims, VReduceFunct.MAX, negate=negate)
