"""cocotb test for loom_fpu_tb: map the vector file, run, wait for done.
The vectors and the checks are in tests/test_rtl_fpu.py (the parent process)."""

from __future__ import annotations

import ctypes
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from contract.hw import SIM_CLOCK_PERIOD_NS


@cocotb.test()
async def run_vectors(dut):
    lib = ctypes.CDLL(None)
    lib.loom_dram_map.argtypes = [ctypes.c_char_p]
    assert lib.loom_dram_map(os.environ["LOOM_FPU_FILE"].encode()) == 0
    Clock(dut.clk, SIM_CLOCK_PERIOD_NS, unit="ns").start()
    dut.start.value = 0
    dut.count.value = int(os.environ["LOOM_FPU_COUNT"])
    dut.rst_n.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst_n.value = 1
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await RisingEdge(dut.done)
