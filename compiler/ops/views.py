"""View ops become strides: the result is another TensorRef on the same buffer.

torch's own view rules decide the strides: the op runs on a meta tensor with the
input's shape, strides and offset. A view that strides cannot express (a reshape of a
non-contiguous tensor) is materialised by a copy through the accumulator.
"""

from __future__ import annotations

import operator

import torch

from compiler.context import LowerCtx
from compiler.ir import TensorRef
from compiler.registry import Unsupported
from compiler.tiling import Operand, RowTile, result_tile, row_tiles

aten = torch.ops.aten

# Ops whose result aliases their input (functional graphs never write in place).
ALIASES = {
    aten.alias.default,
    aten.clone.default,
    aten.detach.default,
    aten.lift_fresh_copy.default,
    aten.contiguous.default,
}
VIEWS = {
    aten.view.default,
    aten._unsafe_view.default,
    aten.reshape.default,
    aten.permute.default,
    aten.transpose.int,
    aten.t.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze.default,
    aten.expand.default,
    aten.slice.Tensor,
    aten.select.int,
    aten.split.Tensor,
    aten.split_with_sizes.default,
    aten.unbind.int,
    aten.unflatten.int,
    aten.flatten.using_ints,
    aten.as_strided.default,
    aten.narrow.default,
    aten.chunk.default,
}


def is_view(target) -> bool:
    return target in VIEWS or target in ALIASES or target is operator.getitem


def _meta(ref: TensorRef) -> torch.Tensor:
    extent = ref.offset + sum((d - 1) * s for d, s in zip(ref.shape, ref.strides, strict=True)) + 1
    base = torch.empty(max(extent, 1), device="meta")
    return base.as_strided(ref.shape, ref.strides, ref.offset)


def _from_meta(ref: TensorRef, t: torch.Tensor) -> TensorRef:
    return TensorRef(ref.buffer, ref.dtype, tuple(t.shape), tuple(t.stride()), t.storage_offset())


def copy_tiles(ctx: LowerCtx, src: TensorRef, dst: TensorRef) -> list[RowTile]:
    """The row tiles in which copy_into moves src to dst."""
    if src.shape != dst.shape:
        raise Unsupported(f"copy of {src.shape} into {dst.shape}")
    cols = min(dst.shape[-1], ctx.limits.copy_cols)
    # Each tile restarts ACC at 0, so a tile may take all of it.
    rows = max(1, ctx.acc.capacity // ctx.acc.pad(cols))
    operands = [Operand(src, src.strides), Operand(dst, dst.strides)]
    return list(row_tiles(dst.shape, operands, rows, cols))


def copy_into(ctx: LowerCtx, src: TensorRef, dst: TensorRef) -> None:
    """Copy the view src into the view dst of the same shape through ACC (DMA in, DMA
    out), in row tiles. ACC holds fp32, so fp32 and bf16 values arrive unchanged."""
    src_op = Operand(src, src.strides)
    for tile in copy_tiles(ctx, src, dst):
        ctx.acc.top = 0
        acc = ctx.acc.alloc(tile.rows, tile.cols)
        ctx.load(src_op.dram_tile(dst.shape, tile), acc)
        ctx.store(acc, result_tile(dst, tile))


def copy_contiguous(ctx: LowerCtx, ref: TensorRef) -> TensorRef:
    """Materialise a strided view as a fresh contiguous tensor (DMA in, DMA out)."""
    out = ctx.new_tensor(ref.shape, ref.dtype)
    if not ref.shape:
        ref = TensorRef(ref.buffer, ref.dtype, (1,), (1,), ref.offset)
        copy_into(ctx, ref, TensorRef(out.buffer, out.dtype, (1,), (1,), 0))
    else:
        copy_into(ctx, ref, out)
    return out


def lower_view(ctx: LowerCtx, node, args: list, kwargs: dict):
    target = node.target
    if target is operator.getitem:
        seq, index = args
        return seq[index]
    ref = args[0]
    if not isinstance(ref, TensorRef):
        raise Unsupported(f"view of a non-tensor {type(ref).__name__}")
    if target in ALIASES:
        return ref
    rest = args[1:]
    try:
        result = target(_meta(ref), *rest, **kwargs)
    except RuntimeError:
        # Not expressible as strides of this buffer: copy, then view the copy.
        ref = copy_contiguous(ctx, ref)
        result = target(_meta(ref), *rest, **kwargs)
    if isinstance(result, (list, tuple)):
        return [_from_meta(ref, t) for t in result]
    return _from_meta(ref, result)
