"""aten.scaled_dot_product_attention, per (batch, head) and per block of query rows.

Untiled, when K, V and a block's whole score rows fit on chip (every model that compiled
before the tiled path existed compiles to the same instructions):

    S = (Q @ K^T) * scale  -> mask -> softmax rows -> P (bf16) -> O = P @ V

Tiled over the key/value sequence otherwise (or when a test forces tiles): an online
softmax with a running max m, a running sum l and an fp32 accumulator O per query row,
as one fixed instruction sequence (docs/isa.md, "Attention tiled over the key
sequence"); the tile sizes are a compile-time function of the shapes and the hardware
config (`tiled_sizes`), so a program always computes the same bits.

Q, K, V are DMA'd straight from their (permuted) views. A causal mask, given as
is_causal or as a constant boolean tensor with the causal pattern, becomes VMASK (and,
tiled, K/V tiles that every row of a query block masks are skipped); any other constant
boolean mask is added as a constant (0 / -inf) bias tile; a float mask, constant or
computed at run time, is loaded and added. A boolean mask computed at run time (by a
comparison on the device, as an fp32 1.0 / +0.0 mask: compiler/ops/select.py; or a bool
input, converted) is loaded and selects: s = keep(s, mask, -inf) (VBIN KEEP), bit for
bit what masked_fill(~mask, -inf) gives.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType
from compiler.ops.matmul import MatOperand, mat_operand
from compiler.ops.select import as_mask_operand
from compiler.ops.vector import NEG_FLT_MAX, Vec
from compiler.registry import Unsupported, lowering
from contract.isa import BMode, VBinFunct, VReduceFunct, VUnaryFunct

aten = torch.ops.aten
NEG_INF = float("-inf")
# The running max starts no lower than NEG_FLT_MAX (the most negative finite fp32), so a
# row whose first K/V tile is masked throughout gets p = exp(-inf - (-FLT_MAX)) = 0, not NaN.
# Per query row of a tiled block: five [rows, 1] columns in ACC (running max twice, as
# the old and new values alternate, running sum, this tile's row max / row sum, and the
# correction exp(m - m')).
STAT_COLUMNS = 5
# Test hook: (query rows, keys) per tile forces the tiled path with these sizes.
FORCE_TILES: tuple[int, int] | None = None


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


def _mask_operand(mask: TensorRef, batch: tuple[int, ...], T: int, S: int) -> MatOperand:
    """The additive mask [..., T | 1, S | 1] as a matrix operand: a size-1 row or column
    dim is broadcast (stride 0) over the T query rows or the S keys."""
    op = mat_operand(mask, batch)
    if mask.shape[-2] == 1 and T > 1:
        op = replace(op, rs=0)
    if mask.shape[-1] == 1 and S > 1:
        op = replace(op, cs=0)
    return op


def untiled_rows(ctx: LowerCtx, S: int, D: int, Dv: int, masked: bool) -> int:
    """Query rows per block of the untiled path (< 1: it does not fit)."""
    pad = ctx.acc.pad
    # SPAD: K [S, D], V [S, Dv], Q tile [tq, D], P tile [tq, S]
    spad_left = ctx.spad.capacity - S * (pad(D) + pad(Dv))
    # ACC: S/P tile [tq, S] (+ mask tile), O tile [tq, Dv], row stats
    acc_per_row = pad(S) * (2 if masked else 1) + pad(Dv) + ctx.hw.line_elems
    return min(
        spad_left // (pad(D) + pad(S)) if spad_left > 0 else 0, ctx.acc.capacity // acc_per_row
    )


def tiled_sizes(ctx: LowerCtx, T: int, S: int, D: int, Dv: int, masked: bool) -> tuple[int, int]:
    """(tq, ts): query rows per block and keys per K/V tile of the tiled path.

    tq starts at min(T, matmul_rows) and halves until the largest ts (a multiple of the
    line, at most S rounded up to a line) that fits is at least min(S, 4 lines); at
    tq = 1 any ts of a line or more will do. SPAD holds Q [tq, D], K [ts, D],
    V [ts, Dv] and P [tq, ts] (bf16); ACC holds S [tq, ts] (and the mask tile),
    O [tq, Dv] and STAT_COLUMNS columns."""
    if FORCE_TILES is not None:
        return FORCE_TILES
    pad, line = ctx.acc.pad, ctx.hw.line_elems
    regions = 2 if masked else 1
    s_cap = pad(S)
    tq = min(T, ctx.limits.matmul_rows)
    while True:
        spad_ts = (ctx.spad.capacity - tq * pad(D)) // (pad(D) + pad(Dv) + tq)
        acc_ts = (ctx.acc.capacity // tq - pad(Dv) - STAT_COLUMNS * line) // regions
        ts = min(s_cap, spad_ts, acc_ts) // line * line
        if ts >= min(s_cap, 4 * line) or (tq == 1 and ts >= line):
            return tq, ts
        if tq == 1:
            raise Unsupported(f"attention with D={D}, Dv={Dv} does not fit on chip")
        tq = (tq + 1) // 2


def _mask_kind(ctx: LowerCtx, node, mask, is_causal) -> tuple[int | None, TensorRef | None, bool]:
    """(causal offset, mask tile, whether the tile selects) of the mask arguments: the
    tile is added (a float mask) or, selecting, keeps the scores where it is non-zero."""
    if is_causal:
        return 0, None, False
    if mask is None:
        return None, None, False
    if not isinstance(mask, TensorRef):
        raise Unsupported("attention mask that is not a tensor")
    mask_node = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
    if tensor_meta(mask_node).dtype == torch.bool:
        const = ctx.constant_value(mask) if mask.dtype == VDType.BOOL else None
        if const is None:  # a device mask (fp32 1.0 / +0.0) or a runtime bool tensor
            return None, as_mask_operand(ctx, mask), True
        off = causal_offset(const)
        if off is not None:
            return off, None, False
        bias = torch.zeros(const.shape).masked_fill(~const, NEG_INF)  # [..., T, S]
        return None, ctx.new_constant(bias, f"{node.name}_mask_bias"), False
    if mask.dtype != VDType.F32:
        raise Unsupported(f"attention mask of {mask.dtype.value}")
    return None, mask, False  # float: constant or computed at run time, added as is


def _apply_mask(vec: Vec, s_acc, m_acc, keep: bool) -> None:
    """s = s + m (additive mask), or s = m != 0 ? s : -inf (a boolean mask)."""
    if keep:
        vec.select(VBinFunct.KEEP, s_acc, s_acc, m_acc, NEG_INF)
    else:
        vec.bin(VBinFunct.ADD, s_acc, s_acc, m_acc, BMode.FULL)


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
    mask_off, mask_bias, keep = _mask_kind(ctx, node, mask, is_causal)

    batch = tuple(batch)
    Q, K, V = (mat_operand(t, batch) for t in (q, k, v))
    Mb = _mask_operand(mask_bias, batch, T, S) if mask_bias is not None else None
    out = ctx.new_tensor(out_shape)
    O = mat_operand(out, batch)
    tq = min(T, untiled_rows(ctx, S, D, Dv, Mb is not None))
    if FORCE_TILES is None and tq >= 1:
        _untiled(ctx, batch, T, S, D, Dv, scale, mask_off, Q, K, V, Mb, keep, O, tq)
    else:
        tq, ts = tiled_sizes(ctx, T, S, D, Dv, Mb is not None)
        # golden/reference.py follows the tiled sequence's roundings with these sizes.
        node.meta["loom_sdpa_tiles"] = (tq, ts)
        _tiled(ctx, batch, T, S, D, Dv, scale, mask_off, Q, K, V, Mb, keep, O, tq, ts)
    return out


def _untiled(ctx: LowerCtx, batch, T, S, D, Dv, scale, mask_off, Q, K, V, Mb, keep, O, tq):
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
            _scores(ctx, vec, s_acc, q_sram, k_sram, scale, D)
            if mask_off is not None:
                _vmask(ctx, s_acc, nt, S, t0 + mask_off)
            if Mb is not None:
                m_acc = vec.alloc()  # mask bias tile [nt, S]
                ctx.load(Mb.tile(bi, t0, 0, nt, S), m_acc)
                _apply_mask(vec, s_acc, m_acc, keep)
            # A mask tile or a causal offset < 0 can mask a row throughout: 0, not NaN.
            vec.softmax_rows(s_acc, masked_rows_zero=Mb is not None or (mask_off or 0) < 0)
            _to_spad(ctx, p_sram, s_acc, nt, S)
            _pv(ctx, o_acc, p_sram, v_sram, nt, Dv, S, acc=False)
            ctx.store(o_acc, O.tile(bi, t0, 0, nt, Dv))


def _scores(ctx: LowerCtx, vec: Vec, s_acc, q_sram, k_sram, scale: float, D: int) -> None:
    """s [rows, cols] = (q [rows, D] @ k[cols, D]^T) * scale."""
    ctx.emit(
        "matmul",
        **s_acc.fields("dst"),
        **q_sram.fields("a"),
        **k_sram.fields("b"),
        m=vec.rows,
        n=vec.cols,
        k=D,
        trans_b=1,
    )
    vec.imm(VBinFunct.MUL, s_acc, s_acc, scale)


def _vmask(ctx: LowerCtx, s_acc, rows: int, cols: int, offset: int) -> None:
    """s[r, c] = -inf where c > r + offset."""
    ctx.emit(
        "vmask",
        **s_acc.fields("dst"),
        **s_acc.fields("a"),
        rows=rows,
        cols=cols,
        offset=offset,
        imm=NEG_INF,
    )


def _to_spad(ctx: LowerCtx, p_sram, s_acc, rows: int, cols: int) -> None:
    """P [rows, cols] to SPAD, rounded to bf16, as the second matmul's A."""
    ctx.emit(
        "move",
        dst_space=p_sram.space,
        src_space=s_acc.space,
        **p_sram.fields("dst"),
        **s_acc.fields("src"),
        rows=rows,
        cols=cols,
    )


def _pv(ctx: LowerCtx, o_acc, p_sram, v_sram, rows: int, Dv: int, keys: int, acc: bool) -> None:
    """o [rows, Dv] (+)= p [rows, keys] @ v [keys, Dv]."""
    fields = dict(acc=1) if acc else {}
    ctx.emit(
        "matmul",
        **o_acc.fields("dst"),
        **p_sram.fields("a"),
        **v_sram.fields("b"),
        m=rows,
        n=Dv,
        k=keys,
        **fields,
    )


def kv_tiles(S: int, ts: int, t0: int, nt: int, mask_off: int | None):
    """(s0, ns, masked) of the K/V tiles a query block [t0, t0 + nt) processes: with a
    causal mask, tiles after the first that every row of the block masks are skipped,
    and `masked` says whether the tile needs VMASK (some column of it is masked)."""
    for s0 in range(0, S, ts):
        ns = min(ts, S - s0)
        if mask_off is None:
            yield s0, ns, False
            continue
        if s0 > 0 and s0 > t0 + nt - 1 + mask_off:
            break  # row t0 + nt - 1 sees columns <= t0 + nt - 1 + off only
        yield s0, ns, s0 + ns - 1 > t0 + mask_off


def _tiled(ctx: LowerCtx, batch, T, S, D, Dv, scale, mask_off, Q, K, V, Mb, keep, O, tq, ts):
    ctx.spad.top = ctx.acc.top = 0
    q_sram = ctx.spad.alloc(tq, D)  # Q block [tq, D]
    k_sram = ctx.spad.alloc(ts, D)  # K tile [ts, D]
    v_sram = ctx.spad.alloc(ts, Dv)  # V tile [ts, Dv]
    p_sram = ctx.spad.alloc(tq, ts)  # P tile [tq, ts], bf16
    s_acc = ctx.acc.alloc(tq, ts)  # S, then exp(S - m'), [tq, ts] fp32
    b_acc = ctx.acc.alloc(tq, ts) if Mb is not None else None  # mask tile [tq, ts]
    o_acc = ctx.acc.alloc(tq, Dv)  # O accumulator [tq, Dv]
    m_run = [ctx.acc.alloc(tq, 1), ctx.acc.alloc(tq, 1)]  # running max [tq, 1], old/new
    l_run = ctx.acc.alloc(tq, 1)  # running sum [tq, 1]
    r_col = ctx.acc.alloc(tq, 1)  # this tile's row max, then row sum [tq, 1]
    c_col = ctx.acc.alloc(tq, 1)  # correction exp(m - m') [tq, 1]
    for bi in itertools.product(*[range(d) for d in batch]):
        for t0 in range(0, T, tq):
            nt = min(tq, T - t0)
            col = Vec(ctx, nt, 1)
            ctx.load(Q.tile(bi, t0, 0, nt, D), q_sram)
            for j, (s0, ns, masked) in enumerate(kv_tiles(S, ts, t0, nt, mask_off)):
                vec = Vec(ctx, nt, ns)
                m_old, m_new = m_run[(j - 1) % 2], m_run[j % 2]
                ctx.load(K.tile(bi, s0, 0, ns, D), k_sram)
                ctx.load(V.tile(bi, s0, 0, ns, Dv), v_sram)
                _scores(ctx, vec, s_acc, q_sram, k_sram, scale, D)
                if masked:
                    _vmask(ctx, s_acc, nt, ns, t0 + mask_off - s0)
                if Mb is not None:
                    ctx.load(Mb.tile(bi, t0, s0, nt, ns), b_acc)
                    _apply_mask(vec, s_acc, b_acc, keep)
                if j == 0:  # m = max(rowmax(s), -FLT_MAX); p = exp(s - m); l = rowsum(p)
                    vec.reduce(VReduceFunct.MAX, m_new, s_acc)
                    col.imm(VBinFunct.MAX, m_new, m_new, NEG_FLT_MAX)
                    vec.bin(VBinFunct.SUB, s_acc, s_acc, m_new, BMode.COL)
                    vec.unary(VUnaryFunct.EXP, s_acc, s_acc)
                    vec.reduce(VReduceFunct.SUM, l_run, s_acc)
                else:  # m' = max(m, rowmax(s)); p = exp(s - m'); c = exp(m - m')
                    vec.reduce(VReduceFunct.MAX, r_col, s_acc)
                    col.bin(VBinFunct.MAX, m_new, m_old, r_col)
                    vec.bin(VBinFunct.SUB, s_acc, s_acc, m_new, BMode.COL)
                    vec.unary(VUnaryFunct.EXP, s_acc, s_acc)
                    col.bin(VBinFunct.SUB, c_col, m_old, m_new)
                    col.unary(VUnaryFunct.EXP, c_col, c_col)
                    vec.reduce(VReduceFunct.SUM, r_col, s_acc)  # l = l * c + rowsum(p)
                    col.bin(VBinFunct.MUL, l_run, l_run, c_col)
                    col.bin(VBinFunct.ADD, l_run, l_run, r_col)
                    Vec(ctx, nt, Dv).bin(VBinFunct.MUL, o_acc, o_acc, c_col, BMode.COL)
                _to_spad(ctx, p_sram, s_acc, nt, ns)
                _pv(ctx, o_acc, p_sram, v_sram, nt, Dv, ns, acc=j > 0)  # o (+)= p @ v
            # o = o * recip(max(l, 1)): l >= 1 wherever a score is finite (the row's max
            # term is exp(0) = 1), so the max only turns a row masked throughout (o = 0,
            # l = 0) into 0, as PyTorch's sdpa gives, rather than 0 * inf = NaN.
            col.imm(VBinFunct.MAX, l_run, l_run, 1.0)
            col.unary(VUnaryFunct.RECIP, l_run, l_run)
            Vec(ctx, nt, Dv).bin(VBinFunct.MUL, o_acc, o_acc, l_run, BMode.COL)
            ctx.store(o_acc, O.tile(bi, t0, 0, nt, Dv))
