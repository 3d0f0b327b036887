"""Bus-functional layer: the only code that touches the simulation top's signals.

Python wakes only on transactions and events (checkpoint, irq, divergence), never per
cycle of a running program; DRAM contents move through the shared mapping, not through
signals; the lockstep checker's tables and results move through ctypes pointers.
"""

from __future__ import annotations

import ctypes

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from contract.csr import CSR_BY_NAME
from contract.hw import SIM_CLOCK_PERIOD_NS


class LoomBfm:
    def __init__(self, dut):
        self.dut = dut
        self._lib = ctypes.CDLL(None)  # the simulator itself, linked with -rdynamic
        self._lib.loom_dram_map.argtypes = [ctypes.c_char_p]
        self._lib.loom_dram_map.restype = ctypes.c_int
        self._lib.loom_dram_size.restype = ctypes.c_uint64
        self._lib.loom_ls_retired.restype = ctypes.c_int64
        self._lib.loom_ls_divergence.restype = ctypes.c_int64
        self._lib.loom_ls_wave_window.argtypes = [ctypes.c_int64] * 3
        self._lockstep_buffers: tuple = ()
        self.mapped: str | None = None
        self.event_layer = 0

    async def reset(self) -> None:
        d = self.dut
        Clock(d.clk, SIM_CLOCK_PERIOD_NS, unit="ns").start()
        for sig in (
            d.csr_awvalid,
            d.csr_wvalid,
            d.csr_arvalid,
            d.dram_we,
            d.csr_awaddr,
            d.csr_wdata,
            d.csr_araddr,
            d.dram_addr,
            d.dram_wdata,
        ):
            sig.value = 0
        d.csr_bready.value = 1
        d.csr_rready.value = 1
        d.rst_n.value = 0
        await ClockCycles(d.clk, 3)
        d.rst_n.value = 1
        await RisingEdge(d.clk)

    # ---------------------------------------------------------------- host registers
    async def csr_write(self, name: str, value: int) -> None:
        d = self.dut
        d.csr_awaddr.value = CSR_BY_NAME[name].offset
        d.csr_wdata.value = value & 0xFFFFFFFF
        d.csr_awvalid.value = 1
        d.csr_wvalid.value = 1
        while True:
            await RisingEdge(d.clk)
            if d.csr_awready.value:
                break
        d.csr_awvalid.value = 0
        d.csr_wvalid.value = 0
        while not d.csr_bvalid.value:
            await RisingEdge(d.clk)

    async def csr_read(self, name: str) -> int:
        d = self.dut
        d.csr_araddr.value = CSR_BY_NAME[name].offset
        d.csr_arvalid.value = 1
        while True:
            await RisingEdge(d.clk)
            if d.csr_arready.value:
                break
        d.csr_arvalid.value = 0
        while True:
            await ReadOnly()
            if d.csr_rvalid.value:
                value = int(d.csr_rdata.value)
                await RisingEdge(d.clk)
                return value
            await RisingEdge(d.clk)

    async def csr_read64(self, name: str) -> int:
        lo = await self.csr_read(f"{name}_LO")
        return lo | (await self.csr_read(f"{name}_HI")) << 32

    # ---------------------------------------------------------------- DRAM
    def map_dram(self, path: str) -> None:
        """Map the DRAM file into the simulated DRAM (back door)."""
        if self._lib.loom_dram_map(path.encode()) != 0:
            raise RuntimeError(f"cannot map DRAM file {path}")
        self.mapped = path

    async def write_dram_frontdoor(self, addr: int, data: bytes) -> None:
        """Stream bytes into DRAM through the host port, one 32-bit word per cycle."""
        d = self.dut
        words = np.frombuffer(data.ljust(-(-len(data) // 4) * 4, b"\0"), dtype="<u4")
        d.dram_we.value = 1
        for i, w in enumerate(words):
            d.dram_addr.value = addr + 4 * i
            d.dram_wdata.value = int(w)
            await RisingEdge(d.clk)
        d.dram_we.value = 0
        await RisingEdge(d.clk)

    # ---------------------------------------------------------------- lockstep
    def lockstep_configure(
        self,
        exp_pc: np.ndarray,
        exp_digest: np.ndarray,
        regions: np.ndarray,
        trace: np.ndarray,
        scratch: np.ndarray,
        lanes: int,
        spad_elems: int,
        acc_elems: int,
    ) -> None:
        """Hand the checker one segment's expectations and result buffers (kept alive
        here until the next segment)."""
        arrays = (exp_pc, exp_digest, regions, trace, scratch)
        for a in arrays:
            assert a.flags.c_contiguous
        self._lockstep_buffers = arrays

        def ptr(a):
            return ctypes.c_void_p(a.ctypes.data)

        self._lib.loom_ls_configure(
            ctypes.c_int64(len(exp_pc)),
            ptr(exp_pc),
            ptr(exp_digest),
            ptr(regions),
            ptr(trace),
            ctypes.c_int64(len(trace)),
            ptr(scratch),
            ctypes.c_int64(scratch.size),
            ctypes.c_int64(lanes),
            ctypes.c_int64(spad_elems),
            ctypes.c_int64(acc_elems),
        )

    def lockstep_retired(self) -> int:
        return int(self._lib.loom_ls_retired())

    def lockstep_divergence(self) -> list[int] | None:
        out = (ctypes.c_int64 * 8)()
        if not self._lib.loom_ls_divergence(out):
            return None
        return list(out)

    def wave_window(self, mode: int, lo: int, hi: int) -> None:
        self._lib.loom_ls_wave_window(mode, lo, hi)

    # ---------------------------------------------------------------- events
    async def wait_event(self, budget_cycles: int) -> str:
        """Sleep until a checkpoint, the end of the run (irq), the first divergence from
        the ISA model, or the cycle budget."""
        d = self.dut
        timer = Timer(max(1, budget_cycles) * SIM_CLOCK_PERIOD_NS, unit="ns")
        fired = await First(
            RisingEdge(d.ckpt_valid), RisingEdge(d.irq), RisingEdge(d.diverge), timer
        )
        if fired is timer:
            return "timeout"
        await ReadOnly()
        if d.diverge.value:
            await RisingEdge(d.clk)
            return "diverge"
        kind = "checkpoint" if d.ckpt_valid.value else "irq"
        self.event_layer = int(d.ckpt_layer.value)
        # Leave the read-only phase; the core is fetching, DRAM holds still.
        await RisingEdge(d.clk)
        return kind

    def last_retired(self) -> tuple[int, int]:
        """(index, pc) of the instruction now in the retire stage."""
        return int(self.dut.retire_index.value), int(self.dut.retire_pc.value)
