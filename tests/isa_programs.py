"""Assembled programs shared by the tests of several backends (ISA model, torch, RTL)."""

from __future__ import annotations

import numpy as np


def empty_regions(data: int, out: int) -> tuple[str, dict[int, np.ndarray]]:
    """ISA v2's empty regions (docs/isa.md): a region with zero rows or columns touches
    nothing, is never out of range and never overlaps; the rest of the instruction still
    happens. The vadd, move, vrsum, gather, dma_ld and vmask below faulted under v1's
    integer arithmetic; the second gather (no columns, out-of-range indices) reads and
    checks no index since v3, as the RTL always did. Results go to
    DRAM at `out`: the bias row (MATMUL k=0 with bias), zeros (MATMUL k=0), the SUM
    identity -0.0 in lane 0 of two rows (VREDUCE with cols=0) and an ACC line that no
    empty instruction may touch. Returns (source, {address: data})."""
    source = f"""
    dma_ld space=acc dtype=fp32 sram=2048 sram_stride=16 dram={data} dram_rs=16 dram_cs=1 rows=1 cols=16
    dma_ld space=acc dtype=fp32 sram=1536 sram_stride=16 dram={data} dram_rs=0 dram_cs=1 rows=2 cols=16
    dma_ld space=acc dtype=fp32 sram=512 sram_stride=16 dram={data + 64} dram_rs=16 dram_cs=1 rows=2 cols=16
    vadd dst=65552 dst_stride=16 a=65552 a_stride=16 b=65552 b_stride=16 rows=0 cols=16
    move dst_space=acc src_space=acc dst=16 dst_stride=32 src=0 src_stride=32 rows=3 cols=0
    vrsum dst=0 dst_stride=16 a=0 a_stride=16 rows=0 cols=16
    vrsum dst=512 dst_stride=16 a=528 a_stride=16 rows=2 cols=0
    gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={data} table_rs=16 table_rows=4 idx=0xfffffff0 rows=0 cols=16
    gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={data} table_rs=16 table_rows=1 idx={data} rows=3 cols=0
    dma_ld space=spad dtype=fp32 sram=262160 sram_stride=16 dram={data} dram_rs=16 dram_cs=1 rows=0 cols=16
    dma_st space=acc dtype=fp32 sram=0 sram_stride=16 dram=0xfffffff0 dram_rs=16 dram_cs=1 rows=2 cols=0
    vmask dst=65552 dst_stride=16 a=65552 a_stride=16 rows=0 cols=16 offset=0 imm=-inf
    matmul dst=1024 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 bias=2048 m=2 n=16 k=0 use_bias=1
    matmul dst=1536 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 m=2 n=16 k=0
    matmul dst=4096 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 m=0 n=16 k=4
    dma_st space=acc dtype=fp32 sram=1024 sram_stride=16 dram={out} dram_rs=16 dram_cs=1 rows=2 cols=16
    dma_st space=acc dtype=fp32 sram=1536 sram_stride=16 dram={out + 128} dram_rs=16 dram_cs=1 rows=2 cols=16
    dma_st space=acc dtype=fp32 sram=512 sram_stride=16 dram={out + 256} dram_rs=16 dram_cs=1 rows=2 cols=16
    """
    rng = np.random.default_rng(11)
    return source, {data: rng.standard_normal(48).astype(np.float32) + 1}


def expected_empty_regions(values: np.ndarray) -> np.ndarray:
    """What empty_regions leaves at `out`, [6, 16] fp32, derived from the ISA's words (not
    from the ISA model): rows 0-1 the bias row, rows 2-3 zeros, rows 4-5 the loaded rows
    with lane 0 replaced by the SUM identity -0.0."""
    bias = values[:16]
    loaded = values[16:48].reshape(2, 16).copy()
    loaded[:, 0] = -0.0
    return np.concatenate([np.stack([bias, bias]), np.zeros((2, 16), np.float32), loaded])


def empty_region_faults() -> list[tuple[str, str]]:
    """Empty regions are still checked for alignment: (instruction, fault name)."""
    return [
        ("vadd dst=8 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=0 cols=16", "SRAM_ALIGN"),
        (
            "dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram=2 dram_rs=4 dram_cs=1 rows=0 cols=4",
            "DRAM_ALIGN",
        ),
        (
            "gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr=0 table_rs=16 table_rows=4 idx=2 rows=0 cols=16",
            "DRAM_ALIGN",
        ),
    ]
