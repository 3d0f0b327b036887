"""The program blob: its file format, the in-memory Program, how tensors are laid out in
DRAM, and the decoded listing. The compiler writes blobs with this module and every
backend, report and tool reads them with it.

Blob layout (little-endian):
    magic "LOOMPRG\\0" | u32 format version | u32 ISA version | 32 B hardware-config
    SHA-256 | u64 payload length | 32 B payload SHA-256 | payload
Payload: u32 section count, then per section a 16-byte name, u64 offset, u64 length,
then the section bytes. Sections: "meta" (JSON: hardware config, memory plan,
segments, host ops, input/output bindings, layer table, compile report), "code"
(instructions, loaded at DRAM address 0), "const" (constant bytes; meta["constants"]
places each at its DRAM address).

A binding (meta inputs, outputs, layer tensors, host-op operands) is a dict: name,
addr (the buffer's DRAM byte address), dtype (a TENSOR_TYPES name), shape, strides and
offset in elements.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from contract import numerics as nx
from contract.asm import format_insn
from contract.hw import HwConfig
from contract.isa import INSN_BYTES, ISA_VERSION, DType, IllegalInstruction, Insn, Opcode, decode

MAGIC = b"LOOMPRG\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sII32sQ32s")
# The entry-point group through which Program.__call__ finds the runtime (pyproject.toml):
# the contract never imports the code that runs programs (docs/architecture.md).
RUNTIME_ENTRY_POINTS = "loom.runtime"


class BlobError(ValueError):
    """A program blob that cannot be run here: corrupt, or of another version/config."""


# ---------------------------------------------------------------- tensors in DRAM
@dataclass(frozen=True)
class TensorType:
    """How a tensor's elements are held in DRAM."""

    name: str
    itemsize: int  # bytes per element
    storage: np.dtype  # the numpy dtype of the stored bits (bf16 as uint16 patterns)
    isa: DType | None  # the dtype a DMA instruction names for it; None: not loadable


TENSOR_TYPES: dict[str, TensorType] = {
    t.name: t
    for t in (
        TensorType("float32", DType.FP32.size, np.dtype(np.float32), DType.FP32),
        TensorType("bfloat16", DType.BF16.size, np.dtype(np.uint16), DType.BF16),
        TensorType("int32", 4, np.dtype(np.int32), None),
        TensorType("bool", 1, np.dtype(np.uint8), None),
    )
}


# The tensor type of the DRAM elements an instruction names (contract.regions.Dram.dtype;
# None is GATHER's int32 index array).
DRAM_ELEMENTS: dict[DType | None, TensorType] = {
    **{t.isa: t for t in TENSOR_TYPES.values() if t.isa is not None},
    None: TENSOR_TYPES["int32"],
}


def encode_tensor(values: np.ndarray, dtype: str, what: str = "tensor") -> np.ndarray:
    """Host values -> the stored array of TENSOR_TYPES[dtype]: floats rounded to bf16
    (RNE) for bfloat16, integers range-checked for int32, booleans as bytes. Raises with
    `what` named when the values cannot be stored."""
    v = np.asarray(values)
    if dtype in ("float32", "bfloat16"):
        if not np.issubdtype(v.dtype, np.floating):
            raise TypeError(f"{what}: expected a floating-point tensor, got {v.dtype}")
        f = np.asarray(v, dtype=np.float32)  # no copy of float32 values (weights)
        return nx.f32_to_bf16_bits(f) if dtype == "bfloat16" else f
    if dtype == "int32":
        if np.issubdtype(v.dtype, np.floating):
            raise TypeError(f"{what}: expected an integer tensor, got {v.dtype}")
        wide = v.astype(np.int64)
        if wide.size and (wide.min() < -(2**31) or wide.max() >= 2**31):
            raise ValueError(f"{what}: values do not fit in int32")
        return wide.astype(np.int32)
    if dtype == "bool":
        return v.astype(bool).astype(np.uint8)
    raise TypeError(f"{what}: no DRAM layout for dtype {dtype!r}")


def decode_tensor(stored: np.ndarray, dtype: str) -> np.ndarray:
    """The stored array -> host values: float32, int64 or bool."""
    if dtype == "bfloat16":
        return nx.bf16_bits_to_f32(stored)
    if dtype == "int32":
        return np.asarray(stored).astype(np.int64)
    if dtype == "bool":
        return np.asarray(stored).astype(bool)
    return np.asarray(stored, dtype=np.float32)


def binding_span(b: dict) -> tuple[int, int]:
    """[first, end) DRAM bytes a bound tensor occupies."""
    size = TENSOR_TYPES[b["dtype"]].itemsize
    if any(n == 0 for n in b["shape"]):
        extent = 0
    else:
        extent = sum((n - 1) * s for n, s in zip(b["shape"], b["strides"], strict=True)) + 1
    base = b["addr"] + b["offset"] * size
    return base, base + extent * size


def binding_view(dram: np.ndarray, b: dict) -> np.ndarray:
    """The stored elements of a bound tensor as a numpy view into the DRAM image."""
    t = TENSOR_TYPES[b["dtype"]]
    base = b["addr"] + b["offset"] * t.itemsize
    flat = dram[base:].view(np.uint8)
    if base % t.itemsize == 0:
        flat = flat[: (flat.size // t.itemsize) * t.itemsize].view(t.storage)
    strides = tuple(s * t.itemsize for s in b["strides"])
    return as_strided(flat, tuple(b["shape"]), strides)


# ---------------------------------------------------------------- the listing
@dataclass(frozen=True)
class Line:
    """One instruction word of the code."""

    pc: int
    insn: Insn | None  # None: the word does not decode (or pc is outside the code)
    word: bytes = b""

    @property
    def number(self) -> int:
        """Position in the listing (pc / INSN_BYTES): what INSN=i:j windows name."""
        return self.pc // INSN_BYTES

    @property
    def unit(self) -> str:
        return self.insn.unit if self.insn is not None else "?"

    @property
    def text(self) -> str:
        """The disassembly, the word in hex when it does not decode, or why there is none."""
        if self.insn is not None:
            return format_insn(self.insn)
        return self.word.hex() if self.word else f"(pc {self.pc:#x} is outside the code)"

    @classmethod
    def of(cls, code: bytes, pc: int) -> Line:
        """The instruction word at pc, decoded."""
        if pc % INSN_BYTES or not 0 <= pc <= len(code) - INSN_BYTES:
            return cls(pc, None)
        word = code[pc : pc + INSN_BYTES]
        try:
            return cls(pc, decode(word), word)
        except IllegalInstruction:
            return cls(pc, None, word)


class Listing:
    """The code decoded once: a Line per instruction word, where each CHECKPOINT is,
    and which layer each instruction belongs to (the first checkpoint at or after it)."""

    def __init__(self, code: bytes, layers: list[dict] | tuple = ()):
        self.code = code
        self.paths = {la["id"]: la["path"] for la in layers}
        self.lines: list[Line] = []
        self.checkpoints: list[tuple[int, int]] = []  # (pc, layer id), in code order
        for pc in range(0, len(code) - INSN_BYTES + 1, INSN_BYTES):
            line = Line.of(code, pc)
            self.lines.append(line)
            if line.insn is not None and line.insn.opcode == Opcode.CHECKPOINT:
                self.checkpoints.append((pc, line.insn.layer))

    def __len__(self) -> int:
        return len(self.lines)

    def at(self, pc: int) -> Line:
        """The line at pc; a pc outside the code gives a line that says so."""
        if pc % INSN_BYTES == 0 and 0 <= pc < len(self.lines) * INSN_BYTES:
            return self.lines[pc // INSN_BYTES]
        return Line.of(self.code, pc)

    def layer_of(self, pc: int) -> str | None:
        """The module path of the layer the instruction at pc leads to."""
        for at, layer in self.checkpoints:
            if at >= pc:
                return self.paths.get(layer, f"layer {layer}")
        return None

    def layer_spans(self) -> dict[int, tuple[int, int]]:
        """Layer id -> (first, last) listing numbers: the instructions after the previous
        checkpoint up to and including this layer's CHECKPOINT."""
        spans, first = {}, 0
        for pc, layer in self.checkpoints:
            spans[layer] = (first, pc // INSN_BYTES)
            first = pc // INSN_BYTES + 1
        return spans


# ---------------------------------------------------------------- the program
@dataclass
class Program:
    hw: HwConfig
    code: bytes
    const_data: bytes
    meta: dict
    # In-memory only: the compiled graph, for golden checks (not in the blob).
    graph: object | None = field(default=None, repr=False)
    debug_nodes: list[str] = field(default_factory=list, repr=False)

    @property
    def layers(self) -> list[dict]:
        return self.meta["layers"]

    @property
    def segments(self) -> list[dict]:
        return self.meta["segments"]

    @cached_property
    def listing(self) -> Listing:
        return Listing(self.code, self.layers)

    def describe_segments(self) -> str:
        lines = [
            f"# program: {len(self.code) // INSN_BYTES} instructions, "
            f"{len(self.segments)} segments, hw {self.hw.name}"
        ]
        for i, s in enumerate(self.segments):
            if s["kind"] == "device":
                lines.append(f"# segment {i}: device pc={s['pc']:#x} insns={s['insns']}")
            else:
                op = self.meta["host_ops"][s["host_op"]]
                lines.append(f"# segment {i}: host {op['target']} ({op['node']})")
        return "\n".join(lines) + "\n"

    def __call__(self, *inputs, backend: str = "ref", **options):
        """Run on a backend and return what the exported program returns, as torch
        tensors: sim.run(program, inputs, check=False), found through the runtime's
        entry point."""
        found = entry_points(group=RUNTIME_ENTRY_POINTS, name="run")
        if not found:
            raise RuntimeError(
                f"no Loom runtime is installed (entry point group {RUNTIME_ENTRY_POINTS!r});"
                " install the project (`make test` does) or call sim.run(program, inputs)"
            )
        run = next(iter(found)).load()
        outs = run(self, inputs, backend=backend, check=False, **options).outputs
        return outs[0] if len(outs) == 1 else tuple(outs)

    # -- serialisation --------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = json.dumps({**self.meta, "hw": self.hw.to_dict()}).encode()
        sections = [(b"meta", meta), (b"code", self.code), (b"const", self.const_data)]
        table_size = 4 + len(sections) * 32
        table, blobs, offset = [struct.pack("<I", len(sections))], [], table_size
        for name, data in sections:
            table.append(struct.pack("<16sQQ", name, offset, len(data)))
            blobs.append(data)
            offset += len(data)
        payload = b"".join(table + blobs)
        header = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            ISA_VERSION,
            bytes.fromhex(self.hw.hash()),
            len(payload),
            hashlib.sha256(payload).digest(),
        )
        return header + payload

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, blob: bytes, hw: HwConfig | None = None) -> Program:
        if len(blob) < _HEADER.size or not blob.startswith(MAGIC):
            raise BlobError("not a Loom program blob (bad magic)")
        magic, fmt, isa_v, hw_hash, length, digest = _HEADER.unpack_from(blob)
        if fmt != FORMAT_VERSION:
            raise BlobError(
                f"blob format version {fmt}; this Loom reads version"
                f" {FORMAT_VERSION}: recompile the model"
            )
        if isa_v != ISA_VERSION:
            raise BlobError(
                f"blob targets ISA v{isa_v}; this Loom implements ISA"
                f" v{ISA_VERSION}: recompile the model"
            )
        payload = blob[_HEADER.size :]
        if len(payload) != length:
            raise BlobError(
                f"blob truncated: payload is {len(payload)} bytes, header says {length}"
            )
        if hashlib.sha256(payload).digest() != digest:
            raise BlobError("blob checksum mismatch: the file is corrupt")
        (count,) = struct.unpack_from("<I", payload)
        sections = {}
        for i in range(count):
            name, off, n = struct.unpack_from("<16sQQ", payload, 4 + 32 * i)
            sections[name.rstrip(b"\0").decode()] = payload[off : off + n]
        meta = json.loads(sections["meta"])
        blob_hw = HwConfig.from_dict(meta.pop("hw"))
        if blob_hw.hash() != hw_hash.hex():
            raise BlobError("blob hardware-config hash does not match its own config: corrupt")
        if hw is not None and hw.hash() != blob_hw.hash():
            raise BlobError(
                f"blob was compiled for hardware config {blob_hw.name!r}"
                f" ({hw_hash.hex()[:12]}), not {hw.name!r} ({hw.hash()[:12]})"
            )
        return cls(blob_hw, sections["code"], sections["const"], meta)


def load(path: str | Path, hw: HwConfig | None = None) -> Program:
    """Load a blob; with hw, refuse one compiled for another hardware config."""
    return Program.from_bytes(Path(path).read_bytes(), hw)
