"""Verifier run between compiler passes: each check names the broken invariant."""

from __future__ import annotations

from compiler.frontend import Graph
from compiler.ir import Buffer, BufferKind, DramRef, HostOp, PendingInsn, StreamItem
from compiler.memplan import lifetimes
from contract import isa
from contract.hw import HwConfig
from contract.regions import Dram, OperandError, resolve

# DRAM size given to resolve() while addresses are still symbolic (placed at 0).
_UNPLACED_DRAM = 1 << 64


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


def _dram_fields(mnemonic: str, placed: tuple, hw: HwConfig) -> tuple[list[str], list[str]]:
    """The address fields of the DRAM regions an instruction reads and writes."""
    try:
        ops = resolve(isa.make(mnemonic, **dict(placed)), hw, _UNPLACED_DRAM)
    except OperandError as e:
        raise VerifyError(f"{mnemonic}: {e.reason} ({e.fault.name})") from None
    reads = [r.field for r in ops.reads.values() if isinstance(r, Dram)]
    return reads, [r.field for r in ops.writes.values() if isinstance(r, Dram)]


def dram_access(
    item: PendingInsn, hw: HwConfig, cache: dict | None = None
) -> tuple[list[Buffer], list[Buffer]]:
    """The buffers an instruction reads and writes in DRAM, from its operand regions
    (contract.regions.resolve, with every symbolic address at 0; each region names the
    field its address came from). An operand fault here is a lowering bug. Tiled loops
    repeat the same instruction with other DRAM addresses: `cache` resolves it once."""
    placed = tuple(sorted((k, 0 if isinstance(v, DramRef) else v) for k, v in item.args.items()))
    key = (item.mnemonic, placed)
    fields = cache.get(key) if cache is not None else None
    if fields is None:
        try:
            fields = _dram_fields(item.mnemonic, placed, hw)
        except VerifyError as e:
            raise VerifyError(f"{e} (from {item.node})") from None
        if cache is not None:
            cache[key] = fields

    def buffers(names: list[str]) -> list[Buffer]:
        refs = [item.args.get(name) for name in names]
        return [ref.buffer for ref in refs if isinstance(ref, DramRef)]

    return buffers(fields[0]), buffers(fields[1])


def verify_stream(stream: list[StreamItem], buffers: list[Buffer], hw: HwConfig) -> None:
    """Every instruction's operands are legal; every activation is written before it is
    read; every buffer is registered."""
    known = set(buffers)
    written: set[Buffer] = set()
    resolved: dict = {}
    for i, item in enumerate(stream):
        for b in item.buffers():
            if b not in known:
                raise VerifyError(f"item {i} ({item.node}) uses unregistered {b}")
        if isinstance(item, PendingInsn):
            reads, writes = dram_access(item, hw, resolved)
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
