"""Element-wise ops: operands are DMA'd as full tiles (broadcasts become zero DRAM
strides), a short vector-unit sequence computes the tile, and it is stored."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType
from compiler.ops.vector import Vec
from compiler.registry import Unsupported, lowering
from compiler.tiles import SramTile
from compiler.tiling import Operand, broadcast_operand, result_tile, row_tiles
from contract.isa import VBinFunct, VUnaryFunct

aten = torch.ops.aten
ADD, SUB, MUL, MAX, MIN = (
    VBinFunct.ADD,
    VBinFunct.SUB,
    VBinFunct.MUL,
    VBinFunct.MAX,
    VBinFunct.MIN,
)

# A body computes the result tile: body(vec, dst, inputs) where inputs are ACC tiles
# (tensor operands) or floats (scalar operands), in argument order.
Body = Callable[[Vec, SramTile, list], None]


def _scalar(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def elementwise(ctx: LowerCtx, node, operands: list, body: Body, temps: int = 0) -> TensorRef:
    out_meta = tensor_meta(node)
    if out_meta.dtype != torch.float32:
        raise Unsupported(f"result dtype {out_meta.dtype} (device computes float32)")
    out_shape = tuple(out_meta.shape)
    tensors = [o for o in operands if isinstance(o, TensorRef)]
    for t in tensors:
        if t.dtype not in (VDType.F32, VDType.BF16):
            raise Unsupported(f"operand dtype {t.dtype.value}")
    if any(not isinstance(o, TensorRef) and _scalar(o) is None for o in operands):
        raise Unsupported("non-numeric scalar operand")
    shape2d = out_shape if out_shape else (1,)
    out = ctx.new_tensor(out_shape)
    if not out_shape:
        out = TensorRef(out.buffer, out.dtype, (1,), (1,), 0)
    ops = [broadcast_operand(t if t.shape else _as_1d(t), shape2d) for t in tensors]
    cols = min(shape2d[-1], ctx.limits.elementwise_cols)
    n_regions = len(tensors) + temps + 1
    rows = max(1, ctx.acc.capacity // (n_regions * ctx.acc.pad(cols)))
    for tile in row_tiles(shape2d, ops + [Operand(out, out.strides)], rows, cols):
        ctx.acc.top = 0
        vec = Vec(ctx, tile.rows, tile.cols)
        loaded = []
        for op in ops:
            reg = vec.alloc()
            ctx.load(op.dram_tile(shape2d, tile), reg)
            loaded.append(reg)
        regs = iter(loaded)
        inputs = [next(regs) if isinstance(o, TensorRef) else _scalar(o) for o in operands]
        dst = vec.alloc()
        body(vec, dst, inputs)
        ctx.store(dst, result_tile(out, tile))
    return TensorRef(out.buffer, out.dtype, out_shape, tuple(out.strides[: len(out_shape)]))


def _as_1d(t: TensorRef) -> TensorRef:
    return TensorRef(t.buffer, t.dtype, (1,), (1,), t.offset)


def _binary(funct: VBinFunct, a, b, vec: Vec, dst: SramTile) -> None:
    """dst = a op b for ACC tiles or floats (at least one tile)."""
    if isinstance(a, SramTile) and isinstance(b, SramTile):
        vec.bin(funct, dst, a, b)
    elif isinstance(a, SramTile):
        vec.imm(funct, dst, a, b)
    elif funct in (ADD, MUL, MAX, MIN):
        vec.imm(funct, dst, b, a)
    else:  # scalar - tensor = (tensor * -1) + scalar
        vec.imm(MUL, dst, b, -1.0)
        vec.imm(ADD, dst, dst, a)


def _check_alpha(node) -> float:
    alpha = node.kwargs.get("alpha", 1)
    if _scalar(alpha) is None:
        raise Unsupported("non-numeric alpha")
    return float(alpha)


@lowering(aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar)
def lower_add_sub(ctx: LowerCtx, node, args, kwargs):
    a, b = args[:2]
    alpha = _check_alpha(node)
    sub = node.target in (aten.sub.Tensor, aten.sub.Scalar)
    if _scalar(a) is not None and _scalar(b) is not None:
        raise Unsupported("scalar-only arithmetic")

    def body(vec: Vec, dst: SramTile, ins: list) -> None:
        x, y = ins
        if alpha != 1.0:
            if isinstance(y, SramTile):
                vec.imm(MUL, dst, y, alpha)
                y = dst
            else:
                y = y * alpha
        _binary(SUB if sub else ADD, x, y, vec, dst)

    return elementwise(ctx, node, [a, b], body)


@lowering(aten.mul.Tensor, aten.mul.Scalar)
def lower_mul(ctx: LowerCtx, node, args, kwargs):
    return elementwise(
        ctx, node, list(args[:2]), lambda vec, dst, ins: _binary(MUL, ins[0], ins[1], vec, dst)
    )


@lowering(aten.div.Tensor, aten.div.Scalar)
def lower_div(ctx: LowerCtx, node, args, kwargs):
    a, b = args[:2]
    if _scalar(b) is not None:
        if float(b) == 0.0:
            raise Unsupported("division by the constant 0")
        inv = 1.0 / float(b)
        return elementwise(
            ctx, node, [a], lambda vec, dst, ins: _binary(MUL, ins[0], inv, vec, dst)
        )

    def body(vec: Vec, dst: SramTile, ins: list) -> None:
        x, y = ins
        vec.unary(VUnaryFunct.RECIP, dst, y)
        _binary(MUL, x, dst, vec, dst) if isinstance(x, SramTile) else vec.imm(MUL, dst, dst, x)

    if _scalar(a) is not None:
        return elementwise(ctx, node, [b], lambda vec, dst, ins: body(vec, dst, [float(a), ins[0]]))
    return elementwise(ctx, node, [a, b], body)


@lowering(aten.maximum.default, aten.minimum.default)
def lower_max_min(ctx: LowerCtx, node, args, kwargs):
    funct = MAX if node.target == aten.maximum.default else MIN
    return elementwise(
        ctx, node, list(args[:2]), lambda vec, dst, ins: _binary(funct, ins[0], ins[1], vec, dst)
    )


def _unary(funct: VUnaryFunct):
    return lambda vec, dst, ins: vec.unary(funct, dst, ins[0])


UNARY_BODIES: dict[object, Body] = {
    aten.tanh.default: _unary(VUnaryFunct.TANH),
    aten.exp.default: _unary(VUnaryFunct.EXP),
    aten.rsqrt.default: _unary(VUnaryFunct.RSQRT),
    aten.reciprocal.default: _unary(VUnaryFunct.RECIP),
    aten.neg.default: lambda vec, dst, ins: vec.imm(MUL, dst, ins[0], -1.0),
    aten.relu.default: lambda vec, dst, ins: vec.imm(MAX, dst, ins[0], 0.0),
    # |x| = max(x, -x); the max rule gives +0 for -0.
    aten.abs.default: lambda vec, dst, ins: vec.bin(
        MAX, dst, ins[0], vec.imm(MUL, dst, ins[0], -1.0)
    ),
    # sqrt(x) = 1 / rsqrt(x): exact 0 at x = 0, unlike x * rsqrt(x).
    aten.sqrt.default: lambda vec, dst, ins: vec.unary(
        VUnaryFunct.RECIP, dst, vec.unary(VUnaryFunct.RSQRT, dst, ins[0])
    ),
}


def _sigmoid(vec: Vec, dst: SramTile, x: SramTile) -> SramTile:
    """1 / (1 + exp(-x))."""
    vec.imm(MUL, dst, x, -1.0)
    vec.unary(VUnaryFunct.EXP, dst, dst)
    vec.imm(ADD, dst, dst, 1.0)
    return vec.unary(VUnaryFunct.RECIP, dst, dst)


UNARY_BODIES[aten.sigmoid.default] = lambda vec, dst, ins: _sigmoid(vec, dst, ins[0])
UNARY_BODIES[aten.silu.default] = lambda vec, dst, ins: vec.bin(
    MUL, dst, ins[0], _sigmoid(vec, dst, ins[0])
)


@lowering(*UNARY_BODIES)
def lower_unary(ctx: LowerCtx, node, args, kwargs):
    return elementwise(ctx, node, [args[0]], UNARY_BODIES[node.target])


@lowering(aten.pow.Tensor_Scalar)
def lower_pow(ctx: LowerCtx, node, args, kwargs):
    x, exponent = args
    e = _scalar(exponent)
    if e is None:
        raise Unsupported("non-numeric exponent")

    def body(vec: Vec, dst: SramTile, ins: list) -> None:
        (a,) = ins
        if e == 1:
            vec.unary(VUnaryFunct.COPY, dst, a)
        elif e == 2:
            vec.bin(MUL, dst, a, a)
        elif e == 3:
            vec.bin(MUL, dst, a, a)
            vec.bin(MUL, dst, dst, a)
        elif e == -1:
            vec.unary(VUnaryFunct.RECIP, dst, a)
        elif e == -0.5:
            vec.unary(VUnaryFunct.RSQRT, dst, a)
        elif e == 0.5:
            vec.unary(VUnaryFunct.RECIP, dst, vec.unary(VUnaryFunct.RSQRT, dst, a))
        else:
            raise Unsupported(f"pow with exponent {e}")

    if e not in (1, 2, 3, -1, -0.5, 0.5):
        raise Unsupported(f"pow with exponent {e}")
    return elementwise(ctx, node, [x], body)


GELU_C = math.sqrt(2.0 / math.pi)
SQRT1_2 = math.sqrt(0.5)  # PyTorch's M_SQRT1_2 (0x3f3504f3 in fp32)


@lowering(aten.gelu.default)
def lower_gelu(ctx: LowerCtx, node, args, kwargs):
    approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"gelu approximate={approximate!r}")

    def body_tanh(vec: Vec, dst: SramTile, ins: list) -> None:
        (x,) = ins
        t = vec.alloc()
        # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
        vec.bin(MUL, t, x, x)
        vec.bin(MUL, t, t, x)
        vec.imm(MUL, t, t, 0.044715)
        vec.bin(ADD, t, t, x)
        vec.imm(MUL, t, t, GELU_C)
        vec.unary(VUnaryFunct.TANH, t, t)
        vec.imm(ADD, t, t, 1.0)
        vec.imm(MUL, dst, x, 0.5)
        vec.bin(MUL, dst, dst, t)

    def body_erf(vec: Vec, dst: SramTile, ins: list) -> None:
        (x,) = ins
        t = vec.alloc()
        # (x * 0.5) * (1 + erf(x * sqrt(1/2))), PyTorch's own order of operations
        vec.imm(MUL, t, x, SQRT1_2)
        vec.unary(VUnaryFunct.ERF, t, t)
        vec.imm(ADD, t, t, 1.0)
        vec.imm(MUL, dst, x, 0.5)
        vec.bin(MUL, dst, dst, t)

    body = body_tanh if approximate == "tanh" else body_erf
    return elementwise(ctx, node, [args[0]], body, temps=1)
