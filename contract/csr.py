"""The host interface of the Loom core: its AXI4-Lite control/status registers.

One table, read by the generated SystemVerilog package (offsets), docs/isa.md (the
register map) and the testbench's host agent. Registers are 32 bits; 64-bit counters
are _LO/_HI pairs, read while the core is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Csr:
    name: str
    offset: int
    access: str  # rw | ro | w1s (write 1 to set, self-clearing)
    doc: str


CSR_ID_VALUE = 0x4C4F4F4D  # "LOOM"
# What a read of an offset no register has returns (writes there are ignored).
CSR_UNMAPPED_VALUE = 0xDEADBEEF

CSRS: tuple[Csr, ...] = (
    Csr("ID", 0x00, "ro", f"constant {CSR_ID_VALUE:#x} ('LOOM')"),
    Csr("VERSION", 0x04, "ro", "ISA version in [7:0]"),
    Csr("CTRL", 0x08, "w1s", "bit 0: start at PC_START (ignored while busy)"),
    Csr("STATUS", 0x0C, "ro", "bit 0 busy, bit 1 done (HALT retired), bit 2 fault"),
    Csr("FAULT", 0x10, "ro", "fault code (contract.isa.Fault) of the last run"),
    Csr("PC_START", 0x14, "rw", "byte address of the first instruction"),
    Csr("CODE_END", 0x18, "rw", "fetching at or beyond this byte address faults"),
    Csr("DRAM_LIMIT", 0x1C, "rw", "DMA accesses at or beyond this byte address fault"),
    Csr("FAULT_PC", 0x20, "ro", "pc of the faulting instruction"),
    Csr("RETIRED", 0x24, "ro", "instructions retired since start"),
    Csr("LAST_LAYER", 0x28, "ro", "layer id of the last CHECKPOINT retired"),
    Csr("CYCLES_LO", 0x30, "ro", "cycles since start [31:0]"),
    Csr("CYCLES_HI", 0x34, "ro", "cycles since start [63:32]"),
    Csr("DMA_BUSY", 0x38, "ro", "cycles the DMA engine executed an instruction"),
    Csr("MXU_BUSY", 0x3C, "ro", "cycles the matrix unit executed an instruction"),
    Csr("VPU_BUSY", 0x40, "ro", "cycles the vector unit executed an instruction"),
    Csr("FETCH_STALL", 0x44, "ro", "cycles spent waiting for instruction fetch"),
    Csr("DMA_RD_BYTES_LO", 0x48, "ro", "bytes the DMA read from DRAM [31:0]"),
    Csr("DMA_RD_BYTES_HI", 0x4C, "ro", "bytes the DMA read from DRAM [63:32]"),
    Csr("DMA_WR_BYTES_LO", 0x50, "ro", "bytes the DMA wrote to DRAM [31:0]"),
    Csr("DMA_WR_BYTES_HI", 0x54, "ro", "bytes the DMA wrote to DRAM [63:32]"),
    Csr("MACS_LO", 0x58, "ro", "multiply-accumulates the matrix unit performed [31:0]"),
    Csr("MACS_HI", 0x5C, "ro", "multiply-accumulates the matrix unit performed [63:32]"),
    Csr("OVERLAP", 0x60, "ro", "cycles two or more of DMA, MXU and VPU executed instructions"),
    Csr("STALL_DEP", 0x64, "ro", "cycles issue waited on an SRAM dependency (RAW, WAR, WAW)"),
    Csr("STALL_UNIT", 0x68, "ro", "cycles issue waited for its unit or a memory port to free"),
    Csr("STALL_DRAIN", 0x6C, "ro", "cycles issue waited for every unit to drain (FENCE, ...)"),
)

CSR_BY_NAME = {c.name: c for c in CSRS}

STATUS_BUSY, STATUS_DONE, STATUS_FAULT = 1, 2, 4
