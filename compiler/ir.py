"""Intermediate representation between lowering and emission.

Tensors live in DRAM buffers; a TensorRef is a strided view of one (so view, permute,
transpose, slice, split and expand never copy: they become DMA strides). Lowerings
append PendingInsn (an instruction whose DRAM addresses are still symbolic),
HostOp (an op that runs on the CPU between device segments) and checkpoints to a
linear stream; the memory planner then places buffers and emission (compiler.emit)
resolves addresses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from contract.blob import TENSOR_TYPES, TensorType


class VDType(StrEnum):
    """Element type of a value in DRAM: a name of contract.blob.TENSOR_TYPES."""

    F32 = "float32"
    BF16 = "bfloat16"
    I32 = "int32"
    I64 = "int64"  # host-only (compiler.lower: int64 values no device op reads)
    BOOL = "bool"

    @property
    def layout(self) -> TensorType:
        return TENSOR_TYPES[self.value]

    @property
    def itemsize(self) -> int:
        return self.layout.itemsize

    @staticmethod
    def of(dtype: torch.dtype) -> VDType:
        if dtype.is_floating_point:
            if dtype not in (torch.float32, torch.bfloat16, torch.float16):
                raise TypeError(f"{dtype} tensors are not supported on the device")
            return VDType.F32
        if dtype == torch.bool:
            return VDType.BOOL
        # Integer tensors are stored as int32: indices and positions fit.
        return VDType.I32


class BufferKind(StrEnum):
    ACTIVATION = "activation"  # planned: placed by lifetime, reused
    CONSTANT = "constant"  # weights and folded constants, part of the blob
    INPUT = "input"
    OUTPUT = "output"
    STATE = "state"  # persistent between runs (e.g. a KV cache)


@dataclass(eq=False)
class Buffer:
    name: str
    nbytes: int
    kind: BufferKind
    data: bytes | None = None  # constants only
    addr: int | None = None  # set by the memory planner

    def __repr__(self) -> str:
        return f"Buffer({self.name}, {self.nbytes}B, {self.kind.value}, addr={self.addr})"


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


@dataclass(frozen=True)
class TensorRef:
    buffer: Buffer
    dtype: VDType
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    offset: int = 0  # in elements

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def byte_offset(self, elem_offset: int = 0) -> int:
        return (self.offset + elem_offset) * self.dtype.itemsize

    def is_contiguous(self) -> bool:
        return all(
            st == cs
            for d, st, cs in zip(
                self.shape, self.strides, contiguous_strides(self.shape), strict=True
            )
            if d != 1
        )

    def to_json(self) -> dict:
        return {
            "buffer": self.buffer.name,
            "dtype": self.dtype.value,
            "shape": list(self.shape),
            "strides": list(self.strides),
            "offset": self.offset,
        }


@dataclass(frozen=True)
class DramRef:
    """A symbolic DRAM byte address: buffer + byte offset."""

    buffer: Buffer
    byte_offset: int

    def resolve(self) -> int:
        assert self.buffer.addr is not None, f"{self.buffer} was not placed"
        return self.buffer.addr + self.byte_offset


@dataclass
class PendingInsn:
    mnemonic: str
    args: dict  # values: int | float | DramRef
    node: str = ""  # the graph node it came from (debug handle)

    def buffers(self) -> list[Buffer]:
        return [v.buffer for v in self.args.values() if isinstance(v, DramRef)]


@dataclass
class HostOp:
    """An op that the device cannot run: executed by PyTorch on the host."""

    target: str  # exact ATen overload, e.g. "aten.cumsum.default"
    args: list  # JSON-able, with {"tensor": i} placeholders for tensor inputs
    kwargs: dict
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    node: str = ""
    module: str = ""

    def buffers(self) -> list[Buffer]:
        return [t.buffer for t in self.inputs + self.outputs]


@dataclass
class Checkpoint:
    layer: int
    refs: list[TensorRef] = field(default_factory=list)  # kept alive up to here
    node: str = ""

    def buffers(self) -> list[Buffer]:
        return [t.buffer for t in self.refs]


StreamItem = PendingInsn | HostOp | Checkpoint
