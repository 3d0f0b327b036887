"""Loop batching for the torch backend: find the compiler's tile loops in a device
segment's instruction stream and run each loop body instruction once for all
iterations, as one batched tensor operation.

A tiled program repeats a body of P instructions N times with the same shapes and
addresses that step by a constant per iteration (SRAM buffers reused, DRAM tiles
advancing). Found innermost first, loops nest: a loop is itself a node that the next
level may find repeated. The batched order runs body instruction j for every
iteration before body instruction j + 1, which keeps the program's sequential result
when (checked per loop, else the loop is left as it is):

- SRAM is privatised per iteration: every SRAM write of the body goes to a private
  copy (one per iteration, covering the body's written window of each memory), so
  buffer reuse across iterations is no dependence. This needs written addresses that
  do not move between iterations, and every read of the window to read what the same
  iteration wrote before it (a read of a value from an earlier iteration, such as an
  accumulation over iterations, is a true dependence: not batched). Reads outside the
  window (operands loaded before the loop) come from the shared SRAM and may move.
  After the loop the last iteration's private values are copied back ("live-out").
- DRAM is not privatised: no byte written by one iteration may be read or written by
  another (checked exactly on the row intervals of every access).

The analysis works on the operand regions of contract.regions, the same read and write
sets the ISA model executes on; which fields may step between iterations is their role
(contract.isa.POSITION_ROLES).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.hw import HwConfig
from contract.isa import ADDRESS_ROLES, POSITION_ROLES, Insn, Mem, Opcode
from contract.regions import Dram, Operands, Region, Sram

MAX_BODY = 64  # longest loop body searched for, in nodes
MAX_LEVELS = 6  # loop nesting depth searched for
# Private SRAM copies one loop nest may hold (fp32 elements, 512 MiB): a loop whose
# copies would exceed it stays unbatched at that level (its inner loops still batch).
MAX_PRIVATE_ELEMS = 1 << 27
# Never batched: barriers for the host, data-dependent addressing, no-ops.
UNBATCHED = {Opcode.CHECKPOINT, Opcode.GATHER, Opcode.NOP, Opcode.FENCE, Opcode.HALT}


@dataclass
class Access:
    """One region a node touches, as seen from outside it: at the node's origin (every
    inner loop counter 0), with `grid` = (count, address step) per inner loop it is
    swept over, outermost first. `slot` indexes the node's address vector."""

    region: Region
    write: bool
    slot: int
    grid: tuple[tuple[int, int], ...] = ()


@dataclass
class Leaf:
    """One instruction."""

    index: int
    pc: int
    insn: Insn
    ops: Operands
    key: tuple = ()
    addrs: tuple[int, ...] = ()
    accesses: list[Access] = field(default_factory=list)

    def __post_init__(self):
        regions = self.ops.regions()
        fmt = self.insn.fmt
        # The address vector: every region's address, then the other position fields
        # (VMASK's offset); everything else must be equal between iterations.
        self.addrs = tuple(r.addr for r in regions) + tuple(
            self.insn.args[f.name] for f in fmt.by_role(*POSITION_ROLES - ADDRESS_ROLES)
        )
        if self.insn.opcode in UNBATCHED:
            self.key = ("unbatched", self.index)
        else:
            moving = {f.name for f in fmt.by_role(*POSITION_ROLES)}
            fixed = sorted((k, v) for k, v in self.insn.args.items() if k not in moving)
            self.key = (self.insn.opcode, *fixed)
        self.vector = np.asarray(self.addrs, dtype=np.int64)
        n_reads = len(self.ops.reads)
        self.accesses = [Access(r, s >= n_reads, s) for s, r in enumerate(regions)]

    @property
    def fixed_slots(self) -> frozenset[int]:
        return frozenset()


@dataclass
class Loop:
    """`count` iterations of `body`; deltas[j] is body node j's address-vector step per
    iteration. windows: per SRAM memory, the [lo, hi) element range the body writes
    (privatised per iteration)."""

    count: int
    body: list
    deltas: list[tuple[int, ...]]
    windows: dict[Mem, tuple[int, int]]
    accesses: list[Access]
    fixed_slots: frozenset[int]  # SRAM slots private inside: must not move in outer loops
    key: tuple = ()
    addrs: tuple[int, ...] = ()
    dead: set = field(default_factory=set)  # live-out regions nothing reads: not copied
    scratch: int = 0  # fp32 elements of private copies for this nest, at its deepest

    def __post_init__(self):
        self.key = ("loop", self.count, tuple(n.key for n in self.body), tuple(self.deltas))
        self.addrs = tuple(a for n in self.body for a in n.addrs)
        self.vector = np.asarray(self.addrs, dtype=np.int64)


Node = Leaf | Loop


# ---------------------------------------------------------------------- footprints
def grid_offsets(grid: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Address offset of every point of a grid (all inner iterations)."""
    offs = np.zeros(1, dtype=np.int64)
    for count, step in grid:
        offs = (offs[:, None] + step * np.arange(count, dtype=np.int64)[None, :]).ravel()
    return offs


def sram_span(region: Sram, grid) -> tuple[int, int]:
    """[lo, hi) elements the region covers over its grid."""
    lo = region.addr + sum(min(0, (n - 1) * s) for n, s in grid)
    hi = region.end + sum(max(0, (n - 1) * s) for n, s in grid)
    return lo, hi


def mark(mask: np.ndarray, base: int, region: Sram, grid) -> np.ndarray:
    """Set the elements of the region over its grid in `mask` (element base..)."""
    if region.rows and region.cols:
        for off in grid_offsets(grid):
            start = region.addr + int(off) - base
            rows = np.lib.stride_tricks.as_strided(
                mask[start:], (region.rows, region.cols), (region.stride, 1)
            )
            rows[...] = True
    return mask


def dram_intervals(region: Dram, grid) -> tuple[np.ndarray, np.ndarray]:
    """Byte intervals [lo, hi) covering the region over its grid (exact for the rows of
    a region with unit column stride; a strided row is covered by its span)."""
    if not (region.rows and region.cols):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    size = region.size
    if region.cs == 1 and region.rs == region.cols or region.rows == 1:
        starts = np.array([region.addr], np.int64)
        length = region.end - region.addr
    elif region.cs <= region.rs:
        starts = region.addr + size * region.rs * np.arange(region.rows, dtype=np.int64)
        length = ((region.cols - 1) * region.cs + 1) * size
    else:  # column-major access: one interval per column
        starts = region.addr + size * region.cs * np.arange(region.cols, dtype=np.int64)
        length = ((region.rows - 1) * region.rs + 1) * size
    lo = (starts[None, :] + grid_offsets(grid)[:, None]).ravel()
    return lo, lo + length


def _union_per_group(lo, hi, group):
    """Merge the intervals of each group; returns (lo, hi, group) of disjoint pieces."""
    if lo.size == 0:
        return lo, hi, group
    order = np.lexsort((lo, group))
    lo, hi, group = lo[order], hi[order], group[order]
    big = np.int64(1) << 36  # above every DRAM byte address
    run = np.maximum.accumulate(hi + group * big) - group * big
    start = np.ones(lo.size, dtype=bool)
    start[1:] = (group[1:] != group[:-1]) | (lo[1:] > run[:-1])
    first = np.flatnonzero(start)
    last = np.append(first[1:], lo.size) - 1
    return lo[first], run[last], group[first]


def _coverage(lo, hi, points):
    """How many of the intervals cover each of `points`."""
    return np.searchsorted(np.sort(lo), points, side="right") - np.searchsorted(
        np.sort(hi), points, side="right"
    )


def cross_iteration_conflict(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]) -> bool:
    """parts: (lo, hi, iteration, is_write) interval arrays. True when a byte written
    in one iteration is read or written in another."""
    if not any(w for *_, w in parts):
        return False
    lo = np.concatenate([p[0] for p in parts])
    hi = np.concatenate([p[1] for p in parts])
    it = np.concatenate([p[2] for p in parts])
    wr = np.concatenate([np.full(p[0].size, p[3]) for p in parts])
    a_lo, a_hi, _ = _union_per_group(lo, hi, it)
    w_lo, w_hi, _ = _union_per_group(lo[wr], hi[wr], it[wr])
    if w_lo.size == 0:
        return False
    # A conflict shows at the start of some piece: coverage only changes there.
    points = np.unique(np.concatenate([a_lo, w_lo]))
    return bool(np.any((_coverage(w_lo, w_hi, points) >= 1) & (_coverage(a_lo, a_hi, points) >= 2)))


# ---------------------------------------------------------------------- legality
def analyse(hw: HwConfig, body: list[Node], deltas: list[tuple[int, ...]], count: int):
    """The Loop `count` x `body` if batching it keeps the sequential result, else None."""
    items = []  # (body position, access, step per iteration, slot in the loop's vector)
    sram_slots: set[int] = set()
    offset = 0
    for j, node in enumerate(body):
        step = deltas[j]
        if any(step[s] for s in node.fixed_slots):
            return None  # a buffer private inside the node moves between iterations
        sram_slots |= {s + offset for s in node.fixed_slots}
        for acc in node.accesses:
            items.append((j, acc, step[acc.slot], acc.slot + offset))
        offset += len(node.addrs)

    windows: dict[Mem, tuple[int, int]] = {}
    for _, acc, step, _ in items:
        if step < 0:
            return None  # tensor views cannot step backwards
        if acc.write and isinstance(acc.region, Sram):
            if step or any(s for _, s in acc.grid):
                return None  # written SRAM address moves between iterations
            lo, hi = sram_span(acc.region, acc.grid)
            old = windows.get(acc.region.space, (lo, hi))
            windows[acc.region.space] = (min(lo, old[0]), max(hi, old[1]))

    inner = max((n.scratch for n in body if isinstance(n, Loop)), default=0)
    scratch = count * (sum(hi - lo for lo, hi in windows.values()) + inner)
    if scratch > MAX_PRIVATE_ELEMS:
        return None  # too much memory for the private copies

    # Elements of each window written so far in one iteration.
    written = {space: np.zeros(hi - lo, dtype=bool) for space, (lo, hi) in windows.items()}
    outside: list[Access] = []
    live_out: dict[Region, Access] = {}
    dram_parts = []
    by_node: list[list] = [[] for _ in body]
    for it in items:
        by_node[it[0]].append(it)
    for mine in by_node:
        for _, acc, step, slot in sorted(mine, key=lambda it: it[1].write):
            region, outer = acc.region, ((count, step),) + acc.grid
            if isinstance(region, Dram):
                lo, hi = dram_intervals(region, acc.grid)
                shift = step * np.arange(count, dtype=np.int64)[:, None]
                it = np.repeat(np.arange(count), lo.size)
                dram_parts.append(((lo + shift).ravel(), (hi + shift).ravel(), it, acc.write))
                outside.append(Access(region, acc.write, slot, outer))
                continue
            space = region.space
            if acc.write:
                mark(written[space], windows[space][0], region, acc.grid)
                live_out.setdefault(region, Access(region, True, slot))
                continue
            window = windows.get(space)
            lo, hi = sram_span(region, outer)
            if window is None or hi <= window[0] or window[1] <= lo:
                outside.append(Access(region, False, slot, outer))  # shared: read-only here
                continue
            if step or not (window[0] <= lo and hi <= window[1]):
                return None
            reads = mark(np.zeros_like(written[space]), window[0], region, acc.grid)
            if not np.all(written[space][reads]):
                return None  # reads a value from before this iteration
            sram_slots.add(slot)  # private read
    if cross_iteration_conflict(dram_parts):
        return None
    # Private inside the loop, so fixed in any outer loop: children's private buffers,
    # private reads, and every SRAM write (its window is this loop's).
    sram_slots |= {slot for _, acc, _, slot in items if acc.write and isinstance(acc.region, Sram)}
    accesses = outside + list(live_out.values())
    return Loop(count, body, deltas, windows, accesses, frozenset(sram_slots), scratch=scratch)


# ---------------------------------------------------------------------- detection
def _run_lengths(ok: np.ndarray) -> np.ndarray:
    """For each position, how many consecutive True values start there."""
    n = ok.size
    pos = np.arange(n)
    nxt = np.where(ok, n, pos)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]
    return nxt - pos


def _fingerprints(nodes: list[Node]) -> np.ndarray:
    """Two random linear projections of each address vector (wrapping int64): equal
    steps give equal fingerprint steps; candidates are then checked exactly."""
    width = max((len(n.addrs) for n in nodes), default=0)
    weights = np.random.default_rng(0).integers(1, 2**62, size=(2, width), dtype=np.int64)
    out = np.zeros((len(nodes), 2), dtype=np.int64)
    with np.errstate(over="ignore"):
        for x, node in enumerate(nodes):
            v = node.vector
            out[x] = weights[:, : v.size] @ v
    return out


def _affine(nodes: list[Node], x: int, period: int, count: int, deltas) -> bool:
    """Whether every iteration's addresses are the first's plus k steps."""
    k = np.arange(count, dtype=np.int64)[:, None]
    for j in range(period):
        v = np.stack([nodes[x + i * period + j].vector for i in range(count)])  # [count, width]
        if not (v == v[0] + k * np.asarray(deltas[j], dtype=np.int64)).all():
            return False
    return True


def find_loops(hw: HwConfig, nodes: list[Node]) -> list[Node]:
    """One level: replace each repeated run of nodes that is safe to batch by a Loop."""
    n = len(nodes)
    if n < 2:
        return nodes
    ids: dict[tuple, int] = {}
    key = np.array([ids.setdefault(node.key, len(ids)) for node in nodes], dtype=np.int64)
    fp = _fingerprints(nodes)
    best_cover = np.zeros(n, dtype=np.int64)
    best_period = np.zeros(n, dtype=np.int64)
    small_cover = np.zeros(n, dtype=np.int64)  # the shortest-period loop at each node
    small_period = np.zeros(n, dtype=np.int64)
    for period in range(1, min(MAX_BODY, n // 2) + 1):
        same = np.zeros(n, dtype=bool)
        same[: n - period] = key[: n - period] == key[period:]
        with np.errstate(over="ignore"):
            step = np.zeros_like(fp)
            step[: n - period] = fp[period:] - fp[: n - period]
        affine = np.zeros(n, dtype=bool)
        m = n - 2 * period
        if m > 0:
            affine[:m] = (
                same[:m]
                & same[period : period + m]
                & (step[:m] == step[period : period + m]).all(1)
            )
        two = _run_lengths(same) >= period
        count = np.where(two, 2 + _run_lengths(affine) // period, 0)
        cover = count * period
        better = cover > best_cover
        best_cover[better] = cover[better]
        best_period[better] = period
        first = (cover > 0) & (small_period == 0)
        small_period[first] = period
        small_cover[first] = cover[first]

    tried: dict[tuple[int, int, int], Loop | None] = {}

    def loop_at(x: int, period: int, cover: int) -> Loop | None:
        """The loop at x if its iterations match exactly and batching it is safe."""
        at = (x, period, cover)
        if at not in tried:
            tried[at] = None
            ids = key[x : x + cover].reshape(cover // period, period)
            if (ids == ids[0]).all():
                # Legality on the first step (cheap to refuse), then every iteration.
                deltas = [
                    tuple((nodes[x + period + j].vector - nodes[x + j].vector).tolist())
                    for j in range(period)
                ]
                loop = analyse(hw, nodes[x : x + period], deltas, cover // period)
                if loop is not None and _affine(nodes, x, period, cover // period, deltas):
                    tried[at] = loop
        return tried[at]

    def holds_inner_loop(x: int, period: int) -> bool:
        """Whether the body [x, x + period) holds a whole, batchable shorter loop."""
        for y in range(x, min(x + period, n)):
            p, c = int(small_period[y]), int(small_cover[y])
            if 0 < p < period and y + c <= x + period and loop_at(y, p, c) is not None:
                return True
        return False

    out: list[Node] = []
    x = 0
    while x < n:
        cover, period = int(best_cover[x]), int(best_period[x])
        # Inner loops first: a body holding a shorter loop is left for the next level,
        # which finds it as the outer loop of that one (nested, so fewer steps).
        if cover and holds_inner_loop(x, period):
            if 0 < small_period[x] < period and loop_at(
                x, int(small_period[x]), int(small_cover[x])
            ):
                cover, period = int(small_cover[x]), int(small_period[x])
            else:
                cover = 0
        # A loop starting a little later that covers more wins (a prologue node).
        end = min(n, x + period)
        later = best_cover[x + 1 : end] - np.arange(1, end - x)
        loop = None
        if cover and not (later.size and later.max() > cover):
            loop = loop_at(x, period, cover)
        if loop is None:
            out.append(nodes[x])
            x += 1
        else:
            out.append(loop)
            x += cover
    return out


def batch(hw: HwConfig, leaves_: list[Leaf]) -> list[Node]:
    """The segment as top-level nodes, loops found up to MAX_LEVELS deep."""
    nodes: list[Node] = list(leaves_)
    for _ in range(MAX_LEVELS):
        found = find_loops(hw, nodes)
        if len(found) == len(nodes):
            break
        nodes = found
    prune_live_outs(nodes)
    return nodes


def prune_live_outs(nodes: list[Node], live_at_end=lambda region: True) -> None:
    """Mark each loop's live-out regions that the nodes after it overwrite before any
    reads them: their copy-out can be skipped. live_at_end(region) says whether a value
    left at the end of `nodes` is still needed (at a loop body's end: when the
    enclosing loop's own live-out of it is)."""
    for x, node in enumerate(nodes):
        if not isinstance(node, Loop):
            continue
        outs = [a.region for a in node.accesses if a.write and isinstance(a.region, Sram)]
        node.dead = {r for r in outs if not _read_later(r, nodes[x + 1 :], live_at_end)}
        live = [r for r in outs if r not in node.dead]
        prune_live_outs(node.body, lambda r, live=live: any(_overlap(r, o) for o in live))


def _overlap(a: Sram, b: Sram) -> bool:
    return a.space == b.space and a.addr < b.end and b.addr < a.end


def _read_later(region: Sram, later: list[Node], live_at_end) -> bool:
    remaining = mark(np.zeros(region.end - region.addr, dtype=bool), region.addr, region, ())
    for node in later:
        for acc in node.accesses:  # reads (a node reads its operands before it writes)
            if acc.write or not isinstance(acc.region, Sram) or acc.region.space != region.space:
                continue
            lo, hi = sram_span(acc.region, acc.grid)
            lo, hi = max(lo, region.addr), min(hi, region.end)
            if lo < hi and remaining[lo - region.addr : hi - region.addr].any():
                return True
        for acc in node.accesses:
            r = acc.region
            if acc.write and isinstance(r, Sram) and r.space == region.space:
                lo, hi = max(r.addr, region.addr), min(r.end, region.end)
                if lo < hi:  # clear what this write covers
                    covered = mark(np.zeros(r.end - r.addr, dtype=bool), r.addr, r, ())
                    remaining[lo - region.addr : hi - region.addr] &= ~covered[
                        lo - r.addr : hi - r.addr
                    ]
        if not remaining.any():
            return False
    return live_at_end(region)
