"""aten.scaled_dot_product_attention, per (batch, head) and per tile of query rows:

    S = (Q @ K^T) * scale  -> mask -> softmax rows -> P (bf16) -> O = P @ V

Q, K, V are DMA'd straight from their (permuted) views. A causal mask, given as
is_causal or as a constant boolean tensor with the causal pattern, becomes VMASK; any
other constant mask is added as a constant (0 / -inf) bias tile.
"""

from __future__ import annotations

import itertools
import math

import torch

from compiler.ops.matmul import _mat
from compiler.ops.vector import Vec
from compiler.registry import LowerCtx, Unsupported, lowering, tensor_meta
from contract.isa import BMode, Mem, VBinFunct

aten = torch.ops.aten
NEG_INF = float("-inf")


def causal_offset(mask: torch.Tensor) -> int | None:
    """If mask[..., t, s] == (s <= t + off) for every leading index, return off."""
    m = mask.to(torch.bool).reshape(-1, *mask.shape[-2:])
    t, s = m.shape[-2:]
    if not bool((m == m[0]).all()):
        return None
    row0 = m[0, 0]
    off = int(row0.sum()) - 1
    pattern = torch.arange(s)[None, :] <= torch.arange(t)[:, None] + off
    return off if bool((m[0] == pattern).all()) else None


@lowering(aten.scaled_dot_product_attention.default)
def lower_sdpa(ctx: LowerCtx, node, args, kwargs):
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
    dropout = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
    is_causal = args[5] if len(args) > 5 else kwargs.get("is_causal", False)
    scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
    if kwargs.get("enable_gqa", False):
        raise Unsupported("grouped-query attention")
    if dropout:
        raise Unsupported("attention dropout")
    out_shape = tuple(tensor_meta(node).shape)
    *batch, T, D = q.shape
    S, Dv = k.shape[-2], v.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)

    mask_off, mask_bias = None, None
    if is_causal:
        mask_off = 0
    elif mask is not None:
        const = ctx.constant_value(mask)
        if const is None:
            raise Unsupported("attention mask computed at run time")
        if const.dtype == torch.bool:
            mask_off = causal_offset(const)
            if mask_off is None:
                bias = torch.zeros(const.shape).masked_fill(~const, NEG_INF)
                mask_bias = ctx.new_constant(bias, f"{node.name}_mask_bias")
        else:
            mask_bias = mask

    Q, K, V = _mat(q, tuple(batch)), _mat(k, tuple(batch)), _mat(v, tuple(batch))
    Mb = _mat(mask_bias, tuple(batch)) if mask_bias is not None else None
    out = ctx.new_tensor(out_shape)
    O = _mat(out, tuple(batch))
    pad = ctx.acc.pad
    # SPAD: K [S, D], V [S, Dv], Q tile [tq, D], P tile [tq, S]
    spad_left = ctx.spad.capacity - S * (pad(D) + pad(Dv))
    # ACC: S/P tile [tq, S] (+ mask tile), O tile [tq, Dv], row stats
    acc_per_row = pad(S) * (2 if Mb else 1) + pad(Dv) + ctx.hw.line_elems
    tq = min(
        T, spad_left // (pad(D) + pad(S)) if spad_left > 0 else 0, ctx.acc.capacity // acc_per_row
    )
    if tq < 1:
        raise Unsupported(f"attention with S={S}, D={D} does not fit on chip")
    for bi in itertools.product(*[range(d) for d in batch]):
        ctx.spad.top = 0
        k_addr, k_stride = ctx.spad.alloc(S, D)
        v_addr, v_stride = ctx.spad.alloc(S, Dv)
        q_addr, q_stride = ctx.spad.alloc(tq, D)
        p_addr, p_stride = ctx.spad.alloc(tq, S)
        ctx.load_2d(K.ref, K.offset(bi, 0, 0), S, D, K.rs, K.cs, Mem.SPAD, k_addr, k_stride)
        ctx.load_2d(V.ref, V.offset(bi, 0, 0), S, Dv, V.rs, V.cs, Mem.SPAD, v_addr, v_stride)
        for t0 in range(0, T, tq):
            nt = min(tq, T - t0)
            ctx.acc.top = 0
            vec = Vec(ctx, nt, S)
            s_reg = vec.alloc()
            o_addr, o_stride = ctx.acc.alloc(nt, Dv)
            ctx.load_2d(Q.ref, Q.offset(bi, t0, 0), nt, D, Q.rs, Q.cs, Mem.SPAD, q_addr, q_stride)
            ctx.emit(
                "matmul",
                dst=s_reg.addr,
                dst_stride=s_reg.stride,
                a=q_addr,
                a_stride=q_stride,
                b=k_addr,
                b_stride=k_stride,
                m=nt,
                n=S,
                k=D,
                trans_b=1,
            )
            vec.imm(VBinFunct.MUL, s_reg, s_reg, scale)
            if mask_off is not None:
                ctx.emit(
                    "vmask",
                    dst=s_reg.addr,
                    dst_stride=s_reg.stride,
                    a=s_reg.addr,
                    a_stride=s_reg.stride,
                    rows=nt,
                    cols=S,
                    offset=t0 + mask_off,
                    imm=NEG_INF,
                )
            if Mb is not None:
                m_reg = vec.alloc()
                ctx.load_2d(
                    Mb.ref,
                    Mb.offset(bi, t0, 0),
                    nt,
                    S,
                    Mb.rs,
                    Mb.cs,
                    Mem.ACC,
                    m_reg.addr,
                    m_reg.stride,
                )
                vec.bin(VBinFunct.ADD, s_reg, s_reg, m_reg, BMode.FULL)
            vec.softmax_rows(s_reg)
            ctx.emit(
                "move",
                dst_space=Mem.SPAD,
                src_space=Mem.ACC,
                dst=p_addr,
                dst_stride=p_stride,
                src=s_reg.addr,
                src_stride=s_reg.stride,
                rows=nt,
                cols=S,
            )
            ctx.emit(
                "matmul",
                dst=o_addr,
                dst_stride=o_stride,
                a=p_addr,
                a_stride=p_stride,
                b=v_addr,
                b_stride=v_stride,
                m=nt,
                n=Dv,
                k=S,
            )
            ctx.store_2d(out, O.offset(bi, t0, 0), nt, Dv, O.rs, O.cs, o_addr, o_stride)
    return out
