"""Verifier run between compiler passes: each check names the broken invariant."""

from __future__ import annotations

from compiler.frontend import Graph
from compiler.hw import HwConfig
from compiler.ir import Buffer, BufferKind, HostOp, PendingInsn, StreamItem
from compiler.memplan import lifetimes


class VerifyError(AssertionError):
    pass


def verify_graph(g: Graph) -> None:
    names = set()
    for node in g.graph.nodes:
        if node.name in names:
            raise VerifyError(f"duplicate node name {node.name}")
        names.add(node.name)
        if (
            node.op == "placeholder"
            and node.name not in g.constants
            and node.name not in g.user_inputs
        ):
            raise VerifyError(f"placeholder {node.name} is neither a constant nor an input")
    g.graph.lint()


def verify_stream(stream: list[StreamItem], buffers: list[Buffer]) -> None:
    """Every activation is written before it is read; every buffer is registered."""
    known = set(buffers)
    written: set[Buffer] = set()
    for i, item in enumerate(stream):
        for b in item.buffers():
            if b not in known:
                raise VerifyError(f"item {i} ({item.node}) uses unregistered {b}")
        if isinstance(item, PendingInsn):
            reads = [
                v.buffer
                for k, v in item.args.items()
                if k in ("dram", "table_addr", "idx") and item.mnemonic != "dma_st"
            ]
            writes = [item.args["dram"].buffer] if item.mnemonic == "dma_st" else []
        elif isinstance(item, HostOp):
            reads = [t.buffer for t in item.inputs]
            writes = [t.buffer for t in item.outputs]
        else:
            reads, writes = item.buffers(), []
        for b in reads:
            if b.kind in (BufferKind.ACTIVATION, BufferKind.OUTPUT) and b not in written:
                raise VerifyError(f"item {i} ({item.node}) reads {b.name} before it is written")
        written.update(writes)


def verify_placement(stream: list[StreamItem], buffers: list[Buffer], hw: HwConfig) -> None:
    """Placed buffers fit in DRAM, and no two buffers live at once overlap."""
    spans = lifetimes(stream)
    placed = [b for b in buffers if b.addr is not None]
    for b in placed:
        if b.addr < 0 or b.addr + b.nbytes > hw.dram_bytes:
            raise VerifyError(f"{b} lies outside DRAM")
    always = (BufferKind.CONSTANT, BufferKind.INPUT, BufferKind.OUTPUT, BufferKind.STATE)
    big = len(stream) + 1
    ivs = sorted(
        (
            b.addr,
            b.addr + b.nbytes,
            *(spans.get(b, (0, big)) if b.kind not in always else (0, big)),
            b.name,
        )
        for b in placed
    )
    for i, (_a0, a1, f0, l0, n0) in enumerate(ivs):
        for b0, _b1, f1, l1, n1 in ivs[i + 1 :]:
            if b0 >= a1:
                break
            if f0 <= l1 and f1 <= l0:
                raise VerifyError(f"buffers {n0} and {n1} overlap while both live")
