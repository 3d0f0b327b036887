"""Comparisons, masks and selects on the vector unit (ISA v5): gt lt ge le eq ne
(.Tensor / .Scalar), isnan, logical and bitwise not / and / or / xor on masks, where.self
(masked_fill decomposes to it, with the fill value a folded 0-d constant).

Masks on the device: a comparison writes an fp32 mask, 1.0 / +0.0 (VBIN eq ... ge), and
a bool tensor produced on the device stays that fp32 mask: its TensorRef is fp32 while
the graph says bool. So that no one else ever reads such a mask as bytes, a mask is made
on the device only when every use of it (through views) is a mask use this module
lowers: the condition of a where, an operand of a logical op (itself kept on the device
by the same rule), or the boolean mask of an attention (which selects with it); views
of it, and indexing at constant affine positions (a view too), count as the mask. A mask
that is a model or layer output, or feeds any other op, is computed on the host
instead (a real bool tensor). A bool tensor in DRAM (bytes: not DMA-loadable) that
reaches a mask use is converted first: a constant at compile time (an fp32 constant of
0.0 / 1.0), a runtime one (a model input, a host op's result) by a host _to_copy to
float32 before the device reads it.

Selects are exact: where(c, x, y) = keep(x, c, imm=-0.0) + fill(y, c, imm=-0.0), since
-0.0 + v == v bit for bit; a scalar branch is the immediate of a single keep or fill.
Every value moves unchanged except NaNs, which become the canonical NaN (the ISA's
rule for every vector result; PyTorch would keep their sign and payload).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx

from compiler.context import LowerCtx
from compiler.ir import BufferKind, HostOp, TensorRef, VDType
from compiler.ops.elementwise import elementwise
from compiler.ops.gather import index_view
from compiler.ops.views import is_view
from compiler.registry import Unsupported, lowering
from contract import hostops
from contract.isa import VBinFunct, VUnaryFunct

aten = torch.ops.aten
EQ, NE, LT, LE, GT, GE = (VBinFunct[n] for n in ("EQ", "NE", "LT", "LE", "GT", "GE"))
KEEP, FILL, ADD = VBinFunct.KEEP, VBinFunct.FILL, VBinFunct.ADD

COMPARE = {
    **{getattr(aten, n).Tensor: VBinFunct[n.upper()] for n in ("gt", "lt", "ge", "le", "eq", "ne")},
    **{getattr(aten, n).Scalar: VBinFunct[n.upper()] for n in ("gt", "lt", "ge", "le", "eq", "ne")},
}
# scalar op tensor == tensor op' scalar
SWAPPED = {EQ: EQ, NE: NE, LT: GT, LE: GE, GT: LT, GE: LE}
NOT = (aten.logical_not.default, aten.bitwise_not.default)
AND = (aten.logical_and.default, aten.bitwise_and.Tensor)
OR = (aten.logical_or.default, aten.bitwise_or.Tensor)
XOR = (aten.logical_xor.default, aten.bitwise_xor.Tensor)
LOGICAL = (*NOT, *AND, *OR, *XOR)
BITWISE = {aten.bitwise_not.default, aten.bitwise_and.Tensor, aten.bitwise_or.Tensor,
           aten.bitwise_xor.Tensor}  # fmt: skip
WHERE = aten.where.self
SDPA = aten.scaled_dot_product_attention.default
INDEX = aten.index.Tensor


def _val(n) -> torch.Tensor | None:
    v = n.meta.get("val") if isinstance(n, fx.Node) else None
    return v if isinstance(v, torch.Tensor) else None


def _dtype(n) -> torch.dtype | None:
    v = _val(n)
    return v.dtype if v is not None else None


def _float_or_scalar(n) -> bool:
    if isinstance(n, fx.Node):
        d = _dtype(n)
        return d is not None and d.is_floating_point
    return isinstance(n, (int, float)) and not isinstance(n, bool)


def _accepts(user: fx.Node, node: fx.Node, ctx: LowerCtx) -> bool:
    """True when `user` is lowered on the device with `node` as a mask: by this module,
    or as the boolean mask of scaled_dot_product_attention (compiler/ops/attention.py)."""
    if user.op != "call_function":
        return False
    if user.target == SDPA:
        mask = user.args[3] if len(user.args) > 3 else user.kwargs.get("attn_mask")
        return mask is node and node not in user.args[:3]
    if user.kwargs:
        return False
    if is_view(user.target) or (
        user.target == INDEX and user.args[0] is node and index_view(user, ctx) is not None
    ):
        return _stays(user, ctx)
    if user.target == WHERE:
        c, x, y = user.args
        return (
            c is node
            and x is not node
            and y is not node
            and _dtype(user) == torch.float32
            and _float_or_scalar(x)
            and _float_or_scalar(y)
        )
    if user.target in LOGICAL:
        return _logical_ok(user) and _stays(user, ctx)
    return False


def _stays(node: fx.Node, ctx: LowerCtx) -> bool:
    """A device mask may represent node: all its uses are mask uses lowered here."""
    # A layer's input may be a device mask (its checkpoint reads the fp32 1.0 / +0.0 and
    # golden.reference casts it back to bool); a layer's output must be PyTorch's bool.
    if node.name in ctx.checkpoint_outputs or not node.users:
        return False
    return all(_accepts(u, node, ctx) for u in node.users)


def _logical_ok(node: fx.Node) -> bool:
    operands = node.args
    if not all(isinstance(a, fx.Node) for a in operands):
        return False
    if node.target in BITWISE:
        return all(_dtype(a) == torch.bool for a in operands)
    return all(_dtype(a) is not None and (_dtype(a) == torch.bool or _dtype(a).is_floating_point)
               for a in operands)  # fmt: skip


class _AsFloat:
    """The node as elementwise() sees it: an fp32 result of the same shape (a mask)."""

    def __init__(self, node: fx.Node):
        self.name = node.name
        self.meta = {"val": torch.empty(_val(node).shape, dtype=torch.float32, device="meta")}


def _keep_on_device(ctx: LowerCtx, node: fx.Node) -> None:
    if not _stays(node, ctx):
        raise Unsupported(
            "a mask is made on the device only for masks used by where and logical ops"
            " (this one is a model or layer output, or used by another op)"
        )


def as_mask_operand(ctx: LowerCtx, ref: TensorRef) -> TensorRef:
    """An fp32 view of a mask operand: device masks as they are; a bool tensor in DRAM
    converted (constant: at compile time; runtime: by a host _to_copy)."""
    if not isinstance(ref, TensorRef):
        raise Unsupported("mask operand is not a tensor")
    if ref.dtype in (VDType.F32, VDType.BF16):
        return ref
    if ref.dtype != VDType.BOOL:
        raise Unsupported(f"mask operand dtype {ref.dtype.value}")
    value = ctx.constant_value(ref)
    if value is not None:
        name = f"{ctx.node_name}_mask#{len(ctx.buffers)}"
        return ctx.new_constant(value.to(torch.float32).contiguous(), name, VDType.F32)
    args, kwargs = [{"tensor": 0}], {"dtype": {"dtype": "float32"}}
    try:
        hostops.check_call("aten._to_copy.default", args, kwargs, 1, 1)
    except hostops.HostOpRefused as e:  # pragma: no cover - the allow-list has _to_copy
        raise Unsupported(f"bool mask cannot be converted on the host: {e}") from None
    out = ctx.new_tensor(ref.shape, VDType.F32, BufferKind.ACTIVATION)
    ctx.stream.append(HostOp("aten._to_copy.default", args, kwargs, [ref], [out], ctx.node_name))
    return out


def _f32(x) -> float:
    with np.errstate(over="ignore"):
        return float(np.float32(float(x)))  # PyTorch casts the scalar to fp32 too


def _scalar_of(ctx: LowerCtx, v) -> float | None:
    """A python number, or a one-element constant tensor (a folded 0-d fill value)."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return _f32(v)
    if isinstance(v, TensorRef) and v.numel == 1:
        value = ctx.constant_value(v)
        if value is not None and value.is_floating_point():
            return _f32(value.reshape(-1)[0].item())
    return None


@lowering(*COMPARE)
def lower_compare(ctx: LowerCtx, node, args, kwargs):
    funct = COMPARE[node.target]
    a, b = args[:2]
    if not all(_float_or_scalar(x) for x in node.args[:2]):
        raise Unsupported("comparison of non-float operands")
    _keep_on_device(ctx, node)
    sa, sb = _scalar_of(ctx, a), _scalar_of(ctx, b)
    if not isinstance(a, TensorRef):
        if not isinstance(b, TensorRef):
            raise Unsupported("scalar-only comparison")
        a, b, funct, sa, sb = b, a, SWAPPED[funct], sb, sa
    if isinstance(b, TensorRef) and sb is None:

        def body(vec, dst, ins):
            vec.bin(funct, dst, ins[0], ins[1])

        return elementwise(ctx, _AsFloat(node), [a, b], body)
    return elementwise(
        ctx, _AsFloat(node), [a], lambda vec, dst, ins: vec.imm(funct, dst, ins[0], sb)
    )


@lowering(*LOGICAL)
def lower_logical(ctx: LowerCtx, node, args, kwargs):
    if not _logical_ok(node):
        raise Unsupported("logical op on operands other than masks and floats")
    _keep_on_device(ctx, node)
    masks = [_dtype(a) == torch.bool for a in node.args]  # already 1.0 / +0.0
    ops = [as_mask_operand(ctx, r) for r in args]

    def truth(vec, dst, x, is_mask):  # 1.0 / +0.0 of x != 0
        return x if is_mask else vec.imm(NE, dst, x, 0.0)

    def body(vec, dst, ins):
        if node.target in NOT:
            vec.imm(EQ, dst, ins[0], 0.0)
            return
        x = truth(vec, dst, ins[0], masks[0])
        if node.target in AND:  # y != 0 ? x : 0
            vec.select(KEEP, dst, x, ins[1], 0.0)
        elif node.target in OR:  # y != 0 ? 1 : x
            vec.select(FILL, dst, x, ins[1], 1.0)
        else:  # xor: x != y of the truth values
            y = truth(vec, vec.alloc(), ins[1], masks[1])
            vec.bin(NE, dst, x, y)

    temps = 1 if node.target in XOR else 0
    return elementwise(ctx, _AsFloat(node), ops, body, temps=temps)


@lowering(WHERE)
def lower_where(ctx: LowerCtx, node, args, kwargs):
    c, x, y = args
    if _dtype(node) != torch.float32:
        raise Unsupported(f"where of {_dtype(node)} values (device selects float32)")
    cond = as_mask_operand(ctx, c)
    sx, sy = _scalar_of(ctx, x), _scalar_of(ctx, y)
    for v, s in ((x, sx), (y, sy)):
        if s is None and not (isinstance(v, TensorRef) and v.dtype in (VDType.F32, VDType.BF16)):
            raise Unsupported("where branch is neither a float tensor nor a scalar")
    if sx is not None and sy is not None:
        # c != 0 ? c : sy, then c != 0 ? sx : that
        def both(vec, dst, ins):
            vec.select(KEEP, dst, ins[0], ins[0], sy)
            vec.select(FILL, dst, dst, ins[0], sx)

        return elementwise(ctx, node, [cond], both)
    if sy is not None:
        return elementwise(
            ctx, node, [cond, x], lambda vec, dst, ins: vec.select(KEEP, dst, ins[1], ins[0], sy)
        )
    if sx is not None:
        return elementwise(
            ctx, node, [cond, y], lambda vec, dst, ins: vec.select(FILL, dst, ins[1], ins[0], sx)
        )

    def body(vec, dst, ins):
        cc, xx, yy = ins
        t = vec.alloc()
        vec.select(KEEP, t, xx, cc, -0.0)
        vec.select(FILL, dst, yy, cc, -0.0)
        vec.bin(ADD, dst, t, dst)  # -0.0 + v == v for every v

    return elementwise(ctx, node, [cond, x, y], body, temps=1)


@lowering(aten.isnan.default)
def lower_isnan(ctx: LowerCtx, node, args, kwargs):
    if not _float_or_scalar(node.args[0]):
        raise Unsupported("isnan of a non-float tensor")
    _keep_on_device(ctx, node)
    return elementwise(  # x != x only for NaN
        ctx, _AsFloat(node), [args[0]], lambda vec, dst, ins: vec.bin(NE, dst, ins[0], ins[0])
    )


def int_to_mask(ctx: LowerCtx, node, src: TensorRef) -> TensorRef:
    """_to_copy(int -> bool) of an int32 tensor in DRAM as a device mask, exactly.

    The DMA moves the int32 words unchanged into ACC, where the vector unit sees them as
    fp32 bit patterns: +0.0 is the integer 0 and every other word is a nonzero float or a
    NaN, except -0.0, which is the integer -2**31. So bool(i) = (x != 0) or (x is -0.0),
    and recip tells -0.0 (-inf) from +0.0 (+inf): mask = fill(x != 0, recip(x) < 0, 1.0)."""
    if src.dtype != VDType.I32:
        raise Unsupported(f"int -> bool of a {src.dtype.value} tensor (kept on the host)")
    _keep_on_device(ctx, node)
    bits = TensorRef(src.buffer, VDType.F32, src.shape, src.strides, src.offset)

    def body(vec, dst, ins):
        neg = vec.alloc()
        vec.imm(NE, dst, ins[0], 0.0)
        vec.unary(VUnaryFunct.RECIP, neg, ins[0])
        vec.imm(LT, neg, neg, 0.0)  # the word was -0.0: the integer -2**31
        vec.select(FILL, dst, dst, neg, 1.0)

    return elementwise(ctx, _AsFloat(node), [bits], body, temps=1)
