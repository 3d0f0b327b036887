"""The two agents of the Loom core's testbench.

HostAgent: the host's AXI4-Lite port and the core's events. Its driver runs reset and
segment items (program the start registers, start, wait for the end, read the status
and counters); its monitor watches the core on its own and publishes checkpoints and
the end of each run.

MemoryAgent: the simulated DRAM. Its driver maps the shared DRAM file (back door) and
streams small images in through the front door.
"""

from __future__ import annotations

from pyuvm import (
    uvm_agent,
    uvm_analysis_port,
    uvm_driver,
    uvm_monitor,
    uvm_sequencer,
    uvm_tlm_analysis_fifo,
)

from testbench.bfm import LoomBfm
from testbench.transactions import (
    CheckpointTxn,
    DramImageItem,
    ResetItem,
    RunEnd,
    RunOutcome,
    SegmentItem,
)

COUNTERS = (
    "DMA_BUSY",
    "MXU_BUSY",
    "VPU_BUSY",
    "FETCH_STALL",
    "OVERLAP",
    "STALL_DEP",
    "STALL_UNIT",
    "STALL_DRAIN",
)
COUNTERS64 = ("DMA_RD_BYTES", "DMA_WR_BYTES", "MACS")


class HostDriver(uvm_driver):
    """Drives the host port, one item at a time.

    A segment is announced on `ap` before the core starts, so the scoreboard has the ISA
    model's expectations and the lockstep checker armed and the monitor its watchdog;
    the driver then waits for the monitor's end of run (a reactive driver) and
    publishes the registers it reads then."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")
        self.ap = uvm_analysis_port("ap", self)
        self.core_events = uvm_tlm_analysis_fifo("core_events", self)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            try:
                if isinstance(item, ResetItem):
                    await self.bfm.reset()
                    await self.bfm.check_register_map()
                else:
                    await self.run_segment(item)
            except Exception as e:  # the test reports it to the parent and stops
                self.logger.exception("the %s item failed", item.get_name())
                item.error = str(e)
            self.seq_item_port.item_done()

    async def run_segment(self, item: SegmentItem) -> None:
        b = self.bfm
        self.ap.write(item)
        b.wave_window(*item.wave_window)
        await b.csr_write("PC_START", item.pc)
        await b.csr_write("CODE_END", item.code_end)
        await b.csr_write("DRAM_LIMIT", item.dram_bytes)
        await b.csr_write("CTRL", 1)
        while not isinstance(await self.core_events.get(), RunEnd):
            pass  # checkpoints: the scoreboard's business
        counters = {name.lower(): await b.csr_read(name) for name in COUNTERS}
        counters |= {name.lower(): await b.csr_read64(name) for name in COUNTERS64}
        item.outcome = RunOutcome(
            status=await b.csr_read("STATUS"),
            cycles=await b.csr_read64("CYCLES"),
            counters=counters,
            fault=await b.csr_read("FAULT"),
            fault_pc=await b.csr_read("FAULT_PC"),
            retired=await b.csr_read("RETIRED"),
            last_layer=await b.csr_read("LAST_LAYER"),
        )
        self.ap.write(item.outcome)


class CoreMonitor(uvm_monitor):
    """Watches the core's events with a watchdog, from the start of each segment (as
    announced by the driver) to its end. Between events it sleeps in one trigger, so no
    Python runs per cycle; each checkpoint is published in the read-only phase of its
    edge, so whatever its subscribers do happens with the simulation frozen there."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")
        self.ap = uvm_analysis_port("ap", self)
        self.segments = uvm_tlm_analysis_fifo("segments", self)

    async def run_phase(self):
        while True:
            segment = await self.segments.get()
            if not isinstance(segment, SegmentItem):
                continue  # the driver's outcome reports
            cycle = 0
            while True:
                kind = await self.bfm.next_event(segment.budget_cycles - cycle)
                if kind != "checkpoint":
                    break
                layer, cycle, retired = self.bfm.checkpoint()
                self.ap.write(CheckpointTxn(layer, cycle, retired))
            self.ap.write(RunEnd(kind, *self.bfm.last_retired()))


class HostAgent(uvm_agent):
    def build_phase(self):
        super().build_phase()
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = HostDriver("driver", self)
        self.monitor = CoreMonitor("monitor", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)
        self.driver.ap.connect(self.monitor.segments.analysis_export)
        self.monitor.ap.connect(self.driver.core_events.analysis_export)


class MemoryDriver(uvm_driver):
    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")

    async def run_phase(self):
        while True:
            item: DramImageItem = await self.seq_item_port.get_next_item()
            try:
                if self.bfm.mapped != item.dram_path:
                    self.bfm.map_dram(item.dram_path)
                if item.image is not None:
                    await self.bfm.write_dram_frontdoor(0, item.image)
            except Exception as e:
                self.logger.exception("the %s item failed", item.get_name())
                item.error = str(e)
            self.seq_item_port.item_done()


class MemoryAgent(uvm_agent):
    def build_phase(self):
        super().build_phase()
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = MemoryDriver("driver", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)
