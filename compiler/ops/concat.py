"""aten.cat: a concatenation is each input placed at its offset along the cat dim of a
fresh contiguous output, by DMA, or by no instruction at all.

Input i owns the slice [start_i, start_i + n_i) of the cat dim: a strided view of the
output buffer. It gets there in one of two ways:

- Redirected: the input is a device op's own buffer that only this cat reads. Its
  producer's DMA instructions, already in the stream, are pointed at the output slice
  instead (the rotate-half's negated half, the rotated part of a partial rotary
  embedding). The producer then writes the output directly and nothing is copied.
- Copied: DMA_LD into ACC and DMA_ST into the slice, in row tiles
  (compiler/ops/views.py: copy_into). The input may be any view (a slice of a
  projection along any dim, a permute): its strides become the load's DRAM strides.

Either way the values move unchanged: ACC holds fp32, a bf16 load widens exactly and
the bf16 store of a widened bf16 value rounds back to the same bits. Each cat is a
fixed instruction sequence, so the ISA model and the RTL agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import fx

from compiler.context import LowerCtx, dma_fields, tensor_meta
from compiler.ir import Buffer, BufferKind, DramRef, PendingInsn, StreamItem, TensorRef, VDType
from compiler.ops.views import copy_into, copy_tiles, is_view
from compiler.registry import Unsupported, lowering
from compiler.tiles import DramTile, SramTile
from contract.isa import FORMATS, Opcode

aten = torch.ops.aten

# The DMA instructions whose only DRAM operand is (dram, dram_rs, dram_cs, rows, cols):
# the ones a redirect can rewrite.
DMA_MNEMONICS = {"dma_ld": Opcode.DMA_LD, "dma_st": Opcode.DMA_ST}


def _field_limit(opcode: Opcode, name: str) -> int:
    """One past the largest value the field encodes."""
    (field,) = [f for f in FORMATS[opcode].fields if f.name == name]
    return 1 << field.bits


@dataclass(frozen=True)
class CatPart:
    """One non-empty input and where it goes: the view `dst` of the output."""

    ref: TensorRef
    arg_node: object  # the fx.Node the input came from (or a constant)
    dst: TensorRef


def slice_of(out: TensorRef, dim: int, start: int, length: int) -> TensorRef:
    """out[..., start:start + length, ...] along dim, as a view of out's buffer."""
    shape = out.shape[:dim] + (length,) + out.shape[dim + 1 :]
    offset = out.offset + start * out.strides[dim]
    return TensorRef(out.buffer, out.dtype, shape, out.strides, offset)


def cat_parts(refs: list[TensorRef], arg_nodes: list, out: TensorRef, dim: int) -> list[CatPart]:
    """The non-empty inputs with their output slices; Unsupported unless the shapes
    concatenate to out's along dim."""
    parts, start = [], 0
    for ref, arg_node in zip(refs, arg_nodes, strict=True):
        # torch.cat skips empty inputs, 1-d ones of shape (0,) whatever their rank.
        if ref.numel == 0:
            continue
        other_dims = [d for i, d in enumerate(ref.shape) if i != dim]
        want = [d for i, d in enumerate(out.shape) if i != dim]
        if len(ref.shape) != len(out.shape) or other_dims != want:
            raise Unsupported(f"cat input {ref.shape} does not fit output {out.shape} at dim {dim}")
        length = ref.shape[dim]
        parts.append(CatPart(ref, arg_node, slice_of(out, dim, start, length)))
        start += length
    if start != out.shape[dim]:
        raise Unsupported(f"cat inputs give {start} along dim {dim}, the output {out.shape[dim]}")
    return parts


def coalesced(src: TensorRef, dst: TensorRef) -> tuple[TensorRef, TensorRef]:
    """src and dst (same shape) with adjacent dims merged wherever both views step over
    the pair as one dim: the same elements in fewer, longer DMA rows (a slice along dim
    1 of [b, n, d] is b rows of n * d elements, not b tiles of n rows)."""
    dims = [(n, s, t) for n, s, t in zip(src.shape, src.strides, dst.strides, strict=True) if n > 1]
    merged: list[tuple[int, int, int]] = []
    for n, s, t in dims or [(1, 1, 1)]:
        if merged and merged[-1][1] == s * n and merged[-1][2] == t * n:
            merged[-1] = (merged[-1][0] * n, s, t)
        else:
            merged.append((n, s, t))
    shape = tuple(n for n, _, _ in merged)
    return (
        TensorRef(src.buffer, src.dtype, shape, tuple(s for _, s, _ in merged), src.offset),
        TensorRef(dst.buffer, dst.dtype, shape, tuple(t for _, _, t in merged), dst.offset),
    )


# ---------------------------------------------------------------- redirects
@dataclass(frozen=True)
class Redirect:
    """The producer's DMA instructions pointed at the output slice: each becomes one or
    more instructions (argument sets) in its place. Applied once the cat cannot fail any
    more, since a failed lowering rolls back only its own stream items."""

    rewrites: dict[int, list[dict]]  # id(PendingInsn in the stream) -> replacement fields

    def apply(self, stream: list) -> None:
        if not self.rewrites:
            return
        rebuilt = []
        for item in stream:
            for args in self.rewrites.get(id(item), [None]):
                rebuilt.append(
                    item if args is None else PendingInsn(item.mnemonic, args, item.node)
                )
        stream[:] = rebuilt


def remap_tile(
    e0: int, rows: int, cols: int, rs: int, cs: int, block: int, out_block: int
) -> tuple[int, int, int] | None:
    """A DMA tile of the input buffer (first element e0, strides rs, cs) as a tile of
    the output, or None where no single tile is.

    The input is contiguous, and so is the output, along the cat dim and the dims after
    it: input element e sits at output element (e // block) * out_block + e % block
    (block, out_block: elements from the cat dim on, in the input and the output). The
    map is affine on a tile when the whole tile is in one block, or when each row (or
    each column) is in one block and rows (columns) are whole blocks apart."""

    def to_out(e: int) -> int:
        return (e // block) * out_block + e % block

    if rows == 0 or cols == 0:  # empty: reads and writes nothing
        return to_out(e0), rs, cs
    last = e0 + (rows - 1) * rs + (cols - 1) * cs
    if e0 // block == last // block:
        return to_out(e0), rs, cs
    within = e0 % block
    if within + (cols - 1) * cs < block and rs % block == 0:
        return to_out(e0), rs // block * out_block, cs
    if within + (rows - 1) * rs < block and cs % block == 0:
        return to_out(e0), rs, cs // block * out_block
    return None


# A DMA tile whose rows fall into several blocks is split into one instruction per
# block, up to this many; beyond that the cat copies the input instead.
MAX_PIECES = 16


def remap_rows(
    e0: int, rows: int, cols: int, rs: int, cs: int, block: int, out_block: int
) -> list[tuple[int, int, int, int, int]] | None:
    """The tile as pieces (first row, rows, output e0, rs, cs) of the output: one when
    remap_tile maps it whole, else one per run of rows in the same block (a row tile
    of [b, n, d] stored whole crosses from batch to batch when cat splits n)."""
    tile = remap_tile(e0, rows, cols, rs, cs, block, out_block)
    if tile is not None:
        return [(0, rows, *tile)]
    starts = [e0 + r * rs for r in range(rows)]
    if any(start % block + (cols - 1) * cs >= block for start in starts):
        return None  # a row runs across blocks
    runs: list[list[int]] = []
    for r, start in enumerate(starts):
        if runs and starts[runs[-1][0]] // block == start // block:
            runs[-1].append(r)
        else:
            runs.append([r])
    if len(runs) > MAX_PIECES:
        return None
    pieces = []
    for run in runs:
        out_e0, out_rs, out_cs = remap_tile(
            starts[run[0]], len(run), cols, rs, cs, block, out_block
        )
        pieces.append((run[0], len(run), out_e0, out_rs, out_cs))
    return pieces


def redirectable(ctx: LowerCtx, cat_node: fx.Node, part: CatPart, uses: int) -> bool:
    """Whether nothing but this cat can see the input's buffer, so its producer may
    write the output slice instead: the input node is a device op (not a view) that only
    this cat reads, once, whose value no checkpoint reads, and the input is the whole
    buffer, contiguous, of the output's dtype."""
    ref, arg_node = part.ref, part.arg_node
    if not isinstance(arg_node, fx.Node) or arg_node.op != "call_function":
        return False
    if is_view(arg_node.target) or list(arg_node.users) != [cat_node] or uses != 1:
        return False
    return (
        arg_node.name not in ctx.checkpointed
        and ref.buffer.kind == BufferKind.ACTIVATION
        and ref.buffer.nbytes == max(ref.numel * ref.dtype.itemsize, 4)
        and ref.offset == 0
        and ref.is_contiguous()
        and ref.dtype == part.dst.dtype
    )


def items_touching(stream: list[StreamItem], buffers: set[Buffer]) -> dict[Buffer, list]:
    """The stream items that name each of buffers, in one pass over the stream."""
    found: dict[Buffer, list] = {b: [] for b in buffers}
    if buffers:
        for item in stream:
            for b in set(item.buffers()) & buffers:
                found[b].append(item)
    return found


def plan_redirect(part: CatPart, out: TensorRef, dim: int, items: list) -> Redirect | None:
    """The producer's DMA instructions (items: every stream item naming the input's
    buffer) pointed at part.dst, or None unless each of them is a DMA_LD or DMA_ST of
    the producer itself that maps onto the output slice."""
    ref, dst = part.ref, part.dst
    block, out_block = math.prod(ref.shape[dim:]), math.prod(out.shape[dim:])
    rewrites: dict[int, list[dict]] = {}
    for item in items:
        if not isinstance(item, PendingInsn) or item.node != part.arg_node.name:
            return None
        opcode = DMA_MNEMONICS.get(item.mnemonic)
        fields = [
            k for k, v in item.args.items() if isinstance(v, DramRef) and v.buffer is ref.buffer
        ]
        if opcode is None or fields != ["dram"]:
            return None
        a = item.args
        e0, rem = divmod(a["dram"].byte_offset, ref.dtype.itemsize)
        pieces = remap_rows(e0, a["rows"], a["cols"], a["dram_rs"], a["dram_cs"], block, out_block)
        if rem or pieces is None:
            return None
        replacements = []
        for row0, rows, out_e0, rs, cs in pieces:
            if rs >= _field_limit(opcode, "dram_rs") or cs >= _field_limit(opcode, "dram_cs"):
                return None
            # The same DMA for rows [row0, row0 + rows) of its SRAM tile, at the output.
            sram = SramTile(a["space"], a["sram"] + row0 * a["sram_stride"], a["sram_stride"])
            tile = DramTile(dst, out_e0, rows, a["cols"], rs, cs)
            replacements.append(dma_fields(tile, sram))
        rewrites[id(item)] = replacements
    return Redirect(rewrites) if rewrites else None


# ---------------------------------------------------------------- the lowering
@lowering(aten.cat.default)
def lower_cat(ctx: LowerCtx, node, args, kwargs):
    refs = args[0] if args else kwargs["tensors"]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    arg_nodes = node.args[0] if node.args else node.kwargs["tensors"]
    out_meta = tensor_meta(node)
    if not out_meta.dtype.is_floating_point:
        raise Unsupported(f"cat of {out_meta.dtype} tensors (the DMA moves fp32 and bf16)")
    if not all(isinstance(r, TensorRef) for r in refs):
        raise Unsupported("cat of a non-tensor")
    for r in refs:
        if r.dtype not in (VDType.F32, VDType.BF16):
            raise Unsupported(f"cat of a {r.dtype.value} tensor (the DMA moves fp32 and bf16)")
    out_shape = tuple(out_meta.shape)
    dim = dim % len(out_shape)
    # bf16 only when every input is: the result is then exactly representable.
    nonempty = [r for r in refs if r.numel]
    all_bf16 = nonempty and all(r.dtype == VDType.BF16 for r in nonempty)
    out = ctx.new_tensor(out_shape, VDType.BF16 if all_bf16 else VDType.F32)
    return concat(ctx, node, cat_parts(list(refs), list(arg_nodes), out, dim), out, dim)


def concat(ctx: LowerCtx, node, parts: list[CatPart], out: TensorRef, dim: int) -> TensorRef:
    """Emit the copies of the parts into out; redirect the producers that can write out
    directly (node is the cat's fx node, None to copy everything)."""
    arg_nodes = [p.arg_node for p in parts]
    candidates = [
        p
        for p in parts
        if node is not None and redirectable(ctx, node, p, sum(a is p.arg_node for a in arg_nodes))
    ]
    touching = items_touching(ctx.stream, {p.ref.buffer for p in candidates})
    rewrites: dict[int, list[dict]] = {}
    for part in parts:
        redirect = None
        if any(part is c for c in candidates):
            redirect = plan_redirect(part, out, dim, touching[part.ref.buffer])
        if redirect is None:
            src, dst = coalesced(part.ref, part.dst)
            if len(copy_tiles(ctx, src, dst)) >= len(copy_tiles(ctx, part.ref, part.dst)):
                # Merged rows past copy_cols would take more tiles: keep the view's dims.
                src, dst = part.ref, part.dst
            copy_into(ctx, src, dst)
        else:
            rewrites.update(redirect.rewrites)
    # Last: nothing after this raises Unsupported (the rollback would not undo it).
    Redirect(rewrites).apply(ctx.stream)
    return out
