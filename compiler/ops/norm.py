"""Row-wise ops over the last dimension: layer_norm and softmax. A tile holds whole
rows so the reductions see every column."""

from __future__ import annotations

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef
from compiler.ops.vector import Vec
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile
from compiler.tiling import Operand, broadcast_operand, result_tile, row_tiles
from contract.isa import BMode, VBinFunct, VReduceFunct, VUnaryFunct

aten = torch.ops.aten


def _row_tiles(ctx: LowerCtx, x: TensorRef, out: TensorRef, regions: int, extra_lines: int):
    cols = x.shape[-1]
    per_row = regions * ctx.acc.pad(cols) + ctx.hw.line_elems
    rows = (ctx.acc.capacity - extra_lines * ctx.acc.pad(cols)) // per_row
    if rows < 1:
        raise Unsupported(f"a row of {cols} elements does not fit in ACC")
    op = broadcast_operand(x, x.shape)
    return op, row_tiles(x.shape, [op, Operand(out, out.strides)], rows, cols)


@lowering(aten.layer_norm.default)
def lower_layer_norm(ctx: LowerCtx, node, args, kwargs):
    x, normalized_shape = args[:2]
    weight = args[2] if len(args) > 2 else None
    bias = args[3] if len(args) > 3 else None
    eps = args[4] if len(args) > 4 else 1e-5
    if len(normalized_shape) != 1:
        raise Unsupported("layer_norm over more than the last dimension")
    cols = x.shape[-1]
    out = ctx.new_tensor(tuple(tensor_meta(node).shape))
    op, tiles = _row_tiles(ctx, x, out, regions=2, extra_lines=2)
    for tile in tiles:
        ctx.acc.top = 0
        vec = Vec(ctx, tile.rows, cols)
        xr, y = vec.alloc(), vec.alloc()
        stat = ctx.acc.alloc(tile.rows, 1)
        g = b = None
        if weight is not None:
            g = ctx.acc.alloc(1, cols)
            ctx.load(DramTile.row_of(weight, 0, cols), g.one_row())
        if bias is not None:
            b = ctx.acc.alloc(1, cols)
            ctx.load(DramTile.row_of(bias, 0, cols), b.one_row())
        ctx.load(op.dram_tile(x.shape, tile), xr)
        col = Vec(ctx, tile.rows, 1)
        # mean = sum(x) / C;  d = x - mean
        vec.reduce(VReduceFunct.SUM, stat, xr)
        col.imm(VBinFunct.MUL, stat, stat, 1.0 / cols)
        vec.bin(VBinFunct.SUB, xr, xr, stat, BMode.COL)
        # var = sum(d*d) / C;  y = d * rsqrt(var + eps)
        vec.bin(VBinFunct.MUL, y, xr, xr)
        vec.reduce(VReduceFunct.SUM, stat, y)
        col.imm(VBinFunct.MUL, stat, stat, 1.0 / cols)
        col.imm(VBinFunct.ADD, stat, stat, float(eps))
        col.unary(VUnaryFunct.RSQRT, stat, stat)
        vec.bin(VBinFunct.MUL, y, xr, stat, BMode.COL)
        if g is not None:
            vec.bin(VBinFunct.MUL, y, y, g, BMode.ROW)
        if b is not None:
            vec.bin(VBinFunct.ADD, y, y, b, BMode.ROW)
        ctx.store(y, result_tile(out, tile))
    return out


@lowering(aten._softmax.default, aten.softmax.int)
def lower_softmax(ctx: LowerCtx, node, args, kwargs):
    x, dim = args[:2]
    if dim not in (-1, len(x.shape) - 1):
        raise Unsupported(f"softmax over dim {dim} (only the last dimension)")
    if tensor_meta(node).dtype != torch.float32:
        raise Unsupported("softmax to a non-float32 dtype")
    out = ctx.new_tensor(tuple(x.shape))
    op, tiles = _row_tiles(ctx, x, out, regions=1, extra_lines=0)
    for tile in tiles:
        ctx.acc.top = 0
        vec = Vec(ctx, tile.rows, x.shape[-1])
        xr = vec.alloc()
        ctx.load(op.dram_tile(x.shape, tile), xr)
        vec.softmax_rows(xr)
        ctx.store(xr, result_tile(out, tile))
    return out
