"""Gather-style indexing on the device: aten.index_select (any dim) and aten.index.Tensor
with one index tensor on one dim (x[..., idx, ...]; the common case of advanced
indexing). Both select slices of x along one dim; they only move values, so the result
has PyTorch's bits exactly.

x is seen as [P, D, Q]: the dims before the indexed one (P), the indexed dim (D, the
rows chosen), the dims after it (Q). Two ways to move the chosen slices:

- Runs (a compile-time constant index made of few arithmetic runs, steps >= 0: a
  slice, a repeat, a shifted window): each run is a strided view of x, copied by DMA
  into its place along the dim of the output (compiler/ops/views.py: copy_into).
- GATHER (a runtime index, or a constant of many runs, stored as an int32 constant):
  table rows are x's rows along the dim, table columns the Q elements after it (one
  GATHER per prefix index p; a non-contiguous Q block is first copied contiguous). When
  Q is 1 (indexing the last dim) and P is not, x is first copied transposed into
  [D, P], gathered as rows and stored transposed back into [P, n] by the DMA's strides.

The GATHER bounds-checks every index against [0, D): an index outside it is the
GATHER_INDEX fault. PyTorch's index_select raises on such an index too; aten.index
wraps negative indices, which a constant index gets here at compile time, but a
negative *runtime* index faults on the device.
"""

from __future__ import annotations

import itertools
import math

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import DramRef, TensorRef, VDType, contiguous_strides
from compiler.ops.concat import _field_limit, coalesced, slice_of
from compiler.ops.conv import merged_stride
from compiler.ops.views import copy_contiguous, copy_into, copy_tiles
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, dram_dtype
from contract.isa import Opcode

aten = torch.ops.aten

# A constant index of at most this many arithmetic runs is copied run by run.
MAX_RUNS = 4


def gather_rows(ctx: LowerCtx, table: TensorRef, idx: DramRef, n: int, dst: TensorRef) -> None:
    """dst[r, :] = table[idx[r], :] for r < n: table a [rows, cols] view with unit column
    stride (or one column), idx n int32 values in DRAM, dst an [n, cols] view."""
    rows_total, cols = table.shape
    if table.strides[0] >= _field_limit(Opcode.GATHER, "table_rs"):
        raise Unsupported(f"table row stride {table.strides[0]} exceeds GATHER's field")
    tile_cols = min(cols, ctx.limits.gather_cols)
    max_rows = max(1, ctx.acc.capacity // ctx.acc.pad(tile_cols))
    d_rs, d_cs = dst.strides
    for r0 in range(0, n, max_rows):
        nr = min(max_rows, n - r0)
        for c0 in range(0, cols, tile_cols):
            nc = min(tile_cols, cols - c0)
            ctx.acc.top = 0
            acc = ctx.acc.alloc(nr, nc)  # [nr, nc] gathered rows, fp32
            ctx.emit(
                "gather",
                space=acc.space,
                dtype=dram_dtype(table),
                **acc.fields("sram"),
                table_addr=DramRef(table.buffer, table.byte_offset(c0 * table.strides[1])),
                table_rs=table.strides[0],
                table_rows=rows_total,
                idx=DramRef(idx.buffer, idx.byte_offset + 4 * r0),
                rows=nr,
                cols=nc,
            )
            tile = DramTile(dst, r0 * d_rs + c0 * d_cs, nr, nc, d_rs if nr > 1 else 0, d_cs)
            ctx.store(acc, tile)


def arithmetic_runs(values: list[int]) -> list[tuple[int, int, int]]:
    """values as (start, step, length) runs of constant step >= 0, greedily."""
    runs, i = [], 0
    while i < len(values):
        j = i + 1
        step = values[j] - values[i] if j < len(values) else 0
        if step >= 0:
            while j < len(values) and values[j] - values[j - 1] == step:
                j += 1
        runs.append((values[i], step if j - i > 1 else 0, j - i))
        i = j
    return runs


def _with_dim(ref: TensorRef, dim: int, size: int, stride: int, offset: int) -> TensorRef:
    """ref with dim resized to `size` at `stride`, starting `offset` elements later."""
    shape = ref.shape[:dim] + (size,) + ref.shape[dim + 1 :]
    strides = ref.strides[:dim] + (stride,) + ref.strides[dim + 1 :]
    return TensorRef(ref.buffer, ref.dtype, shape, strides, ref.offset + offset)


def _copy(ctx: LowerCtx, src: TensorRef, dst: TensorRef) -> None:
    """copy_into, with dims merged where that takes fewer tiles (as aten.cat does)."""
    merged_src, merged_dst = coalesced(src, dst)
    if len(copy_tiles(ctx, merged_src, merged_dst)) < len(copy_tiles(ctx, src, dst)):
        src, dst = merged_src, merged_dst
    copy_into(ctx, src, dst)


def select_along(
    ctx: LowerCtx, x: TensorRef, dim: int, index: TensorRef, n: int, wrap: bool
) -> TensorRef:
    """out = x.index_select(dim, index.flatten()) as a fresh contiguous tensor, with the
    indexed dim n long. wrap: negative constant indices count from the end."""
    if x.dtype not in (VDType.F32, VDType.BF16):
        raise Unsupported(f"indexing a {x.dtype.value} tensor (the DMA moves fp32 and bf16)")
    if index.dtype != VDType.I32:
        raise Unsupported(f"index of dtype {index.dtype.value}")
    size = x.shape[dim]
    out_shape = x.shape[:dim] + (n,) + x.shape[dim + 1 :]
    out = ctx.new_tensor(out_shape, x.dtype)  # [*pre, n, *post]
    if n == 0 or out.numel == 0:
        return out
    idx_ref: DramRef | None = None
    value = ctx.constant_value(index)
    if value is not None:
        values = [int(v) for v in value.reshape(-1).tolist()]
        if wrap:
            values = [v + size if v < 0 else v for v in values]
        if any(not 0 <= v < size for v in values):
            raise Unsupported(f"constant index outside [0, {size})")
        runs = arithmetic_runs(values)
        if len(runs) <= MAX_RUNS:
            pos = 0
            for start, step, length in runs:
                src = _with_dim(x, dim, length, step * x.strides[dim], start * x.strides[dim])
                _copy(ctx, src, slice_of(out, dim, pos, length))
                pos += length
            return out
        const = ctx.new_constant(
            torch.tensor(values, dtype=torch.int32), f"{ctx.node_name}_index", VDType.I32
        )
        idx_ref = DramRef(const.buffer, 0)
    elif not index.is_contiguous():
        raise Unsupported("runtime index is not contiguous")
    else:
        idx_ref = DramRef(index.buffer, index.byte_offset())
    _gather(ctx, x, dim, idx_ref, n, out)
    return out


def _gather(ctx: LowerCtx, x: TensorRef, dim: int, idx: DramRef, n: int, out: TensorRef) -> None:
    pre, post = x.shape[:dim], x.shape[dim + 1 :]
    size, p_total, q = x.shape[dim], math.prod(pre), math.prod(post)
    if q == 1 and p_total > 1:
        # Indexing the last dim: gather rows of x^T [D, P], store back transposed.
        xt = ctx.new_tensor((size,) + pre, x.dtype)  # [D, *pre]
        src = TensorRef(x.buffer, x.dtype, xt.shape, (x.strides[dim],) + x.strides[:dim], x.offset)
        _copy(ctx, src, xt)
        table = TensorRef(xt.buffer, xt.dtype, (size, p_total), (p_total, 1))
        dst = TensorRef(out.buffer, out.dtype, (n, p_total), (1, n), out.offset)  # out^T
        gather_rows(ctx, table, idx, n, dst)
        return
    if q > 1 and merged_stride(list(zip(post, x.strides[dim + 1 :], strict=True))) != 1:
        x = copy_contiguous(ctx, x)  # the table's columns must be contiguous
    for p_index in itertools.product(*[range(d) for d in pre]):
        p_offset = sum(i * s for i, s in zip(p_index, x.strides[:dim], strict=True))
        p_flat = sum(i * s for i, s in zip(p_index, contiguous_strides(pre), strict=True))
        table = TensorRef(x.buffer, x.dtype, (size, q), (x.strides[dim], 1), x.offset + p_offset)
        dst = TensorRef(out.buffer, out.dtype, (n, q), (q, 1), out.offset + p_flat * n * q)
        gather_rows(ctx, table, idx, n, dst)


@lowering(aten.index_select.default)
def lower_index_select(ctx: LowerCtx, node, args, kwargs):
    x, dim, index = args[:3]
    if not isinstance(x, TensorRef) or not isinstance(index, TensorRef):
        raise Unsupported("index_select of a non-tensor")
    if not x.shape:
        raise Unsupported("index_select of a 0-d tensor")
    dim %= len(x.shape)
    out = select_along(ctx, x, dim, index, index.numel, wrap=False)
    return _as_meta(out, node)


# The largest constant-index result whose affine form is searched (elements).
MAX_AFFINE_NUMEL = 1 << 20


def _grid(shape) -> tuple[torch.Tensor, ...]:
    """Each coordinate of a tensor of this shape, as a tensor of that shape."""
    return torch.meshgrid(*[torch.arange(n) for n in shape], indexing="ij") if shape else ()


def affine_index(shape: tuple[int, ...], indices: list) -> tuple[list, list] | None:
    """x[indices] for x of this shape and constant indices (tensors or None), when every
    coordinate of x it reads is an affine function of the result's coordinates with
    non-negative coefficients: (A, b) with x coordinate i = b[i] + sum_j A[i][j] * o_j,
    else None. Then the result is a strided view of x in any layout (stride_j =
    sum_i A[i][j] * x.stride(i)), no copy: x[arange(B)[:, None], arange(S)] and the
    other broadcast index grids models build their masks with."""
    key = tuple(slice(None) if i is None else i for i in indices)  # None: the whole dim
    if not shape or math.prod(shape) > MAX_AFFINE_NUMEL:
        return None
    try:  # x's coordinate i at each result element, per dim i of x
        coords = [c[key] for c in _grid(shape)]
    except IndexError:  # out of range: the gather path says so
        return None
    out_shape = coords[0].shape
    if coords[0].numel() == 0:  # nothing read: the gather path makes the empty result
        return None
    grid = _grid(out_shape)
    origin = (0,) * len(out_shape)
    A, b = [], []
    for got in coords:
        base = int(got[origin])
        row = [
            int(got[origin[:j] + (1,) + origin[j + 1 :]]) - base if n > 1 else 0
            for j, n in enumerate(out_shape)
        ]
        if any(a < 0 for a in row):
            return None
        want = base + sum((a * g for a, g in zip(row, grid, strict=True)), torch.tensor(0))
        if not torch.equal(got, want.expand(out_shape)):
            return None
        A.append(row)
        b.append(base)
    return A, b


def constant_indices(ctx: LowerCtx, indices) -> list | None:
    """The index list with every tensor replaced by its compile-time value, or None if
    one is not a constant (indices: TensorRefs, fx nodes of lowered ones, or None)."""
    out = []
    for i in indices:
        if i is None:
            out.append(None)
            continue
        ref = ctx.values.get(i.name) if isinstance(i, torch.fx.Node) else i
        value = ctx.constant_value(ref) if isinstance(ref, TensorRef) else None
        if value is None or value.is_floating_point():
            return None
        out.append(value.to(torch.bool) if ref.dtype == VDType.BOOL else value.long())
    return out


def index_view(node: torch.fx.Node, ctx: LowerCtx) -> tuple[list, list] | None:
    """(A, b) of affine_index when this aten.index.Tensor node reads its input at
    constant affine positions (it lowers to a view), else None."""
    x, indices = node.args[:2]
    consts = constant_indices(ctx, indices)
    if consts is None or any(c is not None and c.dtype == torch.bool for c in consts):
        return None
    return affine_index(tuple(tensor_meta(x).shape), consts)


@lowering(aten.index.Tensor)
def lower_index(ctx: LowerCtx, node, args, kwargs):
    x, indices = args[:2]
    if not isinstance(x, TensorRef):
        raise Unsupported("indexing a non-tensor")
    affine = index_view(node, ctx)
    if affine is not None:  # a strided view of x: no code
        A, b = affine
        shape = tuple(tensor_meta(node).shape)
        strides = tuple(
            sum(A[i][j] * x.strides[i] for i in range(len(x.shape))) for j in range(len(shape))
        )
        offset = x.offset + sum(bi * s for bi, s in zip(b, x.strides, strict=True))
        return TensorRef(x.buffer, x.dtype, shape, strides, offset)
    given = [(d, i) for d, i in enumerate(indices) if i is not None]
    if len(given) != 1 or not isinstance(given[0][1], TensorRef):
        raise Unsupported(f"advanced indexing with {len(given)} index tensors (only one)")
    dim, index = given[0]
    if index.dtype == VDType.BOOL:
        raise Unsupported("boolean mask indexing")
    out = select_along(ctx, x, dim, index, index.numel, wrap=True)
    return _as_meta(out, node)


def _as_meta(out: TensorRef, node) -> TensorRef:
    """The contiguous result in the node's shape (the index's dims in place of dim)."""
    shape = tuple(tensor_meta(node).shape)
    if math.prod(shape) != out.numel:
        raise Unsupported(f"indexing result {out.shape} does not match {shape}")
    return TensorRef(out.buffer, out.dtype, shape, contiguous_strides(shape), out.offset)
