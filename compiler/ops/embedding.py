"""aten.embedding: the GATHER instruction reads table rows named by int32 indices."""

from __future__ import annotations

import math

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import DramRef, TensorRef, VDType
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, dram_dtype

aten = torch.ops.aten


@lowering(aten.embedding.default)
def lower_embedding(ctx: LowerCtx, node, args, kwargs):
    table, indices = args[:2]
    if indices.dtype != VDType.I32 or not indices.is_contiguous():
        raise Unsupported("embedding indices must be a contiguous integer tensor")
    if table.strides[-1] != 1 or len(table.shape) != 2:
        raise Unsupported("embedding table must be a row-major matrix")
    rows_total = math.prod(indices.shape)
    dim = table.shape[1]
    out = ctx.new_tensor(tuple(tensor_meta(node).shape))
    cols = min(dim, ctx.limits.gather_cols)
    max_rows = max(1, ctx.acc.capacity // ctx.acc.pad(cols))
    for r0 in range(0, rows_total, max_rows):
        nr = min(max_rows, rows_total - r0)
        for c0 in range(0, dim, cols):
            nc = min(cols, dim - c0)
            ctx.acc.top = 0
            acc = ctx.acc.alloc(nr, nc)
            ctx.emit(
                "gather",
                space=acc.space,
                dtype=dram_dtype(table),
                **acc.fields("sram"),
                table_addr=DramRef(table.buffer, table.byte_offset(c0)),
                table_rs=table.strides[0],
                table_rows=table.shape[0],
                idx=DramRef(indices.buffer, indices.byte_offset(r0)),
                rows=nr,
                cols=nc,
            )
            ctx.store(acc, DramTile(out, r0 * dim + c0, nr, nc, dim, 1))
    return TensorRef(out.buffer, out.dtype, out.shape, out.strides)
