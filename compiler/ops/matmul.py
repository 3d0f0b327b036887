"""Matrix-unit lowerings: addmm, mm, bmm, linear. One tiled core handles them all.

C[*batch, M, N] = A[*batch, M, K] @ B[*batch, K, N] (+ bias[N]). Tiles: A [tm, tk] and
B [tk, tn] in SPAD (bf16), C [tm, tn] and the bias row in ACC. K is split into chunks
accumulated in place, which by the ISA's k-order accumulation gives the same bits as
one unsplit instruction. B with unit stride along K is loaded transposed (trans_b) so
its DMA reads contiguous rows (nn.Linear weights, K^T in attention).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, contiguous_strides
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, SramTile

aten = torch.ops.aten


@dataclass(frozen=True)
class MatOperand:
    """A 2-D operand view: element offset plus row/col strides (per batch offset)."""

    ref: TensorRef
    batch_strides: tuple[int, ...]
    rs: int
    cs: int

    def offset(self, batch_index: tuple[int, ...], r: int, c: int) -> int:
        return (
            sum(i * s for i, s in zip(batch_index, self.batch_strides, strict=True))
            + r * self.rs
            + c * self.cs
        )

    def tile(self, batch_index: tuple[int, ...], r: int, c: int, rows: int, cols: int) -> DramTile:
        """The [rows, cols] window from element [r, c] of matrix `batch_index`."""
        return DramTile(self.ref, self.offset(batch_index, r, c), rows, cols, self.rs, self.cs)


def mat_operand(ref: TensorRef, batch_shape: tuple[int, ...]) -> MatOperand:
    """View ref [..., R, C] with its leading dims broadcast to batch_shape."""
    if len(ref.shape) < 2:
        raise Unsupported(f"matrix operand of rank {len(ref.shape)}")
    lead, lead_strides = ref.shape[:-2], ref.strides[:-2]
    pad = len(batch_shape) - len(lead)
    if pad < 0:
        raise Unsupported("operand has more batch dims than the result")
    bs = []
    for i, d in enumerate(batch_shape):
        j = i - pad
        if j < 0 or lead[j] == 1:
            bs.append(0)
        elif lead[j] == d:
            bs.append(lead_strides[j])
        else:
            raise Unsupported(f"batch dims {lead} do not broadcast to {batch_shape}")
    return MatOperand(ref, tuple(bs), ref.strides[-2], ref.strides[-1])


def _flatten_rows(ref: TensorRef) -> TensorRef | None:
    """[..., K] as [R, K] when every leading dim walks one row stride."""
    lead = [(d, s) for d, s in zip(ref.shape[:-1], ref.strides[:-1], strict=True) if d != 1]
    rows = math.prod(d for d, _ in lead)
    if not lead:
        return TensorRef(
            ref.buffer, ref.dtype, (1, ref.shape[-1]), (ref.shape[-1], ref.strides[-1]), ref.offset
        )
    inner = lead[-1][1]
    acc = inner
    for d, s in reversed(lead):
        if s != acc:
            return None
        acc *= d
    return TensorRef(
        ref.buffer, ref.dtype, (rows, ref.shape[-1]), (inner, ref.strides[-1]), ref.offset
    )


@dataclass
class _Step:
    """One MATMUL of the tile loop and the DMA around it: the loads it needs first,
    and the store of its C tile when it is the last k chunk of that tile."""

    loads: list[tuple[DramTile, SramTile]]
    matmul: dict
    store: tuple[SramTile, DramTile] | None


def matmul_core(
    ctx: LowerCtx, out_shape: tuple[int, ...], a: TensorRef, b: TensorRef, bias: TensorRef | None
) -> TensorRef:
    """C = A @ B (+ bias) as a software pipeline over double-buffered tiles.

    Each step is a MATMUL over one C tile and one K chunk. The loads of step t+1 (into
    the buffers step t does not read) come before the store of step t, so in program
    order the DMA engine fetches the next tiles while the matrix unit works on these,
    and stores a C tile while the next one accumulates (the core overlaps instructions
    whose SRAM regions do not conflict, docs/rtl.md). A buffer is double only where
    the loop loads it more than once.
    """
    batch = tuple(out_shape[:-2])
    M, N = out_shape[-2:]
    K = a.shape[-1]
    if b.shape[-2] != K:
        raise Unsupported(f"inner dims differ: {a.shape} @ {b.shape}")
    if bias is not None and (bias.shape[-1] != N or math.prod(bias.shape) != N):
        raise Unsupported(f"bias of shape {bias.shape} is not a row of {N}")
    A, B = mat_operand(a, batch), mat_operand(b, batch)
    out = ctx.new_tensor(out_shape)
    C = mat_operand(out, batch)
    trans_b = B.rs == 1 and B.cs != 1
    line = ctx.hw.line_elems
    pad = ctx.spad.pad
    n_batch = math.prod(batch)

    tm = min(M, ctx.limits.matmul_rows)
    n_m = n_batch * math.ceil(M / tm)
    tk = min(K, ctx.limits.matmul_depth)
    # A is loaded once per row tile when K fits one chunk, else once per chunk.
    a_loads = n_m * math.ceil(K / tk)
    if a_loads > 1:
        # Two A buffers in at most half of SPAD (shorter chunks where they would not fit).
        tk = min(tk, max(line, (ctx.spad.capacity // 4 // tm) // line * line))
        a_loads = n_m * math.ceil(K / tk)
    n_k = math.ceil(K / tk)
    a_bufs = 2 if a_loads > 1 else 1
    # The bias as one ACC row for the whole of N where it takes at most a quarter of
    # ACC (one load, no per-tile loads beside the matrix unit's writes); per tile else.
    whole_bias = bias is not None and pad(N) <= ctx.acc.capacity // 4

    def fits(tn: int, bufs: int) -> bool:
        """Whether A, `bufs` B and C tiles of width tn, and the bias, fit on chip."""
        b_tile = tn * pad(tk) if trans_b else tk * pad(tn)
        spad = a_bufs * tm * pad(tk) + bufs * b_tile
        per_tile_bias = 0 if bias is None else bufs * pad(tn)
        bias_elems = pad(N) if whole_bias else per_tile_bias
        acc = bufs * tm * pad(tn) + bias_elems
        return spad <= ctx.spad.capacity and acc <= ctx.acc.capacity

    def widest(bufs: int) -> int:
        """The largest tn (N, or a multiple of the line) whose buffers fit."""
        if fits(N, bufs):
            return N
        lo, hi = 0, pad(N) // line  # in lines: fits(lo * line) or lo == 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid * line, bufs) else (lo, mid)
        return lo * line

    tn = widest(1)
    if tn <= 0:
        raise Unsupported(f"matmul tiles do not fit on chip (M={M}, K={K})")
    if n_m * math.ceil(N / tn) * n_k > 1:
        tn2 = widest(2)
        bufs = 2 if tn2 > 0 else 1
        tn = tn2 if tn2 > 0 else tn
    else:
        bufs = 1

    a_sram = [ctx.spad.alloc(tm, tk) for _ in range(a_bufs)]  # A [tm, tk]
    b_sram = [ctx.spad.alloc(*((tn, tk) if trans_b else (tk, tn))) for _ in range(bufs)]
    c_sram = [ctx.acc.alloc(tm, tn) for _ in range(bufs)]  # C [tm, tn], fp32
    if whole_bias:
        bias_all = ctx.acc.alloc(1, N).one_row()  # bias [1, N]
    elif bias is not None:
        bias_sram = [ctx.acc.alloc(1, tn).one_row() for _ in range(bufs)]  # bias [1, tn]

    steps: list[_Step] = []
    n_a = n_b = n_c = 0
    for bi in itertools.product(*[range(d) for d in batch]):
        for m0 in range(0, M, tm):
            mm_ = min(tm, M - m0)
            for n0 in range(0, N, tn):
                nn_ = min(tn, N - n0)
                c = c_sram[n_c % bufs]
                n_c += 1
                for ki, k0 in enumerate(range(0, K, tk)):
                    kk = min(tk, K - k0)
                    loads = []
                    if n0 == 0 or n_k > 1:  # A is reused across n tiles when K fits
                        a_cur = a_sram[n_a % a_bufs]
                        n_a += 1
                        loads.append((A.tile(bi, m0, k0, mm_, kk), a_cur))
                    b_cur = b_sram[n_b % bufs]
                    n_b += 1
                    b_tile = B.tile(bi, k0, n0, kk, nn_)  # [kk, nn_]
                    loads.append((b_tile.transposed() if trans_b else b_tile, b_cur))
                    use_bias = ki == 0 and bias is not None
                    bias_addr = 0
                    if use_bias and whole_bias:
                        bias_addr = bias_all.addr + n0
                    elif use_bias:
                        row = bias_sram[(n_c - 1) % bufs]
                        loads.append((DramTile.row_of(bias, n0, nn_), row))
                        bias_addr = row.addr
                    matmul = dict(
                        **c.fields("dst"),
                        **a_cur.fields("a"),
                        **b_cur.fields("b"),
                        bias=bias_addr,
                        m=mm_,
                        n=nn_,
                        k=kk,
                        acc=int(ki > 0),
                        trans_b=int(trans_b),
                        use_bias=int(use_bias),
                    )
                    last = ki == n_k - 1
                    store = (c, C.tile(bi, m0, n0, mm_, nn_)) if last else None
                    steps.append(_Step(loads, matmul, store))

    if whole_bias:
        ctx.load(DramTile.row_of(bias, 0, N), bias_all)
    for src, dst in steps[0].loads:
        ctx.load(src, dst)
    for t, step in enumerate(steps):
        ctx.emit("matmul", **step.matmul)
        if t + 1 < len(steps):
            for src, dst in steps[t + 1].loads:
                ctx.load(src, dst)
        if step.store is not None:
            ctx.store(*step.store)
    return out


def _check_float(*refs) -> None:
    for r in refs:
        if not isinstance(r, TensorRef):
            raise Unsupported("matrix operand is not a tensor")


@lowering(aten.addmm.default, bf16_args=(1, 2))
def lower_addmm(ctx: LowerCtx, node, args, kwargs):
    bias, a, b = args[:3]
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        raise Unsupported("addmm with beta/alpha != 1")
    _check_float(bias, a, b)
    if math.prod(bias.shape) != b.shape[-1]:
        raise Unsupported("addmm bias is not a row vector")
    return matmul_core(ctx, tuple(tensor_meta(node).shape), a, b, bias)


@lowering(aten.mm.default, aten.bmm.default, bf16_args=(0, 1))
def lower_mm(ctx: LowerCtx, node, args, kwargs):
    a, b = args[:2]
    _check_float(a, b)
    return matmul_core(ctx, tuple(tensor_meta(node).shape), a, b, None)


@lowering(aten.linear.default, bf16_args=(0, 1))
def lower_linear(ctx: LowerCtx, node, args, kwargs):
    x, w = args[:2]
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    _check_float(x, w)
    out_shape = tuple(tensor_meta(node).shape)
    n, k = w.shape
    wt = TensorRef(w.buffer, w.dtype, (k, n), (w.strides[1], w.strides[0]), w.offset)
    flat = _flatten_rows(x)
    if flat is not None:
        out = matmul_core(ctx, (flat.shape[0], n), flat, wt, bias)
        return TensorRef(
            out.buffer, out.dtype, out_shape, contiguous_strides(out_shape), out.offset
        )
    return matmul_core(ctx, out_shape, x, wt, bias)
