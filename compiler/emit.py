"""Emission: place buffers, resolve DRAM addresses, encode the instruction stream.

The stream is cut into device segments (each ends with HALT) around host ops; the
host runs a host op, then restarts the core at the next segment's pc.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def segment_stream(stream: list[StreamItem]) -> tuple[list[Segment], list[HostOp], int]:
    """Segments, host ops, and the instruction count including HALTs."""
    segments: list[Segment] = []
    host_ops: list[HostOp] = []
    count = 0
    open_seg: Segment | None = None
    for item in stream:
        if isinstance(item, HostOp):
            if open_seg is not None:
                open_seg.insns += 1  # HALT
                count += 1
                open_seg = None
            segments.append(Segment("host", host_op=len(host_ops)))
            host_ops.append(item)
            continue
        if open_seg is None:
            open_seg = Segment("device", pc=count * isa.INSN_BYTES)
            segments.append(open_seg)
        open_seg.insns += 1
        count += 1
    if open_seg is not None:
        open_seg.insns += 1
        count += 1
    return segments, host_ops, count


def encode_stream(stream: list[StreamItem]) -> tuple[bytes, list[str]]:
    """Code bytes (addresses must be placed) and, per instruction, its graph node."""
    words, debug = [], []
    pending_halt = False
    for item in stream:
        if isinstance(item, HostOp):
            if pending_halt:
                words.append(isa.encode(isa.make("halt")))
                debug.append("")
                pending_halt = False
            continue
        if isinstance(item, Checkpoint):
            insn = isa.make("checkpoint", layer=item.layer)
        else:
            assert isinstance(item, PendingInsn)
            args = {k: (v.resolve() if isinstance(v, DramRef) else v) for k, v in item.args.items()}
            insn = isa.make(item.mnemonic, **args)
        words.append(isa.encode(insn))
        debug.append(item.node)
        pending_halt = True
    if pending_halt:
        words.append(isa.encode(isa.make("halt")))
        debug.append("")
    return b"".join(words), debug
