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

from compiler.context import LowerCtx, tensor_meta
from compiler.ops.matmul import mat_operand
from compiler.ops.vector import Vec
from compiler.registry import Unsupported, lowering
from contract.isa import BMode, VBinFunct

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

    Q, K, V = (mat_operand(t, tuple(batch)) for t in (q, k, v))
    Mb = mat_operand(mask_bias, tuple(batch)) if mask_bias is not None else None
    out = ctx.new_tensor(out_shape)
    O = mat_operand(out, tuple(batch))
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
        k_sram = ctx.spad.alloc(S, D)  # K [S, D]
        v_sram = ctx.spad.alloc(S, Dv)  # V [S, Dv]
        q_sram = ctx.spad.alloc(tq, D)  # Q tile [tq, D]
        p_sram = ctx.spad.alloc(tq, S)  # P tile [tq, S], bf16
        ctx.load(K.tile(bi, 0, 0, S, D), k_sram)
        ctx.load(V.tile(bi, 0, 0, S, Dv), v_sram)
        for t0 in range(0, T, tq):
            nt = min(tq, T - t0)
            ctx.acc.top = 0
            vec = Vec(ctx, nt, S)
            s_acc = vec.alloc()  # S, then P, [nt, S] fp32
            o_acc = ctx.acc.alloc(nt, Dv)  # O tile [nt, Dv]
            ctx.load(Q.tile(bi, t0, 0, nt, D), q_sram)
            ctx.emit(
                "matmul",
                **s_acc.fields("dst"),
                **q_sram.fields("a"),
                **k_sram.fields("b"),
                m=nt,
                n=S,
                k=D,
                trans_b=1,
            )
            vec.imm(VBinFunct.MUL, s_acc, s_acc, scale)
            if mask_off is not None:
                ctx.emit(
                    "vmask",
                    **s_acc.fields("dst"),
                    **s_acc.fields("a"),
                    rows=nt,
                    cols=S,
                    offset=t0 + mask_off,
                    imm=NEG_INF,
                )
            if Mb is not None:
                m_acc = vec.alloc()  # mask bias tile [nt, S]
                ctx.load(Mb.tile(bi, t0, 0, nt, S), m_acc)
                vec.bin(VBinFunct.ADD, s_acc, s_acc, m_acc, BMode.FULL)
            vec.softmax_rows(s_acc)
            ctx.emit(  # P to SPAD, rounded to bf16, as the second matmul's A
                "move",
                dst_space=p_sram.space,
                src_space=s_acc.space,
                **p_sram.fields("dst"),
                **s_acc.fields("src"),
                rows=nt,
                cols=S,
            )
            ctx.emit(
                "matmul",
                **o_acc.fields("dst"),
                **p_sram.fields("a"),
                **v_sram.fields("b"),
                m=nt,
                n=Dv,
                k=S,
            )
            ctx.store(o_acc, O.tile(bi, t0, 0, nt, Dv))
    return out
