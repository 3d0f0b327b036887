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

from compiler.ir import TensorRef, contiguous_strides
from compiler.registry import LowerCtx, Unsupported, lowering, tensor_meta
from contract.isa import Mem

aten = torch.ops.aten
MAX_TK = 1024
MAX_TM = 128


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


def _mat(ref: TensorRef, batch_shape: tuple[int, ...]) -> MatOperand:
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
    A, B = _mat(a, batch), _mat(b, batch)
    out = ctx.new_tensor(out_shape)
    C = _mat(out, batch)
    trans_b = B.rs == 1 and B.cs != 1
    line = ctx.hw.line_elems
    pad = ctx.spad.pad

    tk = min(K, MAX_TK)
    tm = min(M, MAX_TM)
    # Largest tn (a multiple of the line) for which SPAD and ACC hold the tiles.
    spad_left = ctx.spad.capacity - tm * pad(tk)
    tn_spad = spad_left // pad(tk) if trans_b else spad_left // tk
    tn_acc = ctx.acc.capacity // (tm + 1)
    tn = min(N, (min(tn_spad, tn_acc) // line) * line)
    if tn <= 0:
        raise Unsupported(f"matmul tiles do not fit on chip (M={M}, K={K})")
    n_k = math.ceil(K / tk)

    bias_op = None
    if bias is not None:
        bias_op = MatOperand(bias, (), 0, bias.strides[-1])
    for bi in itertools.product(*[range(d) for d in batch]):
        for m0 in range(0, M, tm):
            mm_ = min(tm, M - m0)
            ctx.spad.top = 0
            ctx.acc.top = 0
            a_addr, a_stride = ctx.spad.alloc(mm_, tk)
            b_rows, b_cols = (tn, tk) if trans_b else (tk, tn)
            b_addr, b_stride = ctx.spad.alloc(b_rows, b_cols)
            c_addr, c_stride = ctx.acc.alloc(mm_, tn)
            bias_addr = ctx.acc.alloc(1, tn)[0] if bias_op else 0
            for n0 in range(0, N, tn):
                nn_ = min(tn, N - n0)
                if bias_op:
                    ctx.load_2d(bias, n0 * bias_op.cs, 1, nn_, 0, bias_op.cs, Mem.ACC, bias_addr, 0)
                for ki, k0 in enumerate(range(0, K, tk)):
                    kk = min(tk, K - k0)
                    if n0 == 0 or n_k > 1:  # A is reused across n tiles when K fits
                        ctx.load_2d(
                            A.ref,
                            A.offset(bi, m0, k0),
                            mm_,
                            kk,
                            A.rs,
                            A.cs,
                            Mem.SPAD,
                            a_addr,
                            a_stride,
                        )
                    if trans_b:
                        ctx.load_2d(
                            B.ref,
                            B.offset(bi, k0, n0),
                            nn_,
                            kk,
                            B.cs,
                            B.rs,
                            Mem.SPAD,
                            b_addr,
                            b_stride,
                        )
                    else:
                        ctx.load_2d(
                            B.ref,
                            B.offset(bi, k0, n0),
                            kk,
                            nn_,
                            B.rs,
                            B.cs,
                            Mem.SPAD,
                            b_addr,
                            b_stride,
                        )
                    ctx.emit(
                        "matmul",
                        dst=c_addr,
                        dst_stride=c_stride,
                        a=a_addr,
                        a_stride=a_stride,
                        b=b_addr,
                        b_stride=b_stride,
                        bias=bias_addr,
                        m=mm_,
                        n=nn_,
                        k=kk,
                        acc=int(ki > 0),
                        trans_b=int(trans_b),
                        use_bias=int(ki == 0 and bias_op is not None),
                    )
                ctx.store_2d(out, C.offset(bi, m0, n0), mm_, nn_, C.rs, C.cs, c_addr, c_stride)
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
