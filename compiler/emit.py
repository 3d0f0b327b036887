"""Emission: cut the stream into segments with their HALTs, then encode it.

The stream is cut into device segments (each ends with HALT) around host ops; the
host runs a host op, then restarts the core at the next segment's pc. One pass makes
the segments and the final instruction list together, so a segment's pc and length
and the code size all count the same instructions. The memory planner needs the
code size before addresses exist; encoding comes after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.ir import Checkpoint, DramRef, HostOp, PendingInsn, StreamItem
from contract import isa


@dataclass
class Segment:
    kind: str  # "device" | "host"
    pc: int = 0  # device: byte address of the first instruction
    insns: int = 0
    host_op: int = -1  # host: index into the host-op table

    def to_json(self) -> dict:
        if self.kind == "device":
            return {"kind": "device", "pc": self.pc, "insns": self.insns}
        return {"kind": "host", "host_op": self.host_op}


@dataclass
class Segmented:
    """The stream cut for the core: device instructions in code order (each device
    segment closed by HALT), the segments, and the host ops they name."""

    insns: list[PendingInsn | Checkpoint] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    host_ops: list[HostOp] = field(default_factory=list)

    @property
    def code_bytes(self) -> int:
        return len(self.insns) * isa.INSN_BYTES


def segment_stream(stream: list[StreamItem]) -> Segmented:
    out = Segmented()
    open_seg: Segment | None = None

    def close() -> None:
        nonlocal open_seg
        if open_seg is not None:
            out.insns.append(PendingInsn("halt", {}))
            open_seg.insns = len(out.insns) - open_seg.pc // isa.INSN_BYTES
            open_seg = None

    for item in stream:
        if isinstance(item, HostOp):
            close()
            out.segments.append(Segment("host", host_op=len(out.host_ops)))
            out.host_ops.append(item)
            continue
        if open_seg is None:
            open_seg = Segment("device", pc=out.code_bytes)
            out.segments.append(open_seg)
        out.insns.append(item)
    close()
    return out


def encode(insns: list[PendingInsn | Checkpoint]) -> tuple[bytes, list[str]]:
    """Code bytes (every buffer must be placed) and, per instruction, its graph node."""
    words = []
    for item in insns:
        if isinstance(item, Checkpoint):
            insn = isa.make("checkpoint", layer=item.layer)
        else:
            args = {k: (v.resolve() if isinstance(v, DramRef) else v) for k, v in item.args.items()}
            insn = isa.make(item.mnemonic, **args)
        words.append(isa.encode(insn))
    return b"".join(words), [item.node for item in insns]
