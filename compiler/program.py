"""The versioned program blob and the in-memory Program.

Blob layout (little-endian):
    magic "LOOMPRG\\0" | u32 format version | u32 ISA version | 32 B hardware-config
    SHA-256 | u64 payload length | 32 B payload SHA-256 | payload
Payload: u32 section count, then per section a 16-byte name, u64 offset, u64 length,
then the section bytes. Sections: "meta" (JSON: hardware config, memory plan,
segments, host ops, input/output bindings, layer table, compile report), "code"
(instructions, loaded at DRAM address 0), "const" (constant bytes; meta["constants"]
places each at its DRAM address).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from compiler import isa
from compiler.hw import HwConfig

MAGIC = b"LOOMPRG\0"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sII32sQ32s")


class BlobError(ValueError):
    """A program blob that cannot be run here: corrupt, or of another version/config."""


@dataclass
class Program:
    hw: HwConfig
    code: bytes
    const_data: bytes
    meta: dict
    # In-memory only: the compiled graph, for golden checks (not in the blob).
    graph: object | None = field(default=None, repr=False)
    debug_nodes: list[str] = field(default_factory=list, repr=False)

    # -- bindings -------------------------------------------------------------
    @property
    def layers(self) -> list[dict]:
        return self.meta["layers"]

    @property
    def segments(self) -> list[dict]:
        return self.meta["segments"]

    def describe_segments(self) -> str:
        lines = [
            f"# program: {len(self.code) // isa.INSN_BYTES} instructions, "
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
        """Run and return what the exported program returns, as torch tensors."""
        from sim import run

        result = run(self, inputs, backend=backend, check=False, **options)
        outs = result.outputs
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
            isa.ISA_VERSION,
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
        if isa_v != isa.ISA_VERSION:
            raise BlobError(
                f"blob targets ISA v{isa_v}; this Loom implements ISA"
                f" v{isa.ISA_VERSION}: recompile the model"
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
