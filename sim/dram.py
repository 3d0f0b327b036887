"""The DRAM image shared by every backend: placing the program, binding tensors."""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided

from compiler import numerics as nx
from compiler.ir import VDType

_NP = {"float32": np.float32, "bfloat16": np.uint16, "int32": np.int32, "bool": np.uint8}


def new_image(program, alloc=None) -> np.ndarray:
    """DRAM holding the code at 0 and every constant at its address. Sized to the
    program's footprint (np.zeros pages in lazily); alloc(nbytes) may supply the zeroed
    array (a backend's shared mapping)."""
    size = max(program.meta["memory"]["total"], len(program.code), 64)
    dram = (alloc or (lambda n: np.zeros(n, dtype=np.uint8)))(-(-size // 64) * 64)
    dram[: len(program.code)] = np.frombuffer(program.code, dtype=np.uint8)
    data = np.frombuffer(program.const_data, dtype=np.uint8)
    for c in program.meta["constants"]:
        dram[c["addr"] : c["addr"] + c["length"]] = data[c["offset"] : c["offset"] + c["length"]]
    return dram


def view(dram: np.ndarray, b: dict) -> np.ndarray:
    """The numpy view of a bound tensor (a binding dict of the program's meta)."""
    dtype = np.dtype(_NP[b["dtype"]])
    size = dtype.itemsize
    base = b["addr"] + b["offset"] * size
    flat = dram[base:].view(np.uint8)
    shape = tuple(b["shape"])
    strides = tuple(s * size for s in b["strides"])
    return as_strided(flat.view(dtype) if base % size == 0 else flat, shape, strides)


def read(dram: np.ndarray, b: dict) -> torch.Tensor:
    arr = np.array(view(dram, b))
    if b["dtype"] == "bfloat16":
        return torch.from_numpy(nx.bf16_bits_to_f32(arr).copy())
    if b["dtype"] == "int32":
        return torch.from_numpy(arr.astype(np.int64))
    if b["dtype"] == "bool":
        return torch.from_numpy(arr.astype(bool))
    return torch.from_numpy(arr)


def write(dram: np.ndarray, b: dict, value: torch.Tensor, what: str) -> None:
    shape = tuple(b["shape"])
    if tuple(value.shape) != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(value.shape)}")
    kind = VDType(b["dtype"])
    t = value.detach().cpu()
    if kind == VDType.I32:
        if t.is_floating_point():
            raise TypeError(f"{what}: expected an integer tensor, got {t.dtype}")
        if t.numel() and (t.min() < -(2**31) or t.max() >= 2**31):
            raise ValueError(f"{what}: values do not fit in int32")
        arr = t.to(torch.int32).numpy()
    elif kind == VDType.BOOL:
        arr = t.to(torch.bool).numpy().astype(np.uint8)
    elif kind == VDType.BF16:
        arr = nx.f32_to_bf16_bits(t.to(torch.float32).numpy())
    else:
        if not t.is_floating_point():
            raise TypeError(f"{what}: expected a floating-point tensor, got {t.dtype}")
        arr = t.to(torch.float32).numpy()
    view(dram, b)[...] = arr
