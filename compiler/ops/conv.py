"""aten.convolution (1-D and 2-D, groups 1, not transposed) on the matrix unit, by im2col
in the DMA's addressing.

The convolution is computed transposed, in the output's own layout:

    out[b, o, oh, ow] = bias[o] + sum_k W[o, k] * X[k, (oh, ow)]

with k = (c, i, j) in that order (the weight's own row-major order, so W is the weight
viewed [O, C * kh * kw]) and X[(c, i, j), (oh, ow)] = x[b, c, oh * sh + i * dh,
ow * sw + j * dw] the im2col matrix of image b. A = W (bf16 in SPAD), B = X (bf16 in
SPAD), C in ACC is [O, patches] -- rows of the NCHW output, stored with unit column
stride.

X is never materialised in DRAM: a tile of it is written into SPAD by DMA_LDs of the
input itself, one per (c, i, output row oh): its rows are the j of one kernel row (DRAM
row stride dw * x's W stride, SPAD rows k, which are line aligned whatever k is), its
columns the output columns ow (DRAM column stride sw * x's W stride). A ViT patch
embedding (stride = kernel, no padding) is C * p such loads per row of patches. Each
output row of a tile starts at a line-aligned SPAD column (rows are Wo padded to whole
lines apart); the padding columns are computed and never stored.

Padding: the input is first copied into a zero-filled padded tensor (DMA of a one-element
zero constant at stride 0, then the image into its interior), so every load is whole.

Numerics are the matrix unit's (docs/isa.md): each output is sum_k in k order, chunks of
K accumulated in place (the same bits as one instruction), and then the bias is added
with one fp32 VBIN (the array's bias initialises along n, and n here is the patch), a
fixed sequence for the ISA model and the RTL. Against PyTorch fp32 this is the contract
of a linear layer: bf16 operands, fp32 accumulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType, contiguous_strides
from compiler.ops.concat import _field_limit
from compiler.ops.vector import Vec
from compiler.ops.views import copy_contiguous, copy_into
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, SramTile
from contract.isa import BMode, Opcode, VBinFunct

aten = torch.ops.aten


def _as_2d(ref: TensorRef) -> TensorRef:
    """[N, C, L] as [N, C, 1, L] (1-D convolution as 2-D with one row)."""
    if len(ref.shape) == 4:
        return ref
    n, c, length = ref.shape
    sn, sc, sl = ref.strides
    return TensorRef(
        ref.buffer, ref.dtype, (n, c, 1, length), (sn, sc, sl * length, sl), ref.offset
    )


def merged_stride(dims: list[tuple[int, int]]) -> int | None:
    """The one stride that walks dims [(size, stride), ...] (outer to inner) as a single
    flat dim, or None where there is none. Dims of size 1 do not count."""
    dims = [(n, s) for n, s in dims if n != 1]
    if not dims:
        return 1
    for (_, outer), (n, inner) in zip(dims, dims[1:], strict=False):
        if outer != inner * n:
            return None
    return dims[-1][1]


def _check_dma(rs: int, cs: int, what: str) -> None:
    if rs >= _field_limit(Opcode.DMA_LD, "dram_rs") or cs >= _field_limit(Opcode.DMA_LD, "dram_cs"):
        raise Unsupported(f"{what}: DRAM strides ({rs}, {cs}) exceed the DMA's fields")


def _padded_copy(ctx: LowerCtx, x: TensorRef, ph: int, pw: int) -> TensorRef:
    """x [B, C, H, W] copied into the interior of a zero tensor [B, C, H + 2ph, W + 2pw]."""
    b, c, h, w = x.shape
    shape = (b, c, h + 2 * ph, w + 2 * pw)
    xp = ctx.new_tensor(shape, x.dtype)
    zero = ctx.new_constant(torch.zeros(1), f"{ctx.node_name}_zero")
    rows_total, cols = b * c * shape[2], shape[3]
    tile_cols = min(cols, ctx.limits.copy_cols)
    tile_rows = max(1, min(rows_total, ctx.acc.capacity // ctx.acc.pad(tile_cols)))
    ctx.acc.top = 0
    zeros = ctx.acc.alloc(tile_rows, tile_cols)  # [tile_rows, tile_cols] of +0.0
    ctx.load(DramTile(zero, 0, tile_rows, tile_cols, 0, 0), zeros)
    for r0 in range(0, rows_total, tile_rows):
        nr = min(tile_rows, rows_total - r0)
        for c0 in range(0, cols, tile_cols):
            nc = min(tile_cols, cols - c0)
            ctx.store(zeros, DramTile(xp, r0 * cols + c0, nr, nc, cols if nr > 1 else 0, 1))
    st = xp.strides
    interior = TensorRef(xp.buffer, xp.dtype, x.shape, st, ph * st[2] + pw * st[3])
    copy_into(ctx, x, interior)
    return xp


def _weight_matrix(ctx: LowerCtx, w: TensorRef) -> tuple[TensorRef, int, int]:
    """The weight [O, C, kh, kw] with its K = C * kh * kw dims walked by one stride:
    (view, row stride, k stride); a copy where the view has no such stride."""
    sk = merged_stride(list(zip(w.shape[1:], w.strides[1:], strict=True)))
    if sk is None:
        w = copy_contiguous(ctx, w)
        sk = 1
    return w, w.strides[0], sk


# No bf16_args: the weight stays fp32 in DRAM (DMA_LD into SPAD rounds it as the matrix
# unit takes it), because the constant's dtype is chosen before lowering, and a
# convolution that falls back to the host must read the fp32 weight PyTorch has.
@lowering(aten.convolution.default)
def lower_convolution(ctx: LowerCtx, node, args, kwargs):
    x, w, bias, stride, padding, dilation, transposed, _output_padding, groups = args[:9]
    if not isinstance(x, TensorRef) or not isinstance(w, TensorRef):
        raise Unsupported("convolution of a non-tensor")
    if transposed:
        raise Unsupported("transposed convolution")
    if groups != 1:
        raise Unsupported(f"grouped convolution (groups={groups})")
    if len(x.shape) not in (3, 4) or len(w.shape) != len(x.shape):
        raise Unsupported(f"convolution of rank {len(x.shape)} (only 1-D and 2-D)")
    if x.dtype not in (VDType.F32, VDType.BF16) or w.dtype not in (VDType.F32, VDType.BF16):
        raise Unsupported("convolution of a non-float tensor")
    if bias is not None and (not isinstance(bias, TensorRef) or bias.dtype != VDType.F32):
        raise Unsupported("convolution bias is not an fp32 tensor")
    out_shape = tuple(tensor_meta(node).shape)
    one_d = len(x.shape) == 3

    def pair(v, height: int) -> tuple[int, int]:
        """(height, width) values; a 1-D convolution's height is one row."""
        v = list(v)
        return (height, v[0]) if one_d else (v[0], v[1])

    (sh, sw), (ph, pw), (dh, dw) = pair(stride, 1), pair(padding, 0), pair(dilation, 1)
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise Unsupported(f"convolution stride {stride}, padding {padding}, dilation {dilation}")
    x4, w4 = _as_2d(x), _as_2d(w)
    nb, c_in, _, _ = x4.shape
    c_out, c_w, kh, kw = w4.shape
    if c_w != c_in:
        raise Unsupported(f"weight {w.shape} does not match input {x.shape}")
    if ph or pw:
        x4 = _padded_copy(ctx, x4, ph, pw)  # [B, C, H + 2ph, W + 2pw]
    _, _, h, wd = x4.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise Unsupported("convolution with an empty output")
    out = ctx.new_tensor(out_shape)  # [B, O, Ho, Wo] (or [B, O, Wo])
    out4 = TensorRef(
        out.buffer, out.dtype, (nb, c_out, ho, wo), contiguous_strides((nb, c_out, ho, wo))
    )
    if math.prod(out_shape) != math.prod(out4.shape):
        raise Unsupported(f"convolution output {out_shape} is not [B, O, {ho}, {wo}]")
    w4, w_rs, w_ks = _weight_matrix(ctx, w4)
    geo = Geometry(x4, (kh, kw), (sh, sw), (dh, dw))
    conv_matmul(ctx, geo, w4, (w_rs, w_ks), bias, out4)
    return out


@dataclass(frozen=True)
class Geometry:
    """One convolution's im2col: x [B, C, H, W] (padded), kernel, stride, dilation."""

    x: TensorRef
    kernel: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (sh, sw)
    dilation: tuple[int, int]  # (dh, dw)

    def load_strides(self) -> tuple[int, int]:
        """DRAM (row, column) strides of a B-tile load: rows j, columns ow."""
        sxw = self.x.strides[3]
        return self.dilation[1] * sxw, self.stride[1] * sxw


@dataclass(frozen=True)
class OutTile:
    """Output rows [oh0, oh0 + rows), columns [ow0, ow0 + cols) of one image, each row
    `pitch` columns (whole lines) after the previous in SRAM."""

    oh0: int
    rows: int
    ow0: int
    cols: int
    pitch: int

    @property
    def width(self) -> int:
        """Columns of the C (and B) tile, padding between rows included."""
        return (self.rows - 1) * self.pitch + self.cols


def conv_matmul(
    ctx: LowerCtx,
    geo: Geometry,
    w: TensorRef,
    w_strides: tuple[int, int],
    bias: TensorRef | None,
    out: TensorRef,
) -> None:
    """out [B, O, Ho, Wo] = W [O, K] @ im2col(x)[K, Ho * Wo] (+ bias[O]) per image, for
    x [B, C, H, W] already padded; W's (row, k) strides are w_strides."""
    nb, c_in, _, _ = geo.x.shape
    c_out, _, kh, kw = w.shape
    _, _, ho, wo = out.shape
    w_rs, w_ks = w_strides
    k_total = c_in * kh * kw
    line = ctx.hw.line_elems
    pad = ctx.spad.pad
    _check_dma(*geo.load_strides(), "im2col load")
    _check_dma(w_rs, w_ks, "weight load")
    _check_dma(out.strides[1], 1, "convolution store")

    tm = min(c_out, ctx.limits.matmul_rows)
    tk = min(k_total, ctx.limits.matmul_depth)
    n_k = math.ceil(k_total / tk)
    # Largest tile width (whole lines) for which SPAD holds A [tm, tk] and B [tk, tn],
    # and ACC holds C [tm, tn] and the bias column [tm, 1].
    tn_spad = (ctx.spad.capacity - tm * pad(tk)) // tk
    tn_acc = (ctx.acc.capacity - tm * line) // tm
    tn_max = (min(tn_spad, tn_acc) // line) * line
    if tn_max <= 0:
        raise Unsupported(f"convolution tiles do not fit on chip (O={c_out}, K={k_total})")
    # Output rows of one tile sit `pitch` columns apart (whole lines); a row wider than
    # a tile is cut into chunks of tn_max.
    pitch = min(pad(wo), tn_max)
    rows_per_tile = max(1, tn_max // pitch)
    tiles = [
        OutTile(oh0, min(rows_per_tile, ho - oh0), ow0, min(pitch, wo - ow0), pitch)
        for oh0 in range(0, ho, rows_per_tile)
        for ow0 in range(0, wo, pitch)
    ]

    for b in range(nb):
        for tile in tiles:
            for m0 in range(0, c_out, tm):
                mm = min(tm, c_out - m0)
                ctx.spad.top = 0
                ctx.acc.top = 0
                # A: W[m0:m0+mm, k-chunk] (bf16), tm rows so that B stays where it was
                a_sram = ctx.spad.alloc(tm, tk)
                b_sram = ctx.spad.alloc(tk, tile.width)  # B: im2col[k-chunk, tile], bf16
                c_sram = ctx.acc.alloc(mm, tile.width)  # C [mm, tile.width], fp32
                bias_sram = ctx.acc.alloc(mm, 1) if bias is not None else None  # [mm, 1]
                for ki, k0 in enumerate(range(0, k_total, tk)):
                    kk = min(tk, k_total - k0)
                    if m0 == 0 or n_k > 1:  # B is reused across m tiles when K fits
                        _load_im2col(ctx, geo, b, k0, kk, tile, b_sram)
                    ctx.load(DramTile(w, m0 * w_rs + k0 * w_ks, mm, kk, w_rs, w_ks), a_sram)
                    ctx.emit(
                        "matmul",
                        **c_sram.fields("dst"),
                        **a_sram.fields("a"),
                        **b_sram.fields("b"),
                        bias=0,
                        m=mm,
                        n=tile.width,
                        k=kk,
                        acc=int(ki > 0),
                        trans_b=0,
                        use_bias=0,
                    )
                if bias_sram is not None:
                    bs = bias.strides[-1] if bias.strides else 1
                    ctx.load(DramTile(bias, m0 * bs, mm, 1, bs, 1), bias_sram)
                    Vec(ctx, mm, tile.width).bin(
                        VBinFunct.ADD, c_sram, c_sram, bias_sram, BMode.COL
                    )
                _store_tile(ctx, c_sram, out, b, m0, mm, tile)


def _load_im2col(
    ctx: LowerCtx, geo: Geometry, b: int, k0: int, kk: int, tile: OutTile, b_sram: SramTile
) -> None:
    """B[k - k0, (oh - oh0) * pitch + ow - ow0] = x[b, c, oh * sh + i * dh, ow * sw +
    j * dw] for k = (c, i, j) in [k0, k0 + kk): one DMA per (c, i) and output row."""
    kh, kw = geo.kernel
    sh, dh = geo.stride[0], geo.dilation[0]
    x_rs, x_cs = geo.load_strides()
    sxb, sxc, sxh, _ = geo.x.strides
    for g in range(k0 // kw, (k0 + kk - 1) // kw + 1):  # g = c * kh + i
        c, i = divmod(g, kh)
        j0, j1 = max(k0 - g * kw, 0), min(k0 + kk - g * kw, kw)
        row0 = b_sram.addr + (g * kw + j0 - k0) * b_sram.stride  # SRAM row of k
        for r in range(tile.rows):
            ih = (tile.oh0 + r) * sh + i * dh
            offset = b * sxb + c * sxc + ih * sxh + tile.ow0 * x_cs + j0 * x_rs
            dst = SramTile(b_sram.space, row0 + r * tile.pitch, b_sram.stride)
            ctx.load(DramTile(geo.x, offset, j1 - j0, tile.cols, x_rs, x_cs), dst)


def _store_tile(
    ctx: LowerCtx, c_sram: SramTile, out: TensorRef, b: int, m0: int, mm: int, tile: OutTile
) -> None:
    """C [mm, tile] into out[b, m0:m0+mm, rows, cols]: one DMA per output row, or one
    for the tile when its rows are contiguous in both."""
    _, _, _, wo = out.shape
    so_b, so_o = out.strides[:2]
    rs = so_o if mm > 1 else 0
    base = b * so_b + m0 * so_o + tile.oh0 * wo + tile.ow0
    if tile.cols == wo == tile.pitch:
        ctx.store(c_sram, DramTile(out, base, mm, tile.rows * wo, rs, 1))
        return
    for r in range(tile.rows):
        src = SramTile(c_sram.space, c_sram.addr + r * tile.pitch, c_sram.stride)
        ctx.store(src, DramTile(out, base + r * wo, mm, tile.cols, rs, 1))
