"""The program blob: its file format, the in-memory Program, how tensors are laid out in
DRAM, the decoded listing, and the loader's validation. The compiler writes blobs with
this module and every backend, report and tool reads them with it. docs/blob.md has the
format and everything the loader checks.

Blob layout (little-endian):
    magic "LOOMPRG\\0" | u32 format version | u32 ISA version | 32 B hardware-config
    SHA-256 | u64 payload length | 32 B payload SHA-256 | payload
Payload: u32 section count, then per section a 16-byte name, u64 offset, u64 length,
then the section bytes. Sections: "meta" (JSON: hardware config, memory plan with its
buffers, segments, host ops, input/output bindings, layer table, compile report), "code"
(instructions, loaded at DRAM address 0), "const" (constant bytes; meta["constants"]
places each at its DRAM address).

A binding (meta inputs, outputs, layer tensors, host-op operands) is a dict: name,
addr (the buffer's DRAM byte address), buffer (its name in meta["memory"]["buffers"]),
dtype (a TENSOR_TYPES name), shape, strides and offset in elements.

Loading is a trust boundary: Program.from_bytes validates the whole blob (validate)
before a Program exists, so a blob with a valid checksum but crafted metadata is
refused with the field named (BlobError).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from contract import hostops
from contract import numerics as nx
from contract.asm import format_insn
from contract.hw import NAME_PATTERN, HwConfig
from contract.isa import INSN_BYTES, ISA_VERSION, DType, IllegalInstruction, Insn, Opcode, decode

MAGIC = b"LOOMPRG\0"
# 2: meta.memory lists the buffers (so every binding is checked inside its own)
FORMAT_VERSION = 2
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
        # Host-only: int64 values no device instruction reads (every int an instruction
        # reads is an int32 index), kept whole between host ops when they may not fit
        # in int32 (a hash, a sentinel, a product of positions).
        TensorType("int64", 8, np.dtype(np.int64), None),
        TensorType("bool", 1, np.dtype(np.uint8), None),
    )
}


# The tensor type of the DRAM elements an instruction names (contract.regions.Dram.dtype;
# None is GATHER's int32 index array; no instruction names int64).
DRAM_ELEMENTS: dict[DType | None, TensorType] = {
    **{t.isa: t for t in TENSOR_TYPES.values() if t.isa is not None},
    None: TENSOR_TYPES["int32"],
}


def encode_tensor(values: np.ndarray, dtype: str, what: str = "tensor") -> np.ndarray:
    """Host values -> the stored array of TENSOR_TYPES[dtype]: floats rounded to bf16
    (RNE) for bfloat16, integers range-checked for int32 (int64 kept whole), booleans as
    bytes. Raises with
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
    if dtype == "int64":
        if np.issubdtype(v.dtype, np.floating):
            raise TypeError(f"{what}: expected an integer tensor, got {v.dtype}")
        return v.astype(np.int64)
    if dtype == "bool":
        return v.astype(bool).astype(np.uint8)
    raise TypeError(f"{what}: no DRAM layout for dtype {dtype!r}")


def decode_tensor(stored: np.ndarray, dtype: str) -> np.ndarray:
    """The stored array -> host values: float32, int64 or bool."""
    if dtype == "bfloat16":
        return nx.bf16_bits_to_f32(stored)
    if dtype in ("int32", "int64"):
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


def printable(text) -> str:
    """text with anything but printable ASCII escaped (\\n, \\x1b, \\u...): blob strings
    are printed, and an escape sequence or newline must not forge a terminal's output."""
    text = str(text)
    if _PRINTABLE.fullmatch(text):
        return text
    return "".join(c if _PRINTABLE.fullmatch(c) else ascii(c)[1:-1] for c in text)


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
            f"{len(self.segments)} segments, hw {printable(self.hw.name)}"
        ]
        for i, s in enumerate(self.segments):
            if s["kind"] == "device":
                lines.append(f"# segment {i}: device pc={s['pc']:#x} insns={s['insns']}")
            else:
                op = self.meta["host_ops"][s["host_op"]]
                lines.append(
                    f"# segment {i}: host {printable(op['target'])} ({printable(op['node'])})"
                )
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
        """The Program in a blob, after the whole blob has been validated (docs/blob.md):
        BlobError, naming the field, for anything this Loom would not run as written."""
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
        sections = read_sections(payload)
        meta = parse_meta(sections["meta"])
        blob_hw = hw_config_of(meta.pop("hw"))
        if blob_hw.hash() != hw_hash.hex():
            raise BlobError("blob hardware-config hash does not match its own config: corrupt")
        if hw is not None and hw.hash() != blob_hw.hash():
            raise BlobError(
                f"blob was compiled for hardware config {blob_hw.name!r}"
                f" ({hw_hash.hex()[:12]}), not {hw.name!r} ({hw.hash()[:12]})"
            )
        validate(blob_hw, sections["code"], sections["const"], meta)
        return cls(blob_hw, sections["code"], sections["const"], meta)


def load(path: str | Path, hw: HwConfig | None = None) -> Program:
    """Load a blob; with hw, refuse one compiled for another hardware config."""
    return Program.from_bytes(Path(path).read_bytes(), hw)


# ---------------------------------------------------------------- validation
# Loading a blob is a trust boundary: blobs travel like model files, and the checksum
# proves only that the bytes arrived as written, not that they are sane. Everything the
# runtime reads from a blob is checked here before a Program exists (docs/blob.md), so
# a crafted blob is refused with the field named instead of reading or writing outside
# the DRAM image, asking for terabytes or calling an arbitrary torch operator.

SECTIONS = ("meta", "code", "const")
MAX_NDIM = 8  # tensor rank; the models' tensors have at most 5 dimensions
# Bindings in a blob, all kinds together; GPT-2 small (12 blocks, 126 layers) has 253.
MAX_BINDINGS = 1 << 14
# What a run may read out of DRAM, in host bytes (the decoded tensors: bf16 widened to
# float32, int32 to int64): every layer's output and inputs at each CHECKPOINT that
# names it, the outputs, each host op's inputs and results and the inputs written.
# Zero strides make a view's elements cost more than its bytes in DRAM, so this is
# counted in elements, and bounded by READ_PER_IMAGE_BYTE bytes per byte of the DRAM
# image plus READ_BASE (docs/blob.md has the figures of the repository's models).
READ_PER_IMAGE_BYTE = 8
READ_BASE = 64 << 20
# Identifiers (node, module, layer, binding and buffer names): printable ASCII.
MAX_IDENT = 256
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_META_KEYS = {"isa_version", "memory", "segments", "host_ops", "constants", "inputs"}
_META_KEYS |= {"outputs", "layers", "hw"}
_META_OPTIONAL = {"report"}  # the compile report: shown to people, never executed
_BINDING_KEYS = {"name", "addr", "buffer", "dtype", "shape", "strides", "offset"}
_LAYER_KEYS = {"id", "path", "type", "kind", "aliases", "node", "output", "inputs", "nodes"}
_HOST_OP_KEYS = {"target", "args", "kwargs", "inputs", "outputs", "node", "module"}
_MEMORY_KEYS = {"code_bytes", "constants", "io", "activations", "activation_peak_live"}
_MEMORY_KEYS |= {"activation_no_reuse", "total", "buffers"}
# The memory plan's region of each buffer kind (compiler/memplan.py).
REGION_OF_KIND = {
    "constant": "constants",
    "input": "io",
    "output": "io",
    "state": "io",
    "activation": "activations",
}
_ADDR_LIMIT = 2**32  # DRAM addresses are 32 bits (HwConfig.dram_mib <= 4096)
# Bounds of each hardware-config number: what the RTL (rtl/, docs/rtl.md) and the ISA
# can be built for, the configs of configs/hw/ well inside them (docs/blob.md).
_HW_BOUNDS: dict[str, tuple[tuple[type, ...], float, float]] = {
    # lane masks are computed in 64 bits (rtl/loom_dma.sv); configs: 8, 16
    "array_dim": ((int,), 2, 64),
    # SRAM element addresses are 20-bit instruction fields (contract/isa.py): 2**20
    # bf16 elements in the scratchpad, 2**20 fp32 in the accumulator; configs: 32-512
    # and 16-256 KiB
    "spad_kib": ((int,), 1, 2 * 1024),
    "acc_kib": ((int,), 1, 4 * 1024),
    # an AXI4 data bus: a power of two up to 1024 bits (checked below); configs 128, 256
    "dram_bus_bits": ((int,), 64, 1024),
    "dram_mib": ((int,), 1, 4096),  # 32-bit DRAM addresses
    "clock_mhz": ((int, float), 1, 10**4),  # reports only; configs 500, 1000
    # the simulated DRAM's timing (sim/hdl/loom_axi_dram.sv); configs 60-100, 16-32
    "dram_latency_cycles": ((int,), 0, 4096),
    "dram_bytes_per_cycle": ((int,), 1, 1024),
}


def _refuse(path: str, reason: str):
    raise BlobError(f"{path}: {reason}")


def _obj(v, path: str, keys: set[str], optional: set[str] = frozenset()) -> dict:
    """v is a JSON object with exactly `keys` (and maybe `optional`)."""
    if not isinstance(v, dict):
        _refuse(path, f"expected an object, got {type(v).__name__}")
    for k in sorted(keys - set(v)):
        _refuse(f"{path}.{k}", "missing")
    for k in sorted(set(v) - keys - optional):
        _refuse(f"{path}.{k}", "unknown field")
    return v


def _list(v, path: str) -> list:
    if not isinstance(v, list):
        _refuse(path, f"expected a list, got {type(v).__name__}")
    return v


def _str(v, path: str) -> str:
    if type(v) is not str:
        _refuse(path, f"expected a string, got {v!r}"[:200])
    return v


def _ident(v, path: str) -> str:
    """A name the blob gives something, which reports and listings print: printable
    ASCII (no control characters, escapes or newlines), at most MAX_IDENT long."""
    _str(v, path)
    if len(v) > MAX_IDENT:
        _refuse(path, f"{len(v)} characters (at most {MAX_IDENT})")
    if not _PRINTABLE.fullmatch(v):
        _refuse(path, f"'{printable(v)[:120]}' holds characters other than printable ASCII")
    return v


def _int(v, path: str, lo: int = 0, hi: int = _ADDR_LIMIT) -> int:
    if type(v) is not int:
        _refuse(path, f"expected an integer, got {v!r}"[:200])
    if not lo <= v <= hi:
        _refuse(path, f"{v} is outside [{lo}, {hi}]")
    return v


def read_sections(payload: bytes) -> dict[str, bytes]:
    """The sections of a payload whose table is sane: exactly SECTIONS, each once,
    inside the payload and tiling it after the table (no overlaps, no hidden bytes)."""
    if len(payload) < 4:
        _refuse("sections", "payload too short for a section table")
    (count,) = struct.unpack_from("<I", payload)
    if count != len(SECTIONS):
        _refuse("sections", f"{count} sections; a blob has {len(SECTIONS)} {list(SECTIONS)}")
    table_end = 4 + 32 * count
    if table_end > len(payload):
        _refuse("sections", f"the table needs {table_end} bytes; the payload has {len(payload)}")
    entries = []
    for i in range(count):
        raw, off, n = struct.unpack_from("<16sQQ", payload, 4 + 32 * i)
        name = raw.rstrip(b"\0")
        if name.decode("ascii", "replace") not in SECTIONS or b"\0" in name:
            _refuse(f"sections[{i}].name", f"unknown section {raw!r}")
        entries.append((off, n, name.decode(), i))
    names = [e[2] for e in entries]
    if sorted(names) != sorted(SECTIONS):
        _refuse("sections", f"sections {names}; a blob has each of {list(SECTIONS)} once")
    at = table_end
    for off, n, name, i in sorted(entries):
        if off != at:
            what = "overlaps the previous section" if off < at else f"leaves a gap after {at}"
            _refuse(f"sections[{i}] ({name}).offset", f"{off} {what}")
        if off + n > len(payload):
            _refuse(
                f"sections[{i}] ({name}).length",
                f"{off} + {n} runs past the payload ({len(payload)} bytes)",
            )
        at = off + n
    if at != len(payload):
        _refuse("sections", f"{len(payload) - at} bytes after the last section")
    out = {name: payload[off : off + n] for off, n, name, _ in entries}
    if len(out["code"]) % INSN_BYTES:
        _refuse(
            "sections.code",
            f"{len(out['code'])} bytes is not a whole number of {INSN_BYTES}-byte instructions",
        )
    return out


def parse_meta(data: bytes) -> dict:
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BlobError(f"meta: not valid JSON ({str(e)[:120]})") from None
    _obj(meta, "meta", _META_KEYS, _META_OPTIONAL)
    return meta


def hw_config_of(values) -> HwConfig:
    """The hardware config a blob records, each field of the right type within bounds."""
    keys = {f.name for f in dataclasses.fields(HwConfig)}
    _obj(values, "meta.hw", keys)
    name = _str(values["name"], "meta.hw.name")
    if not NAME_PATTERN.fullmatch(name):
        _refuse("meta.hw.name", f"'{printable(name)[:80]}' is not 1 to 64 of [A-Za-z0-9._-]")
    for name, (types, lo, hi) in _HW_BOUNDS.items():
        v = values[name]
        if type(v) not in types or not lo <= v <= hi:
            _refuse(f"meta.hw.{name}", f"{v!r} is not a number in [{lo}, {hi}]"[:200])
    bus = values["dram_bus_bits"]
    if bus & (bus - 1):
        _refuse("meta.hw.dram_bus_bits", f"{bus} is not a power of two (an AXI4 data bus)")
    try:
        return HwConfig.from_dict(values)
    except ValueError as e:
        raise BlobError(f"meta.hw: {e}") from None


def _align(x: int, a: int = 64) -> int:
    return -(-x // a) * a


def image_bytes(program_meta: dict, code: bytes) -> int:
    """The size of the DRAM image a program runs in: its memory plan's footprint (the
    code included), in whole 64-byte lines."""
    size = max(program_meta["memory"]["total"], len(code), 64)
    return -(-size // 64) * 64


def validate(hw: HwConfig, code: bytes, const_data: bytes, meta: dict) -> None:
    """Refuse (BlobError naming the field) a program that could not run as written: the
    whole meta as a schema, every binding inside the DRAM image and its buffer, the
    segments inside the code, host ops on the allow-list (contract.hostops)."""
    _obj(meta, "meta", _META_KEYS - {"hw"}, _META_OPTIONAL | {"hw"})
    if meta["isa_version"] != ISA_VERSION:
        _refuse("meta.isa_version", f"{meta['isa_version']!r}; the header says {ISA_VERSION}")
    if "report" in meta and not isinstance(meta["report"], dict):
        _refuse("meta.report", "expected an object")
    buffers = _validate_memory(meta["memory"], hw, len(code))
    image = image_bytes(meta, code)
    check = _Bindings(buffers, image)
    _validate_constants(meta["constants"], buffers, len(const_data))
    reads = 0  # host bytes a run reads out of (or writes into) DRAM, but the layers'
    for i, b in enumerate(_list(meta["inputs"], "meta.inputs")):
        path = f"meta.inputs[{i}]"
        if isinstance(b, dict) and "addr" not in b:
            _obj(b, path, {"name", "value"})
            _ident(b["name"], f"{path}.name")
            if b["value"] is not None and type(b["value"]) not in (int, float, bool):
                _refuse(f"{path}.value", f"expected a number, a bool or null, got {b['value']!r}")
            continue
        reads += check(b, path, kinds={"input"})
    for i, b in enumerate(_list(meta["outputs"], "meta.outputs")):
        if b is not None:
            reads += check(b, f"meta.outputs[{i}]")
    layer_reads = _validate_layers(meta["layers"], check)
    reads += _validate_host_ops(meta["host_ops"], check)
    checkpoints = _validate_segments(meta["segments"], code, len(meta["host_ops"]), layer_reads)
    reads += sum(layer_reads[layer] * n for layer, n in checkpoints.items())
    budget = read_budget(image)
    if reads > budget:
        _refuse(
            "meta",
            f"a run would read {reads} bytes of tensors out of DRAM (layers at each"
            f" checkpoint, outputs, host-op operands); the budget of a {image}-byte image is"
            f" {budget} ({READ_PER_IMAGE_BYTE} x image + {READ_BASE})",
        )


def read_budget(image: int) -> int:
    """The most host bytes of tensors a run of a program with this DRAM image may read."""
    return READ_PER_IMAGE_BYTE * image + READ_BASE


def run_reads(meta: dict, code: bytes) -> int:
    """The host bytes of tensors a run reads (what validate bounds by read_budget), for a
    program that loaded: a figure for docs/blob.md and tests."""
    check = _Bindings({b["name"]: b for b in meta["memory"]["buffers"]}, 1 << 64)
    reads = sum(check(b, "in") for b in meta["inputs"] if "addr" in b)
    reads += sum(check(b, "out") for b in meta["outputs"] if b is not None)
    reads += sum(check(b, "op") for op in meta["host_ops"] for b in op["inputs"] + op["outputs"])
    per_layer = {la["id"]: check(la["output"], "la") for la in meta["layers"]}
    for la in meta["layers"]:
        per_layer[la["id"]] += sum(check(b, "la") for b in la["inputs"])
    for at in range(0, len(code), INSN_BYTES):
        if code[at] == Opcode.CHECKPOINT:
            reads += per_layer.get(decode(code[at : at + INSN_BYTES]).layer, 0)
    return reads


def _span(lo: int, hi: int) -> str:
    return f"[{lo:#x}, {hi:#x})"


def _validate_memory(memory, hw: HwConfig, code_bytes: int) -> dict[str, dict]:
    """The memory plan: its regions in order inside the DRAM, each buffer inside the
    region of its kind. Returns the buffers by name."""
    _obj(memory, "meta.memory", _MEMORY_KEYS)
    if _int(memory["code_bytes"], "meta.memory.code_bytes") != code_bytes:
        _refuse("meta.memory.code_bytes", f"{memory['code_bytes']}; the code has {code_bytes}")
    for k in ("activation_peak_live", "activation_no_reuse"):
        _int(memory[k], f"meta.memory.{k}")
    total = _int(memory["total"], "meta.memory.total", hi=hw.dram_bytes)
    regions, at = {}, _align(code_bytes)
    for name in ("constants", "io", "activations"):
        path = f"meta.memory.{name}"
        r = _list(memory[name], path)
        if len(r) != 2:
            _refuse(path, f"expected [start, end], got {r!r}"[:200])
        # as compiler/memplan.py lays them out: each region starts where the previous
        # one ends, the first at the code's end rounded up to a 64-byte line
        if _int(r[0], f"{path}[0]", hi=total) != at:
            _refuse(f"{path}[0]", f"{r[0]:#x}; the previous region ends at {at:#x}")
        end = _int(r[1], f"{path}[1]", lo=at, hi=total)
        regions[name], at = (at, end), end
    buffers: dict[str, dict] = {}
    ends = {name: start for name, (start, _) in regions.items()}
    for i, b in enumerate(_list(memory["buffers"], "meta.memory.buffers")):
        path = f"meta.memory.buffers[{i}]"
        _obj(b, path, {"name", "kind", "addr", "size"})
        name = _ident(b["name"], f"{path}.name")
        if name in buffers:
            _refuse(f"{path}.name", f"buffer {name!r} is listed twice")
        if type(b["kind"]) is not str or b["kind"] not in REGION_OF_KIND:
            _refuse(f"{path}.kind", f"{b['kind']!r} is not one of {list(REGION_OF_KIND)}"[:200])
        lo, hi = regions[REGION_OF_KIND[b["kind"]]]
        addr = _int(b["addr"], f"{path}.addr")
        size = _int(b["size"], f"{path}.size", lo=1)
        if not lo <= addr <= addr + size <= hi:
            _refuse(
                path,
                f"{b['kind']} buffer {_span(addr, addr + size)} is outside the memory"
                f" plan's {REGION_OF_KIND[b['kind']]} region {_span(lo, hi)}",
            )
        region = REGION_OF_KIND[b["kind"]]
        ends[region] = max(ends[region], addr + size)
        buffers[name] = b
    # No region reaches past its last buffer (rounded up to a line, as the planner
    # does for constants and I/O), and the image ends with the activations: the DRAM
    # image is the program's footprint, not a size of the blob's choosing.
    for name, (_, end) in regions.items():
        want = ends[name] if name == "activations" else _align(ends[name])
        if end != want:
            _refuse(
                f"meta.memory.{name}[1]",
                f"{end:#x}; its last buffer ends at {ends[name]:#x} (the region ends at {want:#x})",
            )
    if total != _align(regions["activations"][1]):
        _refuse(
            "meta.memory.total",
            f"{total:#x}; the memory plan ends at {_align(regions['activations'][1]):#x}",
        )
    # Only activations share memory (by lifetime); constants and I/O each have their own.
    placed = sorted(
        (b["addr"], b["addr"] + b["size"], b["name"])
        for b in buffers.values()
        if b["kind"] != "activation"
    )
    for (_, end, first), (start, _, second) in zip(placed, placed[1:], strict=False):
        if start < end:
            _refuse("meta.memory.buffers", f"buffers {first!r} and {second!r} overlap")
    return buffers


def _validate_constants(constants, buffers: dict[str, dict], const_bytes: int) -> None:
    """Each constant is a constant buffer's bytes, taken from the const section."""
    pieces = []
    for i, c in enumerate(_list(constants, "meta.constants")):
        path = f"meta.constants[{i}]"
        _obj(c, path, {"name", "addr", "offset", "length"})
        buf = buffers.get(_str(c["name"], f"{path}.name"))
        if buf is None or buf["kind"] != "constant":
            _refuse(f"{path}.name", f"{c['name']!r} is not a constant buffer of the memory plan")
        if _int(c["addr"], f"{path}.addr") != buf["addr"]:
            _refuse(f"{path}.addr", f"{c['addr']:#x}; its buffer is at {buf['addr']:#x}")
        length = _int(c["length"], f"{path}.length", hi=buf["size"])
        offset = _int(c["offset"], f"{path}.offset", hi=const_bytes - length)
        pieces.append((offset, offset + length, i))
    for (_, end, _), (start, _, second) in zip(sorted(pieces), sorted(pieces)[1:], strict=False):
        if start < end:
            _refuse(f"meta.constants[{second}].offset", "overlaps another constant's bytes")


# Bytes per element of a tensor read out of DRAM (contract.blob.decode_tensor's types).
HOST_ITEMSIZE = {"float32": 4, "bfloat16": 4, "int32": 8, "int64": 8, "bool": 1}


class _Bindings:
    """Checks a bound tensor: its fields' types, its size against the DRAM image and its
    bytes inside the buffer the memory plan gave it; returns the host bytes it reads
    as (its element count times HOST_ITEMSIZE). Counts the bindings (MAX_BINDINGS)."""

    def __init__(self, buffers: dict[str, dict], image: int):
        self.buffers, self.image, self.count = buffers, image, 0

    def __call__(self, b, path: str, kinds: set[str] | None = None) -> int:
        self.count += 1
        if self.count > MAX_BINDINGS:
            _refuse(path, f"more than {MAX_BINDINGS} tensor bindings in one blob")
        _obj(b, path, _BINDING_KEYS)
        _ident(b["name"], f"{path}.name")
        t = TENSOR_TYPES.get(b["dtype"]) if type(b["dtype"]) is str else None
        if t is None:
            _refuse(f"{path}.dtype", f"{b['dtype']!r} is not one of {list(TENSOR_TYPES)}"[:200])
        shape, strides = _list(b["shape"], f"{path}.shape"), _list(b["strides"], f"{path}.strides")
        if len(shape) > MAX_NDIM:
            _refuse(f"{path}.shape", f"{len(shape)} dimensions (at most {MAX_NDIM})")
        if len(strides) != len(shape):
            _refuse(f"{path}.strides", f"{len(strides)} strides for {len(shape)} dimensions")
        for k, n in enumerate(shape):
            _int(n, f"{path}.shape[{k}]", hi=self.image)
        for k, s in enumerate(strides):
            _int(s, f"{path}.strides[{k}]")
        _int(b["offset"], f"{path}.offset")
        # the non-zero dimensions: numpy refuses a view whose other dimensions overflow
        # even when one is 0
        numel = math.prod(n for n in shape if n)
        if numel * t.itemsize > self.image:
            _refuse(
                f"{path}.shape",
                f"{shape} is {numel} {t.name} elements; the DRAM image has {self.image} bytes",
            )
        buf = self.buffers.get(b["buffer"]) if type(b["buffer"]) is str else None
        if buf is None:
            _refuse(f"{path}.buffer", f"{b['buffer']!r} is not a buffer of the memory plan"[:200])
        if kinds is not None and buf["kind"] not in kinds:
            _refuse(
                f"{path}.buffer", f"{buf['name']!r} is a {buf['kind']} buffer, not {sorted(kinds)}"
            )
        if _int(b["addr"], f"{path}.addr") != buf["addr"]:
            _refuse(
                f"{path}.addr",
                f"{b['addr']:#x}; buffer {buf['name']!r} is at {buf['addr']:#x}"[:200],
            )
        lo, hi = binding_span(b)
        if lo % t.itemsize:
            _refuse(f"{path}.offset", f"first byte {lo:#x} is not {t.itemsize}-byte aligned")
        end = buf["addr"] + buf["size"]
        if not buf["addr"] <= lo <= hi <= end:
            _refuse(
                path,
                f"tensor bytes {_span(lo, hi)} are outside its buffer {buf['name']!r}"
                f" {_span(buf['addr'], end)}",
            )
        return math.prod(shape) * HOST_ITEMSIZE[t.name]


def _validate_layers(layers, check: _Bindings) -> dict[int, int]:
    """Layer id -> the host bytes reading its output and inputs at a checkpoint."""
    reads: dict[int, int] = {}
    for i, la in enumerate(_list(layers, "meta.layers")):
        path = f"meta.layers[{i}]"
        _obj(la, path, _LAYER_KEYS)
        if _int(la["id"], f"{path}.id") in reads:
            _refuse(f"{path}.id", f"layer id {la['id']} is used twice")
        for k in ("path", "type", "kind", "node"):
            _ident(la[k], f"{path}.{k}")
        for k in ("aliases", "nodes"):
            for j, s in enumerate(_list(la[k], f"{path}.{k}")):
                _ident(s, f"{path}.{k}[{j}]")
        n = check(la["output"], f"{path}.output")
        for j, b in enumerate(_list(la["inputs"], f"{path}.inputs")):
            n += check(b, f"{path}.inputs[{j}]")
        reads[la["id"]] = n
    return reads


def _validate_host_ops(host_ops, check: _Bindings) -> int:
    """The host bytes the host ops read (inputs) and compute (results)."""
    reads = 0
    for i, op in enumerate(_list(host_ops, "meta.host_ops")):
        path = f"meta.host_ops[{i}]"
        _obj(op, path, _HOST_OP_KEYS)
        _ident(op["node"], f"{path}.node")
        _ident(op["module"], f"{path}.module")
        inputs = _list(op["inputs"], f"{path}.inputs")
        outputs = _list(op["outputs"], f"{path}.outputs")
        for j, b in enumerate(inputs):
            reads += check(b, f"{path}.inputs[{j}]")
        # A host op writes only buffers the program computes: never constants or inputs.
        for j, b in enumerate(outputs):
            reads += check(b, f"{path}.outputs[{j}]", kinds={"activation", "output"})
        try:
            hostops.check_call(op["target"], op["args"], op["kwargs"], len(inputs), len(outputs))
        except hostops.HostOpRefused as e:
            raise BlobError(f"{path}.{e.field}: {e.reason}"[:400]) from None
    return reads


def _validate_segments(segments, code: bytes, n_host_ops: int, layer_ids) -> Counter:
    """As compiler/emit.py cuts them: device segments tile the code in order, each
    closed by its only HALT; host segments name the host ops in order, each once.
    Returns how many CHECKPOINTs name each layer."""
    pc, host_op = 0, 0
    for i, seg in enumerate(_list(segments, "meta.segments")):
        path = f"meta.segments[{i}]"
        if not isinstance(seg, dict) or seg.get("kind") not in ("device", "host"):
            _refuse(f"{path}.kind", "expected 'device' or 'host'")
        if seg["kind"] == "host":
            _obj(seg, path, {"kind", "host_op"})
            if _int(seg["host_op"], f"{path}.host_op", hi=n_host_ops) != host_op:
                _refuse(f"{path}.host_op", f"{seg['host_op']}; the next host op is {host_op}")
            host_op += 1
            continue
        _obj(seg, path, {"kind", "pc", "insns"})
        if _int(seg["pc"], f"{path}.pc", hi=len(code)) != pc:
            _refuse(f"{path}.pc", f"{seg['pc']:#x}; the previous segment ends at {pc:#x}")
        end = pc + INSN_BYTES * _int(seg["insns"], f"{path}.insns", lo=1)
        if end > len(code):
            _refuse(f"{path}.insns", f"the segment ends at {end:#x}, past the code ({len(code)})")
        opcodes = code[pc:end:INSN_BYTES]  # the opcode is each word's first byte
        if opcodes.find(Opcode.HALT) != len(opcodes) - 1:
            _refuse(f"{path}.insns", "a device segment ends with its only HALT")
        pc = end
    if pc != len(code):
        _refuse("meta.segments", f"code bytes {_span(pc, len(code))} belong to no segment")
    if host_op != n_host_ops:
        _refuse("meta.segments", f"host ops {host_op}..{n_host_ops - 1} belong to no segment")
    checkpoints: Counter = Counter()
    for at in range(0, len(code), INSN_BYTES):
        if code[at] != Opcode.CHECKPOINT:
            continue
        try:
            layer = decode(code[at : at + INSN_BYTES]).layer
        except IllegalInstruction:
            continue  # a fault the core reports when it gets there
        if layer not in layer_ids:
            _refuse(f"code[pc {at:#x}]", f"CHECKPOINT names layer {layer}, not in meta.layers")
        checkpoints[layer] += 1
    return checkpoints
