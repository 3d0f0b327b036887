"""DRAM memory planner.

Layout: [code][constants][inputs, outputs, state][activations]. Constants and I/O
each get their own address; activations are placed by lifetime (first to last stream
item that touches the buffer, views included) with greedy-by-size offsets, so buffers
whose lifetimes do not overlap share memory. Every region is ALIGN-byte aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir import Buffer, BufferKind, StreamItem
from contract.hw import CONFIG_DIR, HwConfig, load_hw

ALIGN = 64


def align(x: int, a: int = ALIGN) -> int:
    return -(-x // a) * a


@dataclass
class MemoryPlan:
    code_bytes: int
    constants: tuple[int, int]  # [start, end)
    io: tuple[int, int]
    activations: tuple[int, int]
    activation_peak_live: int  # lower bound: the most bytes live at once
    activation_no_reuse: int  # what activations would take without reuse
    total: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


def lifetimes(stream: list[StreamItem]) -> dict[Buffer, tuple[int, int]]:
    spans: dict[Buffer, tuple[int, int]] = {}
    for i, item in enumerate(stream):
        for buf in item.buffers():
            first, _ = spans.get(buf, (i, i))
            spans[buf] = (first, i)
    return spans


def greedy_offsets(items: list[tuple[int, int, int]]) -> list[int]:
    """Offsets for (size, first, last) items such that no two items whose [first, last]
    intervals intersect overlap in memory. Largest first, each at the lowest fit."""
    order = sorted(range(len(items)), key=lambda i: (-items[i][0], items[i][1]))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets = [0] * len(items)
    for i in order:
        size, first, last = items[i]
        conflicts = sorted((o, s) for o, s, f, la in placed if f <= last and first <= la)
        offset = 0
        for o, s in conflicts:
            if offset + size <= o:
                break
            offset = max(offset, align(o + s))
        offsets[i] = offset
        placed.append((offset, size, first, last))
    return offsets


def peak_live(items: list[tuple[int, int, int]]) -> int:
    events = sorted([(f, s) for s, f, _ in items] + [(la + 1, -s) for s, _, la in items])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def plan_memory(
    stream: list[StreamItem], buffers: list[Buffer], code_bytes: int, hw: HwConfig
) -> MemoryPlan:
    spans = lifetimes(stream)
    used = [b for b in buffers if b in spans or b.kind in (BufferKind.INPUT, BufferKind.OUTPUT)]
    cursor = align(code_bytes)
    const_start = cursor
    for b in used:
        if b.kind == BufferKind.CONSTANT:
            b.addr, cursor = cursor, align(cursor + b.nbytes)
    io_start = const_start_io = cursor
    for b in used:
        if b.kind in (BufferKind.INPUT, BufferKind.OUTPUT, BufferKind.STATE):
            b.addr, cursor = cursor, align(cursor + b.nbytes)
    act = [b for b in used if b.kind == BufferKind.ACTIVATION]
    items = [(b.nbytes, *spans[b]) for b in act]
    act_start = cursor
    for b, off in zip(act, greedy_offsets(items), strict=True):
        b.addr = act_start + off
    act_end = max([b.addr + b.nbytes for b in act], default=act_start)
    total = align(act_end)
    if total > hw.dram_bytes:
        bigger = [p.stem for p in sorted(CONFIG_DIR.glob("*.yaml"))
                  if load_hw(p).dram_bytes >= total]  # fmt: skip
        raise MemoryError(
            f"program needs {total / 2**20:.1f} MiB of DRAM; the"
            f" {hw.name} core has {hw.dram_mib} MiB"
            + (f" (HW={bigger[0]} has enough)" if bigger else "")
        )
    return MemoryPlan(
        code_bytes,
        (const_start, io_start),
        (const_start_io, act_start),
        (act_start, act_end),
        peak_live(items),
        sum(align(s) for s, _, _ in items),
        total,
    )
