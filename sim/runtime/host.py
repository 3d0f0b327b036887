"""Host segments: the ops the compiler left to the CPU, run with PyTorch on the DRAM
image between device segments.

A host op's target and arguments come from the blob, so they are resolved only through
the allow-list of contract.hostops (the loader has checked them against it already;
this checks again so a Program built in memory gets the same answer) and the fixed
tables below: nothing here looks a name from the blob up on torch. Each op first runs on
the meta device (shapes and dtypes, no memory), so a call whose results would not fit
its output bindings, or that would take more arithmetic than its tensors justify
(flop_budget), is refused before PyTorch allocates or computes anything.
"""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode

from contract import hostops
from contract.blob import TENSOR_TYPES, binding_span
from sim.runtime import image


class HostOpError(RuntimeError):
    """A host op that cannot run as the blob states it (PyTorch refuses its arguments,
    or its results do not match its output bindings), named by index, target, node."""


def _overload(target: str) -> torch._ops.OpOverload:
    namespace, op, overload = target.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload)


# The overloads of the allow-list, resolved once from its own (fixed) names.
_OPS: dict[str, torch._ops.OpOverload] = {t: _overload(t) for t in hostops.HOST_OPS}
# Torch objects by the contract's own names (contract.hostops), never by a blob's string.
_DTYPES = {name: getattr(torch, name) for name in hostops.DTYPES}
_LAYOUTS = {name: getattr(torch, name) for name in hostops.LAYOUTS}
_MEMORY_FORMATS = {name: getattr(torch, name) for name in hostops.MEMORY_FORMATS}
# The floating element types are the DMA-loadable ones (contract.blob.TENSOR_TYPES).
_FLOATING = {name for name, t in TENSOR_TYPES.items() if t.isa is not None}

# The arithmetic a host op may ask for, as PyTorch's flop counter counts it on the meta
# device (matrix products, convolutions, attention: 2 per multiply-add): FLOPS_PER_ELEMENT
# per element its operands and results hold in DRAM, plus FLOPS_BASE. Elements held, not
# viewed: a zero-stride view of a 64-byte buffer holds 16 float32 elements however large
# its shape, so it cannot stand for the operands of a huge convolution. 4096 admits a
# matrix product with a contraction of 2048 at any shape (2*M*N*K flops, at least M*N
# elements) and a 3x3 convolution of 227 input channels per output element. The ops
# the counter does not count (elementwise, reductions, indexing, cat) cost about the
# elements they read and write, which the loader bounds (contract.blob.read_budget).
FLOPS_PER_ELEMENT = 4096
FLOPS_BASE = 1 << 30


def _held(b: dict) -> int:
    """The elements a binding holds in DRAM: its element count, at most its span."""
    lo, hi = binding_span(b)
    return min(math.prod(b["shape"]), (hi - lo) // TENSOR_TYPES[b["dtype"]].itemsize)


def flop_budget(op: dict) -> int:
    """The most flops a host op may ask for (FLOPS_PER_ELEMENT, FLOPS_BASE)."""
    held = sum(_held(b) for b in op["inputs"] + op["outputs"])
    return FLOPS_PER_ELEMENT * held + FLOPS_BASE


def _host_value(arg, tensors: list[torch.Tensor], device: torch.device):
    """A JSON argument (contract.hostops encoding) as the torch value it stands for."""
    if isinstance(arg, dict):
        (key, value), *_ = arg.items()
        if key == "tensor":
            return tensors[value]
        if key == "dtype":
            return _DTYPES[value]
        if key == "device":
            return device
        if key == "layout":
            return _LAYOUTS[value]
        return _MEMORY_FORMATS[value]
    if isinstance(arg, list):
        return [_host_value(a, tensors, device) for a in arg]
    return arg


def _call(fn, op: dict, tensors: list[torch.Tensor], device: torch.device) -> list:
    args = _host_value(op["args"], tensors, device)
    kwargs = {k: _host_value(v, tensors, device) for k, v in op["kwargs"].items()}
    with torch.device(device):  # factory ops (arange) without a device argument
        result = fn(*args, **kwargs)
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _fits(value, b: dict) -> str | None:
    """Why a result cannot be stored in output binding b, or None."""
    if not isinstance(value, torch.Tensor):
        return f"returns a {type(value).__name__}, not a tensor"
    if tuple(value.shape) != tuple(b["shape"]):
        return f"returns shape {tuple(value.shape)}; the output binding has {tuple(b['shape'])}"
    if (b["dtype"] in _FLOATING) != value.dtype.is_floating_point:
        return f"returns {value.dtype}; the output binding holds {b['dtype']}"
    return None


_TORCH_REFUSALS = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)
_TORCH_REFUSALS += (OverflowError, AssertionError)


def run_host_op(dram, op: dict, index: int = 0) -> None:
    what = f"host op {index} {op['target']} (node {op['node']})"
    try:
        hostops.check_call(
            op["target"], op["args"], op["kwargs"], len(op["inputs"]), len(op["outputs"])
        )
    except hostops.HostOpRefused as e:
        raise HostOpError(f"{what}: {e}") from None
    fn = _OPS[op["target"]]
    tensors = [image.read(dram, b) for b in op["inputs"]]
    meta_device, cpu = torch.device("meta"), torch.device("cpu")
    # PyTorch's errors for arguments it refuses are RuntimeError, ValueError, TypeError,
    # IndexError (an index out of range), OverflowError (a number its C++ type cannot
    # hold) or AssertionError (its Python decompositions and meta functions check with
    # assert); they are about the blob's op, so say which.
    try:
        with FlopCounterMode(display=False) as counter:
            shapes = _call(fn, op, [t.to(meta_device) for t in tensors], meta_device)
    except _TORCH_REFUSALS as e:
        raise HostOpError(f"{what}: PyTorch refuses its arguments: {e}"[:600]) from None
    flops, budget = counter.get_total_flops(), flop_budget(op)
    if flops > budget:
        raise HostOpError(
            f"{what}: asks for {flops:.3g} flops; its tensors hold"
            f" {(budget - FLOPS_BASE) // FLOPS_PER_ELEMENT} elements, which allow {budget:.3g}"
            f" ({FLOPS_PER_ELEMENT} per element + {FLOPS_BASE})"
        )
    if len(shapes) != len(op["outputs"]):
        raise HostOpError(f"{what}: returns {len(shapes)} tensors, {len(op['outputs'])} bound")
    for j, (value, b) in enumerate(zip(shapes, op["outputs"], strict=True)):
        why = _fits(value, b)
        if why is not None:
            raise HostOpError(f"{what}: output {j} {why}")
    try:
        results = _call(fn, op, tensors, cpu)
        for j, (value, b) in enumerate(zip(results, op["outputs"], strict=True)):
            image.write(dram, b, value, f"{what} output {j}")
    except image.ImageBoundsError:
        raise  # a loader bug, not the op's
    except _TORCH_REFUSALS as e:
        raise HostOpError(f"{what}: {e}"[:600]) from None
