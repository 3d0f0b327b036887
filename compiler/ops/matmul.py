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
from compiler.tiles import DramTile

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


def matmul_core(
    ctx: LowerCtx, out_shape: tuple[int, ...], a: TensorRef, b: TensorRef, bias: TensorRef | None
) -> TensorRef:
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

    tk = min(K, ctx.limits.matmul_depth)
    tm = min(M, ctx.limits.matmul_rows)
    # Largest tn (a multiple of the line) for which SPAD and ACC hold the tiles.
    spad_left = ctx.spad.capacity - tm * pad(tk)
    tn_spad = spad_left // pad(tk) if trans_b else spad_left // tk
    tn_acc = ctx.acc.capacity // (tm + 1)
    tn = min(N, (min(tn_spad, tn_acc) // line) * line)
    if tn <= 0:
        raise Unsupported(f"matmul tiles do not fit on chip (M={M}, K={K})")
    n_k = math.ceil(K / tk)

    for bi in itertools.product(*[range(d) for d in batch]):
        for m0 in range(0, M, tm):
            mm_ = min(tm, M - m0)
            ctx.spad.top = 0
            ctx.acc.top = 0
            a_sram = ctx.spad.alloc(mm_, tk)  # A [mm_, tk]
            b_sram = ctx.spad.alloc(*((tn, tk) if trans_b else (tk, tn)))  # B [tk, tn] or B^T
            c_sram = ctx.acc.alloc(mm_, tn)  # C [mm_, tn], fp32
            bias_sram = ctx.acc.alloc(1, tn) if bias is not None else None  # bias [1, tn]
            for n0 in range(0, N, tn):
                nn_ = min(tn, N - n0)
                if bias_sram is not None:
                    ctx.load(DramTile.row_of(bias, n0, nn_), bias_sram.one_row())
                for ki, k0 in enumerate(range(0, K, tk)):
                    kk = min(tk, K - k0)
                    if n0 == 0 or n_k > 1:  # A is reused across n tiles when K fits
                        ctx.load(A.tile(bi, m0, k0, mm_, kk), a_sram)
                    b_tile = B.tile(bi, k0, n0, kk, nn_)  # [kk, nn_]
                    ctx.load(b_tile.transposed() if trans_b else b_tile, b_sram)
                    ctx.emit(
                        "matmul",
                        **c_sram.fields("dst"),
                        **a_sram.fields("a"),
                        **b_sram.fields("b"),
                        bias=bias_sram.addr if bias_sram is not None else 0,
                        m=mm_,
                        n=nn_,
                        k=kk,
                        acc=int(ki > 0),
                        trans_b=int(trans_b),
                        use_bias=int(ki == 0 and bias_sram is not None),
                    )
                ctx.store(c_sram, C.tile(bi, m0, n0, mm_, nn_))
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
