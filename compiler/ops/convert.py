"""aten._to_copy: float <-> float dtype conversions on the device.

fp32 -> bf16 is DMA_ST of ACC as bf16, which rounds to nearest even on the bit pattern
with NaN -> 0x7fc0, exactly as PyTorch converts (docs/isa.md, "bf16"); bf16 -> fp32
widens exactly. A conversion that changes no value (to the dtype the values already
have) is an alias. An int32 tensor to bool (a padding mask from an integer
attention_mask) becomes a device mask (compiler/ops/select.py: int_to_mask). Anything
else (other integer conversions, float16, whose rounding the device does not have)
stays on the host.
"""

from __future__ import annotations

import torch

from compiler.context import LowerCtx, tensor_meta
from compiler.ir import TensorRef, VDType
from compiler.ops.select import int_to_mask
from compiler.ops.views import copy_into
from compiler.registry import Unsupported, lowering

aten = torch.ops.aten

# The torch dtypes whose values the device holds exactly: fp32, and bf16 (stored as
# fp32 or bf16 in DRAM, bf16-exact either way).
DEVICE_FLOATS = (torch.float32, torch.bfloat16)
# _to_copy's keywords that do not change values.
PLACEMENT_KWARGS = {"layout", "device", "pin_memory", "non_blocking", "memory_format"}


@lowering(aten._to_copy.default)
def lower_to_copy(ctx: LowerCtx, node, args, kwargs) -> TensorRef:
    src = args[0]
    if not isinstance(src, TensorRef):
        raise Unsupported("conversion of a non-tensor")
    unknown = set(kwargs) - PLACEMENT_KWARGS - {"dtype"}
    if unknown:
        raise Unsupported(f"_to_copy with {sorted(unknown)}")
    src_dtype = node.args[0].meta["val"].dtype
    dst_dtype = tensor_meta(node).dtype
    if dst_dtype == torch.bool and not (src_dtype.is_floating_point or src_dtype == torch.bool):
        return int_to_mask(ctx, node, src)  # an attention / padding mask from integers
    if src_dtype not in DEVICE_FLOATS or dst_dtype not in DEVICE_FLOATS:
        raise Unsupported(
            f"{src_dtype} -> {dst_dtype} (the device converts only between fp32 and bf16)"
        )
    if src.dtype not in (VDType.F32, VDType.BF16):
        raise Unsupported(f"conversion of a {src.dtype.value} tensor")
    # Values already exact in the target dtype: bf16 -> fp32 widens exactly, fp32 -> fp32
    # and bf16 -> bf16 copy; bf16 values held in bf16 storage need no rounding either.
    if dst_dtype == torch.float32 or src_dtype == torch.bfloat16 or src.dtype == VDType.BF16:
        return src
    # fp32 -> bf16: through ACC into bf16 storage, rounded by DMA_ST (RNE).
    return copy_contiguous_as(ctx, src, VDType.BF16)


def copy_contiguous_as(ctx: LowerCtx, src: TensorRef, dtype: VDType) -> TensorRef:
    """src copied into a fresh contiguous tensor stored as dtype (DMA in, DMA out)."""
    out = ctx.new_tensor(src.shape, dtype)
    if not src.shape:
        src = TensorRef(src.buffer, src.dtype, (1,), (1,), src.offset)
        copy_into(ctx, src, TensorRef(out.buffer, out.dtype, (1,), (1,), 0))
    else:
        copy_into(ctx, src, out)
    return out
