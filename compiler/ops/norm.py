"""Row-wise ops: layer_norm over the last dimension, softmax and log_softmax over any
dimension. A tile holds whole rows so the reductions see every column."""

from __future__ import annotations

import math

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType
from compiler.ops.reduce import check_dma_strides, moved_last
from compiler.ops.vector import Vec
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, SramTile
from compiler.tiling import Operand, broadcast_operand, result_tile, row_tiles
from contract.isa import BMode, VBinFunct, VReduceFunct, VUnaryFunct

aten = torch.ops.aten


def _row_tiles(
    ctx: LowerCtx,
    x: TensorRef,
    out: TensorRef,
    regions: int,
    extra_lines: int,
    col_temps: int = 0,
):
    """Row tiles of whole rows: `regions` row-wide regions and one [rows, 1] column per
    row (plus 5 more columns per row-wide temporary: log_softmax's), and `extra_lines`
    row-wide regions of one row (norm weights)."""
    cols = x.shape[-1]
    per_row = (regions + col_temps) * ctx.acc.pad(cols) + (1 + 5 * col_temps) * ctx.hw.line_elems
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


def _softmax_dim(node, args, kwargs) -> tuple[TensorRef, int]:
    """(x, dim as a non-negative index) of a softmax or log_softmax node."""
    x, dim = args[:2]
    if not isinstance(x, TensorRef) or not isinstance(dim, int):
        raise Unsupported("softmax of a non-tensor or over a non-integer dim")
    rank = len(x.shape)
    if not -rank <= dim < rank:
        raise Unsupported(f"softmax over dim {dim} of a rank-{rank} tensor")
    if tensor_meta(node).dtype != torch.float32:
        raise Unsupported("softmax to a non-float32 dtype")
    if x.dtype not in (VDType.F32, VDType.BF16):
        raise Unsupported(f"softmax of a {x.dtype.value} tensor")
    return x, dim % rank


def _rowwise_over_dim(ctx: LowerCtx, x: TensorRef, dim: int, temps: int, body) -> TensorRef:
    """out = body applied to every row along `dim`: both x and the result are read and
    written through views with `dim` moved last (DMA strides, no transpose), so a tile
    holds whole rows whichever dim it is. body(vec, rows_tile) works in place."""
    out = ctx.new_tensor(tuple(x.shape))
    x_rows, out_rows = moved_last(x, dim), moved_last(out, dim)
    op, tiles = _row_tiles(ctx, x_rows, out_rows, regions=1, extra_lines=0, col_temps=temps)
    check_dma_strides(op, x_rows.shape)
    check_dma_strides(Operand(out_rows, out_rows.strides), out_rows.shape)
    for tile in tiles:
        ctx.acc.top = 0
        vec = Vec(ctx, tile.rows, x_rows.shape[-1])
        xr = vec.alloc()
        ctx.load(op.dram_tile(x_rows.shape, tile), xr)
        body(vec, xr)
        ctx.store(xr, result_tile(out_rows, tile))
    return out


@lowering(aten._softmax.default, aten.softmax.int)
def lower_softmax(ctx: LowerCtx, node, args, kwargs):
    x, dim = _softmax_dim(node, args, kwargs)
    return _rowwise_over_dim(ctx, x, dim, 0, lambda vec, xr: vec.softmax_rows(xr))


# log(s) by Halley's iteration on exp: y <- y + 2 (s - e^y) / (s + e^y). With
# d = log(s) - y one step maps d to d - 2 tanh(d / 2) (~ d^3 / 12), so from
# y0 = log(C) / 2 a fixed number of steps, chosen at compile time from C, brings every
# s in [1, C] (a softmax denominator: its largest term is exp(0) = 1) below
# LOG_STEP_TOLERANCE in exact arithmetic (2^-30: far below fp32's half ulp of 1, 2^-24,
# as the result is an absolute shift). What remains is the rounding of exp, recip and
# the fp32 adds: measured against float64, log_softmax is within 1.7 x 2^-23 x max(|y|, 1)
# for rows of 2 to 1000, as PyTorch's own fp32 log_softmax is (tests/test_lower_reduce.py
# holds it to 4x). There is no log instruction (VUNARY: copy, exp, recip, rsqrt, tanh).
LOG_STEP_TOLERANCE = 2.0**-30


def halley_log_steps(count: int) -> int:
    """Steps that take the worst start error log(count) / 2 below LOG_STEP_TOLERANCE."""
    err, steps = math.log(max(count, 1)) / 2, 0
    while err > LOG_STEP_TOLERANCE:
        err -= 2 * math.tanh(err / 2)
        steps += 1
    return max(steps, 1)


def log_of_denominator(vec: Vec, y: SramTile, s: SramTile, count: int) -> SramTile:
    """y <- log(s) on [rows, 1] columns, for s in [1, count]; needs two more columns."""
    e, q = vec.alloc(), vec.alloc()
    y0 = math.log(max(count, 1)) / 2
    vec.imm(VBinFunct.MUL, y, s, 0.0)  # keeps a NaN or inf of s a NaN
    vec.imm(VBinFunct.ADD, y, y, y0)
    for _ in range(halley_log_steps(count)):
        vec.unary(VUnaryFunct.EXP, e, y)
        vec.bin(VBinFunct.SUB, q, s, e)
        vec.bin(VBinFunct.ADD, e, s, e)
        vec.unary(VUnaryFunct.RECIP, e, e)
        vec.bin(VBinFunct.MUL, q, q, e)
        vec.imm(VBinFunct.MUL, q, q, 2.0)
        vec.bin(VBinFunct.ADD, y, y, q)
    return y


def log_softmax_rows(vec: Vec, x: SramTile) -> SramTile:
    """x <- x - max - log(sum(exp(x - max))) over each row, in place (PyTorch's
    formulation); exp(x - max) goes to a second region so x - max is kept."""
    ctx = vec.ctx
    col = Vec(ctx, vec.rows, 1)
    t = vec.alloc()
    m, s, y = col.alloc(), col.alloc(), col.alloc()
    vec.reduce(VReduceFunct.MAX, m, x)
    vec.bin(VBinFunct.SUB, x, x, m, BMode.COL)
    vec.unary(VUnaryFunct.EXP, t, x)
    vec.reduce(VReduceFunct.SUM, s, t)
    log_of_denominator(col, y, s, vec.cols)
    vec.bin(VBinFunct.SUB, x, x, y, BMode.COL)
    return x


@lowering(aten._log_softmax.default, aten.log_softmax.int)
def lower_log_softmax(ctx: LowerCtx, node, args, kwargs):
    x, dim = _softmax_dim(node, args, kwargs)
    # Per row: the exp region (a full row) and five [rows, 1] columns.
    return _rowwise_over_dim(ctx, x, dim, 1, log_softmax_rows)
