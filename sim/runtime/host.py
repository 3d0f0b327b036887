"""Host segments: the ops the compiler left to the CPU, run with PyTorch on the DRAM
image between device segments."""

from __future__ import annotations

import torch

from sim.runtime import image


def _resolve_target(name: str):
    ns, op, overload = name.split(".")
    return getattr(getattr(getattr(torch.ops, ns), op), overload)


def _host_value(arg, tensors: list[torch.Tensor]):
    if isinstance(arg, dict):
        if "tensor" in arg:
            return tensors[arg["tensor"]]
        if "dtype" in arg:
            return getattr(torch, arg["dtype"])
        if "device" in arg:
            return torch.device("cpu")
        if "memory_format" in arg:
            return getattr(torch, arg["memory_format"])
        if "layout" in arg:
            return getattr(torch, arg["layout"])
    if isinstance(arg, list):
        return [_host_value(a, tensors) for a in arg]
    return arg


def run_host_op(dram, op: dict) -> None:
    tensors = [image.read(dram, b) for b in op["inputs"]]
    args = _host_value(op["args"], tensors)
    kwargs = {k: _host_value(v, tensors) for k, v in op["kwargs"].items()}
    result = _resolve_target(op["target"])(*args, **kwargs)
    results = result if isinstance(result, (list, tuple)) else [result]
    for b, value in zip(op["outputs"], results, strict=True):
        image.write(dram, b, value, f"host op {op['target']} ({op['node']})")
