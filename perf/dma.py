"""The DMA engine's timing (rtl/loom_dma.sv against the DRAM of sim/rtl/hdl/loom_axi_dram.sv).

A transfer is a sequence of AXI4 bursts. Reads follow one recurrence over the bursts
(cycles relative to the engine's start cycle, E0):

    A[b] = max(A[b-1] + 1, V[b-Q] + 1, V[b-1] + 1 if burst b waits for b-1's data)
    F[b] = max(A[b] + L + 1, V[b-1] + g)
    V[b] = F[b] + (beats[b] - 1) * g

A is the cycle the address is accepted (the issuer sends one per cycle while fewer than
Q = CoreTiming.bursts_in_flight bursts are in flight, DescDepth), F and V the cycles the
first and the last beat reach the engine (the DRAM answers LatencyCycles = L after the
handshake, from a register: + 1, in order, one beat every g = DramBeatCycles). A
GATHER's row waits for its index, read as a one-beat burst in the same queue.

Writes have no latency in the DRAM model: a burst takes its beats plus one cycle in
which the DRAM answers B and refuses W, so an aligned store takes
3 + sum over bursts of (beats + 1) cycles (first W beat in E3: the SRAM line is read in
E1 and in the byte stream in E2). Where the stream's refill rule holds the SRAM reader
back (rows not aligned to the bus with SRAM lines wider than a beat) that sum is short,
so stores are stepped cycle by cycle (`_store_pipe`, cached per geometry).
"""

from __future__ import annotations

from functools import lru_cache

from perf.timing import MAX_BURST_BEATS, PAGE_BYTES, CoreTiming

# loom_dma.sv: the first AR leaves the cycle after the start (the engine registers the
# instruction in E0); a load is done in the cycle the packer writes its last line.
FIRST_REQUEST = 1
# An empty region: start, then done in the next cycle.
EMPTY_TRANSFER_CYCLES = 2
# Instruction fetch: FETCH_REQ, then the engine sees the request a cycle later and sends
# the AR the cycle after that (relative to the FETCH_REQ cycle).
FETCH_FIRST_REQUEST = 2


# A burst as the engine's descriptor holds it: bytes it carries, offset of its first byte
# in the first bus word.
Piece = tuple[int, int]


@lru_cache(maxsize=1 << 16)
def _row_pieces(page_offset: int, bus_offset: int, nbytes: int, bus: int) -> tuple[Piece, ...]:
    """The bursts of a contiguous run of nbytes whose first byte lies page_offset into a
    4 KiB page and bus_offset into a bus word (loom_dma.sv, the piece the issuer sends
    next: at most 16 beats from the first byte's word, never across 4 KiB)."""
    pieces, pos = [], 0
    while pos < nbytes:
        off = (bus_offset + pos) % bus
        in_page = (page_offset + pos) % PAGE_BYTES
        n = min(nbytes - pos, MAX_BURST_BEATS * bus - off, PAGE_BYTES - in_page)
        pieces.append((n, off))
        pos += n
    return tuple(pieces)


def beats_of(piece: Piece, bus: int) -> int:
    n, off = piece
    return -(-(off + n) // bus)


def run_pieces(addr: int, nbytes: int, t: CoreTiming) -> tuple[Piece, ...]:
    """The bursts of nbytes contiguous bytes from byte address addr."""
    return _row_pieces(addr % PAGE_BYTES, addr % t.bus_bytes, nbytes, t.bus_bytes)


def run_bursts(addr: int, nbytes: int, t: CoreTiming) -> tuple[int, ...]:
    """Beats per burst of nbytes contiguous bytes from byte address addr."""
    return tuple(beats_of(p, t.bus_bytes) for p in run_pieces(addr, nbytes, t))


def region_rows(
    addr: int, rows: int, cols: int, rs: int, cs: int, esize: int, t: CoreTiming
) -> list[tuple[Piece, ...]]:
    """The bursts of each row of a 2-D DMA region, in issue order: a row's contiguous
    bytes in bursts (column stride 1, or a single column), else one single-beat access
    per element (loom_dma.sv: `strided`)."""
    if cs != 1 and cols != 1:
        bus = t.bus_bytes
        return [
            tuple((esize, (addr + (r * rs + c * cs) * esize) % bus) for c in range(cols))
            for r in range(rows)
        ]
    return [run_pieces(addr + r * rs * esize, cols * esize, t) for r in range(rows)]


def read_first_beats(
    beats: list[int],
    waits: list[bool] | None,
    t: CoreTiming,
    first: int,
    pack: list[float] | None = None,
    stream_cycles: float = 0.0,
) -> tuple[list[float], float]:
    """(F of every burst, when the packer has taken the last one) by the recurrence of
    the module docstring, for bursts issued from cycle `first`.

    With `pack` (the packer's cycles for each burst's bytes) the packer is the slower
    side (an SRAM line narrower than a beat): it takes a burst when it has taken the one
    before and the burst's data is there, and the engine accepts a beat only while the
    stream has room, so a burst's last beat comes no sooner than `stream_cycles` (the
    stream's bytes at the packer's rate) before the packer is through it. That is a
    fluid version of the byte stream: within a cycle or two of the RTL, not exact."""
    lat, g = t.dram_latency, float(t.beat_cycles)
    issued = first - 1
    last = float("-inf")
    packed = 0.0
    lasts: list[float] = []
    firsts: list[float] = []
    for b, n in enumerate(beats):
        a = issued + 1
        if b >= t.bursts_in_flight:
            a = max(a, lasts[b - t.bursts_in_flight] + 1)
        if waits is not None and waits[b]:
            a = max(a, last + 1)
        f = max(a + lat + 1, last + g)
        last = f + (n - 1) * g
        if pack is not None:
            # It packs from the cycle after the first beat (or after its last burst's
            # last write) for pack[b] cycles.
            through = max(packed, f) + pack[b]
            last = max(last, through - stream_cycles)
            packed = max(through, last + 1)
        issued = a
        firsts.append(f)
        lasts.append(last)
    return firsts, packed


def packer_bound(t: CoreTiming, esize: int) -> bool:
    """Whether a read beat holds more than the one SRAM line (lanes elements) the packer
    writes per cycle, so the packer, not the bus, sets the pace."""
    return t.lanes * esize * t.beat_cycles < t.bus_bytes


def _pack_cycles(
    rows: list[tuple[Piece, ...]], cols: int, esize: int, t: CoreTiming
) -> list[float]:
    """The packer's cycles per burst: its bytes at a line per cycle, and the row's last
    burst also the partial line of the row's end."""
    line = t.lanes * esize
    out: list[float] = []
    for row in rows:
        out += [n / line for n, _ in row]
        out[-1] += -(-cols // t.lanes) - cols * esize / line
    return out


def _beat_bytes(piece: Piece, bus: int) -> list[int]:
    """Bytes each beat of a burst adds to the stream (its first from the first byte)."""
    n, off = piece
    out, left = [min(bus - off, n)], n - min(bus - off, n)
    while left:
        out.append(min(bus, left))
        left -= out[-1]
    return out


def _last_row_packed(
    pieces: list[Piece], firsts: list[float], cols: int, esize: int, t: CoreTiming
) -> int:
    """The cycle the packer writes the last row's last line (loom_dma.sv, "load: pack
    stream elements into SRAM lines"): each cycle it takes the elements the stream holds
    up to the end of the current line or row, and writes the line when it is full or the
    row ends. A beat's bytes are in the stream from the cycle after it arrives. Earlier
    rows are taken to be packed by then (the bus is never faster than the packer on a
    line-wide beat)."""
    arrivals: list[tuple[int, int]] = []  # (first cycle the bytes can be packed, bytes)
    for piece, f in zip(pieces, firsts, strict=True):
        for j, nbytes in enumerate(_beat_bytes(piece, t.bus_bytes)):
            arrivals.append((round(f + j * t.beat_cycles) + 1, nbytes))
    cycle, held, col, fill, k = arrivals[0][0], 0, 0, 0, 0
    while True:
        while k < len(arrivals) and arrivals[k][0] <= cycle:
            held += arrivals[k][1]
            k += 1
        n = min(held // esize, t.lanes - fill, cols - col)
        held -= n * esize
        col += n
        fill += n
        if fill == t.lanes or (n and col == cols):
            fill = 0
            if col == cols:
                return cycle
        cycle += 1


def _read_cycles(
    rows: list[tuple[Piece, ...]],
    beats: list[int],
    waits: list[bool] | None,
    data: list[bool],
    cols: int,
    esize: int,
    t: CoreTiming,
) -> int:
    """EXEC cycles of a read whose data rows are `rows` and whose bursts are `beats`
    (`data`: which carry row data, not an index): the recurrence, then the packer
    through the last row (done in the cycle it writes the last line)."""
    if packer_bound(t, esize):
        per_burst = iter(_pack_cycles(rows, cols, esize, t))
        pack = [next(per_burst) if is_data else 0.0 for is_data in data]
        stream_cycles = t.stream_bytes / (t.lanes * esize)
        _, packed = read_first_beats(beats, waits, t, FIRST_REQUEST, pack, stream_cycles)
        return round(packed) + 1
    firsts, _ = read_first_beats(beats, waits, t, FIRST_REQUEST)
    k = len(rows[-1])
    return _last_row_packed(list(rows[-1]), firsts[-k:], cols, esize, t) + 1


def load_cycles(rows: list[tuple[Piece, ...]], cols: int, esize: int, t: CoreTiming) -> int:
    """EXEC cycles of a DMA_LD."""
    if not rows:
        return EMPTY_TRANSFER_CYCLES
    beats = [beats_of(p, t.bus_bytes) for row in rows for p in row]
    return _read_cycles(rows, beats, None, [True] * len(beats), cols, esize, t)


def gather_cycles(row_pieces: list[tuple[Piece, ...]], cols: int, esize: int, t: CoreTiming) -> int:
    """EXEC cycles of a GATHER: per row a one-beat index read, then the row's bursts,
    which wait for the index (loom_dma.sv: ISS_INDEX, ISS_WAIT_IDX, ISS_ROW)."""
    if not row_pieces:
        return EMPTY_TRANSFER_CYCLES
    beats: list[int] = []
    waits: list[bool] = []
    data: list[bool] = []
    for row in row_pieces:
        beats.append(1)  # the index
        waits.append(False)
        data.append(False)
        for i, p in enumerate(row):
            beats.append(beats_of(p, t.bus_bytes))
            waits.append(i == 0)
            data.append(True)
    return _read_cycles(row_pieces, beats, waits, data, cols, esize, t)


class StoreDeadlock(RuntimeError):
    """A DMA_ST the RTL's store path cannot finish (loom_dma.sv would hang: its SRAM reader
    waits for room in the byte stream that only the W side can make, and the W side waits
    for bytes only the reader can bring). Happens where an SRAM line is as wide as the
    stream (fp32 lines of 32 lanes, 128 B) and a row is not aligned to the bus."""


def store_cycles(rows: list[tuple[Piece, ...]], cols: int, esize: int, t: CoreTiming) -> int:
    """EXEC cycles of a DMA_ST."""
    if not rows:
        return EMPTY_TRANSFER_CYCLES
    pieces = tuple(p for row in rows for p in row)
    return _store_pipe(
        pieces, len(rows), cols, esize, t.lanes, t.bus_bytes, t.stream_bytes, t.bursts_in_flight
    )


@lru_cache(maxsize=4096)
def _store_pipe(
    pieces: tuple[Piece, ...],
    rows: int,
    cols: int,
    esize: int,
    lanes: int,
    bus: int,
    stream: int,
    depth: int,
) -> int:
    """The store path of loom_dma.sv cycle by cycle from E1 (no closed form is exact):
    the SRAM reader reads one line of the region per cycle while the bytes in the stream,
    those arriving from last cycle's read and the new line fit in StreamBytes; the W side
    sends a beat when the stream holds its bytes and the DRAM is not answering B, which
    it does for one cycle after each burst's last beat. An unaligned row leaves bytes in
    the stream that hold the reader back (fp32 rows on a 256-bit bus: 2 beats per 3
    cycles instead of 1 per cycle)."""
    issued = 0  # bursts whose AW went out
    in_flight: list[list[int]] = []  # [bytes left, first offset, first beat?] per AW'd burst
    accepted = 0  # AWs the DRAM holds (W may follow from the cycle after the handshake)
    held = row = col = 0
    line_pending = 0  # bytes of the line read last cycle, pushed this cycle
    b_cycle = False  # the DRAM answers B this cycle: no W beat
    b_wait = 0  # bursts whose B has not arrived
    cycle = 1
    while True:
        push = line_pending
        aw = issued < len(pieces) and len(in_flight) < depth
        pop, last, take = 0, False, 0
        if in_flight and accepted and not b_cycle:
            left, off, first = in_flight[0]
            take = min(bus - (off if first else 0), left)
            if held >= take:
                pop, last = take, take == left
                in_flight[0] = [left - take, off, 0]
        line_pending = 0
        ncols = min(cols - col, lanes)
        if row < rows and held + push + ncols * esize <= stream:
            line_pending = ncols * esize
            col += ncols
            if col == cols:
                row, col = row + 1, 0
        b_arrives = b_cycle
        b_wait += aw - b_arrives
        if last:
            in_flight.pop(0)
            accepted -= 1
        if aw:
            in_flight.append([*pieces[issued], 1])
            issued += 1
        if issued == len(pieces) and not in_flight and not b_wait and not push and row >= rows:
            return cycle + 1
        if not (push or aw or pop or line_pending or b_arrives):
            # Nothing moved, so nothing ever will: the W beat needs more bytes than the
            # stream holds, and the next line does not fit beside them.
            raise StoreDeadlock(
                f"the store path stops: {held} B in the {stream}-byte stream, a beat needs"
                f" {take} B, the next SRAM line is {ncols * esize} B"
            )
        accepted += aw
        b_cycle = last
        held += push - pop
        cycle += 1


def fetch_stall_cycles(pc: int, words: int, t: CoreTiming) -> int:
    """Cycles the control unit spends in FETCH_REQ and FETCH_WAIT for one fetch request of
    `words` instructions from pc (the request cycle up to the cycle the last beat
    arrives, in which the control unit sees fetch_done)."""
    beats = list(run_bursts(pc, words * t.insn_bytes, t))
    firsts, _ = read_first_beats(beats, None, t, FETCH_FIRST_REQUEST)
    return round(firsts[-1]) + (beats[-1] - 1) * t.beat_cycles + 1
