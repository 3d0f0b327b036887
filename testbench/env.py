"""pyuvm environment of the Loom core: agents, monitor, scoreboard.

Transactions are programs, checkpoints and tensors, never beats: pyuvm costs tens of
microseconds per transaction, so it stays at that granularity (toolchain notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyuvm import uvm_analysis_port, uvm_component, uvm_env, uvm_subscriber

from contract.blob import binding_view
from contract.csr import STATUS_FAULT
from contract.hw import HwConfig
from sim.ref import ExecError, RefMachine
from testbench import lockstep
from testbench.bfm import LoomBfm


@dataclass
class CheckpointTxn:
    layer: int
    cycle: int
    retired: int


@dataclass
class RunOutcome:
    status: str  # done | fault | timeout
    cycles: int = 0
    counters: dict = field(default_factory=dict)
    fault: int = 0
    fault_pc: int = 0
    retired: int = 0
    last_layer: int = 0


class HostAgent(uvm_component):
    """Drives the control/status registers."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")

    async def start(self, pc: int, code_end: int, dram_limit: int) -> None:
        await self.bfm.csr_write("PC_START", pc)
        await self.bfm.csr_write("CODE_END", code_end)
        await self.bfm.csr_write("DRAM_LIMIT", dram_limit)
        await self.bfm.csr_write("CTRL", 1)

    async def outcome(self, status: str) -> RunOutcome:
        b = self.bfm
        st = await b.csr_read("STATUS")
        counters = {
            "dma_busy": await b.csr_read("DMA_BUSY"),
            "mxu_busy": await b.csr_read("MXU_BUSY"),
            "vpu_busy": await b.csr_read("VPU_BUSY"),
            "fetch_stall": await b.csr_read("FETCH_STALL"),
            "dma_rd_bytes": await b.csr_read64("DMA_RD_BYTES"),
            "dma_wr_bytes": await b.csr_read64("DMA_WR_BYTES"),
            "macs": await b.csr_read64("MACS"),
        }
        if status != "timeout" and st & STATUS_FAULT:
            status = "fault"
        return RunOutcome(
            status=status,
            cycles=await b.csr_read64("CYCLES"),
            counters=counters,
            fault=await b.csr_read("FAULT"),
            fault_pc=await b.csr_read("FAULT_PC"),
            retired=await b.csr_read("RETIRED"),
            last_layer=await b.csr_read("LAST_LAYER"),
        )

    async def cycles(self) -> int:
        return await self.bfm.csr_read64("CYCLES")


class MemoryAgent(uvm_component):
    """Puts images into the simulated DRAM: front door (host port) for small ones, back
    door (the shared mapping) for large ones."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")

    def map(self, path: str) -> None:
        if self.bfm.mapped != path:
            self.bfm.map_dram(path)

    async def load_frontdoor(self, data: bytes) -> None:
        await self.bfm.write_dram_frontdoor(0, data)


class EventMonitor(uvm_component):
    """Waits for core events with a watchdog; publishes checkpoints."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")
        self.ap = uvm_analysis_port("ap", self)

    async def next_event(self, budget_cycles: int) -> tuple[str, int]:
        kind = await self.bfm.wait_event(budget_cycles)
        return kind, self.bfm.event_layer


class Scoreboard(uvm_subscriber):
    """Checks the RTL against the ISA model at two granularities.

    expect() runs the ISA model over the segment on a private copy of the DRAM image,
    keeping every checkpoint's expected bytes and, per retired instruction, the pc and
    the digest of what it wrote; those go to the lockstep checker in the simulator,
    which compares every retirement as it happens (sim/lockstep.py). write() gets the
    RTL's checkpoints from the monitor and compares the layer's tensor bit for bit;
    final() compares the whole DRAM image at the end of the segment; divergence()
    explains the checker's first disagreement."""

    def build_phase(self):
        self.bfm: LoomBfm = self.cdb_get("bfm")
        self.expected: dict[int, np.ndarray] = {}
        self.ref_fault: ExecError | None = None
        self.ref_dram: np.ndarray | None = None
        self.layers: dict[int, dict] = {}
        self.results: list[dict] = []
        self.dram: np.ndarray | None = None  # the RTL's DRAM (shared mapping)
        self.exp: lockstep.Expectations | None = None
        self.trace = np.zeros((0, 3), dtype=np.uint64)

    def expect(self, hw: HwConfig, dram: np.ndarray, code: bytes, pc: int, layers: dict) -> None:
        self.hw, self.code, self.pc = hw, code, pc
        self.dram = dram
        self.layers = layers
        self.expected = {}
        self.results = []
        self.initial_dram = np.array(dram, copy=True)  # to re-run up to a divergence
        ref_dram = np.array(dram, copy=True)
        machine = RefMachine(hw, ref_dram)

        def on_checkpoint(layer_id: int) -> None:
            la = layers.get(layer_id)
            if la is not None:
                self.expected[layer_id] = _raw(ref_dram, la["output"]).copy()

        self.exp = lockstep.expectations(machine, code, pc, on_checkpoint)
        self.ref_fault = self.exp.fault
        self.ref_dram = ref_dram
        # Room for every retirement the ISA model made, plus a margin for an RTL that
        # runs on past it (the checker stops at the first extra one anyway).
        self.trace = np.zeros((len(self.exp.pc) + 16, 3), dtype=np.uint64)
        self.scratch = np.zeros(self.exp.max_region_words, dtype=np.uint32)
        self.bfm.lockstep_configure(
            self.exp.pc,
            self.exp.digest,
            np.ascontiguousarray(self.exp.regions),
            self.trace,
            self.scratch,
            hw.line_elems,
            hw.spad_elems,
            hw.acc_elems,
        )

    def retire_trace(self) -> np.ndarray:
        """[n, 3] uint64: pc, cycle, digest of each retirement so far."""
        n = min(self.bfm.lockstep_retired(), len(self.trace))
        return self.trace[:n]

    def divergence(self) -> lockstep.Divergence | None:
        raw = self.bfm.lockstep_divergence()
        if raw is None:
            return None
        index = raw[1]
        trace = self.retire_trace()
        start = int(trace[index - 1, 1]) if 0 < index <= len(trace) else None
        return lockstep.explain(
            self.hw, self.initial_dram, self.code, self.pc, self.exp, raw, self.scratch, start
        )

    def write(self, txn: CheckpointTxn) -> None:
        """A checkpoint from the monitor: compare the layer's tensor in the RTL's DRAM."""
        la = self.layers.get(txn.layer)
        row = {"layer": txn.layer, "cycle": txn.cycle, "retired": txn.retired}
        if la is None:
            row.update(match=False, reason=f"checkpoint {txn.layer} not in the layer table")
        elif txn.layer not in self.expected:
            row.update(match=False, reason="the ISA model never reached this checkpoint")
        else:
            row.update(compare_bits(self.expected[txn.layer], _raw(self.dram, la["output"]), la))
        self.results.append(row)

    def final(self, dram: np.ndarray) -> dict:
        if self.ref_dram is None:
            return {"match": True}
        n = min(dram.size, self.ref_dram.size)
        diff = np.nonzero(dram[:n] != self.ref_dram[:n])[0]
        if diff.size == 0:
            return {"match": True}
        a = int(diff[0])
        return {
            "match": False,
            "reason": f"{diff.size} DRAM bytes differ from the ISA model; first at {a:#x}"
            f" (RTL {int(dram[a]):#04x}, ISA model {int(self.ref_dram[a]):#04x})",
        }


def _raw(dram: np.ndarray, binding: dict) -> np.ndarray:
    return np.array(binding_view(dram, binding))


def compare_bits(expected: np.ndarray, actual: np.ndarray, layer: dict) -> dict:
    """Bitwise equality; on a mismatch the first differing elements as float and hex."""
    e = np.ascontiguousarray(expected).reshape(-1)
    a = np.ascontiguousarray(actual).reshape(-1)
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32}[e.itemsize]
    eb, ab = e.view(bits), a.view(bits)
    bad = np.nonzero(eb != ab)[0]
    if bad.size == 0:
        return {"match": True}
    shape = tuple(layer["output"]["shape"])
    first = []
    for i in bad[:4]:
        idx = tuple(int(x) for x in np.unravel_index(int(i), shape)) if shape else ()
        first.append(
            f"{idx}: expected {_fmt(e[i])} ({int(eb[i]):#x}), RTL {_fmt(a[i])} ({int(ab[i]):#x})"
        )
    return {
        "match": False,
        "mismatches": int(bad.size),
        "reason": f"{bad.size} of {e.size} elements differ from the ISA model; " + "; ".join(first),
    }


def _fmt(v) -> str:
    if v.dtype == np.uint16:  # bf16 bits
        return f"{float(np.array(int(v) << 16, np.uint32).view(np.float32)):.6g}"
    return f"{float(v):.6g}" if np.issubdtype(v.dtype, np.floating) else str(int(v))


class LoomEnv(uvm_env):
    def build_phase(self):
        self.host = HostAgent("host", self)
        self.memory = MemoryAgent("memory", self)
        self.monitor = EventMonitor("monitor", self)
        self.scoreboard = Scoreboard("scoreboard", self)

    def connect_phase(self):
        self.monitor.ap.connect(self.scoreboard.analysis_export)
