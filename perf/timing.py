"""The timing parameters of the Loom core's RTL, derived from a hardware config.

Every number here is read off the RTL (rtl/*.sv) or the testbench's DRAM model
(sim/rtl/hdl/loom_axi_dram.sv, loom_tb_top.sv); none is fitted. docs/perf.md lists each
with the line of SystemVerilog it comes from. The cost functions (perf/cost.py, perf/dma.py)
combine them; a later core with other pipelines changes this file and those, not the
schedules that sum the costs (perf/schedule.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.hw import HwConfig
from contract.isa import INSN_BYTES

# loom_dma.sv: MaxBurstBeats and the 4 KiB rule of AXI4 (DescDepth, the bursts in flight,
# is CoreTiming.bursts_in_flight).
MAX_BURST_BEATS = 16
PAGE_BYTES = 4096

# loom_ctrl.sv: ST_ISSUE lasts one cycle for every instruction (control instructions
# retire in it).
ISSUE_CYCLES = 1


@dataclass(frozen=True)
class CoreTiming:
    """The timing-relevant facts of one core, in cycles and bytes."""

    array_dim: int  # systolic array side = SRAM line in elements = vector lanes
    bus_bytes: int  # AXI4 data width (dram_bus_bits / 8)
    dram_latency: int  # address handshake -> first read beat (loom_axi_dram LatencyCycles)
    beat_cycles: int  # cycles between read beats (loom_tb_top DramBeatCycles)
    stream_bytes: int  # the DMA byte stream between the bus and the SRAM packer
    # Instructions per fetch request into the control unit's fetch buffer
    # (HwConfig.fetch_block_insns); None models the control unit before the buffer
    # (commit 22d35ae), which fetched every instruction with its own DRAM round trip.
    fetch_block_insns: int | None
    # loom_dma.sv DescDepth = DmaBursts (HwConfig.dma_bursts_in_flight): bursts in flight
    bursts_in_flight: int = 8

    @classmethod
    def of(cls, hw: HwConfig) -> CoreTiming:
        bus = hw.dram_bus_bits // 8
        return cls(
            array_dim=hw.array_dim,
            bus_bytes=bus,
            dram_latency=hw.dram_latency_cycles,
            # loom_tb_top.sv: DramBeatCycles = ceil(bus bytes / dram_bytes_per_cycle); a DRAM
            # faster than the bus still gives one beat per cycle.
            beat_cycles=-(-bus // hw.dram_bytes_per_cycle),
            # loom_dma.sv: StreamBytes = max(4 * BusBytes, one fp32 line + BusBytes).
            stream_bytes=max(4 * bus, hw.line_elems * 4 + bus),
            fetch_block_insns=hw.fetch_block_insns,
            bursts_in_flight=hw.dma_bursts_in_flight,
        )

    @property
    def lanes(self) -> int:
        return self.array_dim

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.array_dim * self.array_dim

    @property
    def read_bytes_per_cycle(self) -> float:
        """The bus's read bandwidth: one beat every beat_cycles."""
        return self.bus_bytes / self.beat_cycles

    @property
    def insn_bytes(self) -> int:
        return INSN_BYTES
