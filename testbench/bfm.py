"""Bus-functional layer: the only code that touches the simulation top's signals.

Python wakes only on transactions and events (checkpoint, irq, divergence), never per
cycle of a running program; DRAM contents move through the shared mapping, not through
signals; the lockstep checker's tables and results move through ctypes pointers.

The host port is driven by cocotbext-axi's AxiLiteMaster. Its channel coroutines sleep
on events while no access is queued (sources wait for a send, sinks for a rising
valid), so an idle master costs nothing per cycle; every access's response is checked.
"""

from __future__ import annotations

import ctypes
import logging
import warnings

import cocotb.simulator
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    First,
    ReadOnly,
    RisingEdge,
    SimTimeoutError,
    Timer,
    with_timeout,
)
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from contract.csr import CSR_BY_NAME, CSR_ID_VALUE, CSR_UNMAPPED_VALUE, CSRS, Csr
from contract.hw import SIM_CLOCK_PERIOD_NS
from contract.isa import ISA_VERSION

# A register access answers within a few cycles; one that takes this long never will.
CSR_TIMEOUT_CYCLES = 1000


class HostPortError(RuntimeError):
    """A register access the host port answered with an error response, or not at all."""


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
        self._lib.loom_ls_shadow.restype = ctypes.c_int64
        self._lib.loom_axi_end.restype = ctypes.c_int64
        self._lib.loom_assert_end.restype = ctypes.c_int64
        self._lockstep_buffers: tuple = ()
        self.mapped: str | None = None
        # cocotbext-axi logs every access at INFO and still calls cocotb 1.x APIs that
        # cocotb 2 deprecates: sim.log keeps the testbench's own messages.
        logging.getLogger(f"cocotb.{dut._name}.csr").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")
        # No reset signal: the core is reset once, before the first access, and watching
        # rst_n would be one more value-change callback checked at every time step.
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr"), dut.clk)

    async def reset(self) -> None:
        d = self.dut
        Clock(d.clk, SIM_CLOCK_PERIOD_NS, unit="ns").start()
        for sig in (d.dram_we, d.dram_addr, d.dram_wdata):
            sig.value = 0
        d.rst_n.value = 0
        await ClockCycles(d.clk, 3)
        d.rst_n.value = 1
        await RisingEdge(d.clk)

    # ---------------------------------------------------------------- host registers
    async def csr_write(self, name: str, value: int) -> None:
        await self._write_offset(CSR_BY_NAME[name], value)

    async def csr_read(self, name: str) -> int:
        return await self._read_offset(CSR_BY_NAME[name])

    async def check_register_map(self) -> None:
        """After reset: the core identifies itself as a Loom core of this ISA version, an
        unmapped offset reads CSR_UNMAPPED_VALUE, every other register reads 0, writes to
        read-only registers and to unmapped offsets change nothing, rw registers read back
        what was written, and a W beat without its AW is not taken (the host port takes
        both together). Any other answer means the simulated RTL is not the core this
        harness drives."""
        want = {"ID": CSR_ID_VALUE, "VERSION": ISA_VERSION}
        got = {name: await self.csr_read(name) for name in want}
        if got != want:
            raise HostPortError(
                "host port: the core identifies as "
                + ", ".join(f"{k}={v:#x}" for k, v in got.items())
                + "; this harness drives "
                + ", ".join(f"{k}={v:#x}" for k, v in want.items())
            )
        mapped = {c.offset for c in CSRS}
        unmapped = Csr("(unmapped)", max(mapped) + 4, "-", "")
        assert unmapped.offset not in mapped
        # Every register but the two identity constants reads 0 after reset: status,
        # fault, counters, and the rw configuration.
        reset = {c.name: await self.csr_read(c.name) for c in CSRS if c.name not in want}
        if any(reset.values()):
            nonzero = {k: hex(v) for k, v in reset.items() if v}
            raise HostPortError(f"host port: registers not 0 after reset: {nonzero}")
        await self._w_without_aw()
        before = {c.name: await self.csr_read(c.name) for c in CSRS if c.access == "ro"}
        for c in CSRS:
            if c.access == "ro":
                await self.csr_write(c.name, ~before[c.name])
        await self._write_offset(unmapped, 0x5A5A5A5A)
        for c in CSRS:
            if c.access == "rw":
                await self.csr_write(c.name, 0xA5A5A5A0 | c.offset)
        after = {c.name: await self.csr_read(c.name) for c in CSRS if c.access in ("ro", "rw")}
        after[unmapped.name] = await self._read_offset(unmapped)
        after["CTRL"] = await self.csr_read("CTRL")  # write-1-to-set: reads 0
        expect = {**before, unmapped.name: CSR_UNMAPPED_VALUE, "CTRL": 0}
        expect |= {c.name: 0xA5A5A5A0 | c.offset for c in CSRS if c.access == "rw"}
        wrong = {k: (v, expect[k]) for k, v in after.items() if v != expect[k]}
        if wrong:
            raise HostPortError(
                "host port: register map check after reset failed: "
                + "; ".join(f"{k} reads {v:#x}, expected {e:#x}" for k, (v, e) in wrong.items())
            )
        for c in CSRS:  # leave the rw registers as reset left them
            if c.access == "rw":
                await self.csr_write(c.name, 0)

    async def _w_without_aw(self, cycles: int = 4) -> None:
        """Hold a W beat with no AW for a few cycles (the AXI4-Lite master is idle, so its
        signals are ours meanwhile): the host port must not take it."""
        d = self.dut
        d.csr_wdata.value = 0xFFFFFFFF
        d.csr_wvalid.value = 1
        taken = False
        for _ in range(cycles):
            await RisingEdge(d.clk)
            await ReadOnly()
            taken |= bool(d.csr_wready.value)
        await RisingEdge(d.clk)
        d.csr_wvalid.value = 0
        if taken:
            raise HostPortError("host port: a W beat was taken without its AW")

    async def _read_offset(self, csr: Csr) -> int:
        rsp = await self._answered(self.host.read(csr.offset, 4), "read", csr)
        _check(rsp.resp, "read", csr)
        return int.from_bytes(rsp.data, "little")

    async def _write_offset(self, csr: Csr, value: int) -> None:
        data = (value & 0xFFFFFFFF).to_bytes(4, "little")
        rsp = await self._answered(self.host.write(csr.offset, data), "write", csr)
        _check(rsp.resp, "write", csr)

    async def csr_read64(self, name: str) -> int:
        lo = await self.csr_read(f"{name}_LO")
        return lo | (await self.csr_read(f"{name}_HI")) << 32

    async def _answered(self, access, op: str, csr: Csr):
        try:
            return await with_timeout(access, CSR_TIMEOUT_CYCLES * SIM_CLOCK_PERIOD_NS, "ns")
        except SimTimeoutError:
            raise HostPortError(
                f"host port: no response to the {op} of {csr.name} (offset {csr.offset:#04x})"
                f" within {CSR_TIMEOUT_CYCLES} cycles"
            ) from None

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

    def lockstep_shadow(self, mem: int, elems: int) -> np.ndarray:
        """[elems] uint32: the checker's copy of SPAD (0) or ACC (1) as the RTL's write
        ports left it (zeros before the first segment)."""
        out = np.zeros(elems, dtype=np.uint32)
        self._lib.loom_ls_shadow(
            ctypes.c_int64(mem), ctypes.c_void_p(out.ctypes.data), ctypes.c_int64(elems)
        )
        return out

    def axi_begin(self, bus_bytes: int) -> None:
        """A segment starts: the DRAM port's rule checker starts afresh."""
        self._lib.loom_axi_begin(ctypes.c_int64(bus_bytes))

    def axi_end(self, cycle: int, complete: bool) -> dict | None:
        """The first AXI4 rule broken in this segment (with `complete`, also requests
        left unanswered), or None."""
        out = (ctypes.c_int64 * 6)()
        if not self._lib.loom_axi_end(ctypes.c_int64(cycle), ctypes.c_int64(complete), out):
            return None
        keys = ("rule", "channel", "cycle", "addr", "len", "retired")
        return dict(zip(keys, list(out), strict=True))

    def assert_begin(self) -> None:
        """A segment starts: no RTL assertion has failed in it yet."""
        self._lib.loom_assert_begin()

    def assert_end(self) -> dict | None:
        """The first RTL assertion that failed in this segment (sim/rtl/hdl/loom_assert.cc):
        its source file and line, the cycle since reset, the instructions retired before
        it and the number of failures; or None."""
        file = ctypes.create_string_buffer(512)
        out = (ctypes.c_int64 * 4)()
        if not self._lib.loom_assert_end(file, ctypes.c_int64(len(file)), out):
            return None
        seconds = out[1] * 10.0 ** cocotb.simulator.get_precision()
        return {
            "file": file.value.decode(errors="replace"),
            "line": int(out[0]),
            "cycle": round(seconds / (SIM_CLOCK_PERIOD_NS * 1e-9)),
            "retired": int(out[2]),
            "failures": int(out[3]),
        }

    def wave_window(self, mode: int, lo: int, hi: int) -> None:
        self._lib.loom_ls_wave_window(mode, lo, hi)

    # ---------------------------------------------------------------- events
    async def next_event(self, budget_cycles: int) -> str:
        """Sleep until a checkpoint, the end of the run (irq), the first divergence from
        the ISA model, or the cycle budget; return in that edge's read-only phase, so
        nothing moves in the simulation until the caller awaits again."""
        d = self.dut
        timer = Timer(max(1, budget_cycles) * SIM_CLOCK_PERIOD_NS, unit="ns")
        fired = await First(
            RisingEdge(d.ckpt_valid), RisingEdge(d.irq), RisingEdge(d.diverge), timer
        )
        await ReadOnly()
        if fired is timer:
            return "timeout"
        if d.diverge.value:
            return "diverge"
        return "checkpoint" if d.ckpt_valid.value else "irq"

    def checkpoint(self) -> tuple[int, int, int]:
        """(layer, cycles since start, instructions retired) of the CHECKPOINT now
        issuing, which retires at this edge."""
        d = self.dut
        return int(d.ckpt_layer.value), int(d.run_cycles.value), int(d.retire_index.value) + 1

    def last_retired(self) -> tuple[int, int]:
        """(index, pc) of the instruction now in the retire stage."""
        return int(self.dut.retire_index.value), int(self.dut.retire_pc.value)


def _check(resp: AxiResp, op: str, csr: Csr) -> None:
    if resp != AxiResp.OKAY:
        raise HostPortError(
            f"host port: the {op} of {csr.name} (offset {csr.offset:#04x}) was answered"
            f" {AxiResp(resp).name}, not OKAY"
        )
