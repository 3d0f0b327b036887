"""Each instruction's execution cycles on the RTL core, from its decoded fields.

`exec_cycles(insn, t)` is the time the instruction's unit is busy (the RTL's
DMA_BUSY / MXU_BUSY / VPU_BUSY counters count exactly these cycles: `active` equals the
unit from the cycle after issue up to and including the done cycle). Fetch and issue
are the control unit's and depend on the instruction's place in the code, not on its
fields: perf/schedule.py adds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from contract.isa import DType, Insn, Opcode
from perf import dma
from perf.timing import PAGE_BYTES, CoreTiming

# loom_mxu.sv: the start cycle (PH_IDLE sees start), then per C tile INIT, STREAM, WRITE.
MXU_START_CYCLES = 1
# INIT: one cycle to clear; bias: read the row, take it a cycle later; acc: read C's
# mrows lines, each taken a cycle later.
MXU_INIT_ZERO = 1
MXU_INIT_BIAS = 2
MXU_INIT_ACC_EXTRA = 1  # + mrows
# STREAM: block 0 loads for D cycles, then k steps, and the last step reaches the far
# PE mrows + ncols - 2 cycles later (loom_mxu.sv: stream_len).
MXU_STREAM_SKEW = -2
# PH_FINISH: an empty product (m or n zero) is done the cycle after start.
MXU_EMPTY_CYCLES = 2
# loom_vpu.sv: start cycle, one READ per line, the EXEC stage of the last line, the done
# cycle; an empty region only the start and done cycles.
VPU_PIPELINE_CYCLES = 3
VPU_EMPTY_CYCLES = 2


@dataclass(frozen=True)
class ExecCost:
    """One instruction's unit time and the work it does."""

    unit: str  # ctrl | dma | mxu | vpu
    cycles: int  # EXEC cycles (0 for control instructions: they retire in ISSUE)
    macs: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    bursts: int = 0  # AXI4 bursts of a DMA instruction (fetches excluded)


def _esize(dtype: int) -> int:
    return DType(dtype).size


def mxu_cycles(m: int, n: int, k: int, acc: bool, use_bias: bool, t: CoreTiming) -> int:
    """MATMUL: sum over C tiles (mrows x ncols <= D x D) of INIT + STREAM + WRITE."""
    d = t.array_dim
    if m == 0 or n == 0:
        return MXU_EMPTY_CYCLES
    total = MXU_START_CYCLES
    # Tiles come in at most two row heights and two column widths (full and remainder).
    heights = [(d, m // d)] + ([(m % d, 1)] if m % d else [])
    widths = [(d, n // d)] + ([(n % d, 1)] if n % d else [])
    for mrows, mcount in heights:
        if acc:
            init = mrows + MXU_INIT_ACC_EXTRA
        elif use_bias:
            init = MXU_INIT_BIAS
        else:
            init = MXU_INIT_ZERO
        for ncols, ncount in widths:
            stream = d + k + mrows + ncols + MXU_STREAM_SKEW
            total += mcount * ncount * (init + stream + mrows)
    return total


def vpu_cycles(rows: int, cols: int, reduce: bool, t: CoreTiming) -> int:
    """MOVE, VBIN, VUNARY, VREDUCE, VMASK: one line (D lanes) per cycle. The special
    functions are combinational in loom_fp_pkg: exp, recip, rsqrt, tanh and erf cost the
    same cycle as an add. VREDUCE of zero columns still visits each row once."""
    if rows == 0 or (cols == 0 and not reduce):
        return VPU_EMPTY_CYCLES
    chunks = max(1, -(-cols // t.array_dim))
    return rows * chunks + VPU_PIPELINE_CYCLES


@lru_cache(maxsize=1 << 14)
def _transfer(
    load: bool,
    page_addr: int,
    row_step: int,
    col_step: int,
    unit_stride: bool,
    rows: int,
    cols: int,
    esize: int,
    t: CoreTiming,
) -> tuple[int, int]:
    """(EXEC cycles, bursts) of a DMA_LD / DMA_ST. Its bursts depend on the addresses only
    through their offsets in a 4 KiB page (which fix the bus-word offsets too: the bus is
    a power of two of at most 128 bytes), so a transfer is costed once per geometry."""
    rs, cs = row_step // esize, 1 if unit_stride else col_step // esize
    if not unit_stride and cs == 1:
        # A column stride of 1 + a whole page reduces to 1: keep the engine's strided walk
        # (the same page offsets as the real stride).
        cs = 1 + PAGE_BYTES // esize
    pieces = dma.region_rows(page_addr, rows, cols, rs, cs, esize, t)
    bursts = sum(len(row) for row in pieces)
    if load:
        return dma.load_cycles(pieces, cols, esize, t), bursts
    return dma.store_cycles(pieces, cols, esize, t), bursts


def exec_cost(insn: Insn, t: CoreTiming) -> ExecCost:
    op = insn.opcode
    if op in (Opcode.NOP, Opcode.HALT, Opcode.FENCE, Opcode.CHECKPOINT):
        return ExecCost("ctrl", 0)
    if op in (Opcode.DMA_LD, Opcode.DMA_ST):
        esize = _esize(insn.dtype)
        rows, cols = (0, 0) if insn.rows == 0 or insn.cols == 0 else (insn.rows, insn.cols)
        nbytes = rows * cols * esize
        cycles, bursts = _transfer(
            op == Opcode.DMA_LD,
            insn.dram % PAGE_BYTES,
            insn.dram_rs * esize % PAGE_BYTES,
            insn.dram_cs * esize % PAGE_BYTES,
            insn.dram_cs == 1,
            rows,
            cols,
            esize,
            t,
        )
        if op == Opcode.DMA_LD:
            return ExecCost("dma", cycles, 0, nbytes, 0, bursts)
        return ExecCost("dma", cycles, 0, 0, nbytes, bursts)
    if op == Opcode.GATHER:
        esize = _esize(insn.dtype)
        rows = 0 if insn.cols == 0 else insn.rows
        # The table rows a GATHER reads depend on the index values, which the program
        # does not hold: row r is costed as table row r mod table_rows (consecutive
        # rows; the real rows can differ by a 4 KiB split, i.e. one burst per row).
        row_pieces = [
            dma.run_pieces(
                insn.table_addr + (r % max(insn.table_rows, 1)) * insn.table_rs * esize,
                insn.cols * esize,
                t,
            )
            for r in range(rows)
        ]
        nbytes = rows * (4 + insn.cols * esize)
        bursts = sum(len(b) + 1 for b in row_pieces)
        cycles = dma.gather_cycles(row_pieces, insn.cols, esize, t)
        return ExecCost("dma", cycles, 0, nbytes, 0, bursts)
    if op == Opcode.MATMUL:
        cycles = mxu_cycles(insn.m, insn.n, insn.k, bool(insn.acc), bool(insn.use_bias), t)
        return ExecCost("mxu", cycles, insn.m * insn.n * insn.k)
    if op in (Opcode.MOVE, Opcode.VBIN, Opcode.VUNARY, Opcode.VMASK, Opcode.VREDUCE):
        return ExecCost("vpu", vpu_cycles(insn.rows, insn.cols, op == Opcode.VREDUCE, t))
    raise ValueError(f"no cost rule for {op.name}")
