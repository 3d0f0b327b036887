"""The DRAM image shared by the host and every backend: the program placed in it, and
tensors bound to it (layouts from contract.blob)."""

from __future__ import annotations

import numpy as np
import torch

from contract.blob import binding_span, binding_view, decode_tensor, encode_tensor, image_bytes


def new_image(program, alloc=None) -> np.ndarray:
    """DRAM holding the code at 0 and every constant at its address. Sized to the
    program's footprint (np.zeros pages in lazily); alloc(nbytes) may supply the zeroed
    array (a backend's shared mapping)."""
    dram = (alloc or (lambda n: np.zeros(n, dtype=np.uint8)))(
        image_bytes(program.meta, program.code)
    )
    dram[: len(program.code)] = np.frombuffer(program.code, dtype=np.uint8)
    data = np.frombuffer(program.const_data, dtype=np.uint8)
    for c in program.meta["constants"]:
        dram[c["addr"] : c["addr"] + c["length"]] = data[c["offset"] : c["offset"] + c["length"]]
    return dram


class ImageBoundsError(RuntimeError):
    """A binding outside the DRAM image reached the runtime: a loader bug, never a blob's
    fault (contract.blob.validate refuses such a program)."""


def _inside(dram: np.ndarray, b: dict) -> None:
    """The loader (contract.blob.validate) keeps every binding inside the image; should
    one ever get past it, stop before numpy reads or writes memory that is not DRAM."""
    lo, hi = binding_span(b)
    if not 0 <= lo <= hi <= dram.size:
        raise ImageBoundsError(
            f"binding {b.get('name')!r} spans DRAM [{lo:#x}, {hi:#x}), outside the"
            f" {dram.size}-byte image: the loader should have refused this program"
        )


def read(dram: np.ndarray, b: dict) -> torch.Tensor:
    """A bound tensor's value, copied out of the image."""
    _inside(dram, b)
    return torch.from_numpy(np.array(decode_tensor(binding_view(dram, b), b["dtype"])))


def write(dram: np.ndarray, b: dict, value: torch.Tensor, what: str) -> None:
    _inside(dram, b)
    shape = tuple(b["shape"])
    if tuple(value.shape) != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {tuple(value.shape)}")
    t = value.detach().cpu()
    host = t.to(torch.float32) if t.dtype in (torch.bfloat16, torch.float16) else t
    binding_view(dram, b)[...] = encode_tensor(host.numpy(), b["dtype"], what)
