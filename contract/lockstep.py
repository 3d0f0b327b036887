"""The interface of the lockstep checker (sim/rtl/hdl/loom_lockstep.cc): what Python and
C++ must agree on, defined once. contract/gen.py writes it into the C++ header
sim/rtl/hdl/loom_lockstep_gen.h; `make gen --check` (tests/test_structure.py) fails when
the header drifts.

- Per retired instruction the checker compares a digest of the one region it wrote
  (its destination: a Record) with the ISA model's.
- The digest: sum over the region's words j (row-major) of
  (word_j + DIGEST_OFFSET) * (j * DIGEST_STEP | 1) mod 2^64. Any single changed word
  changes it (the multiplier is odd), and so does moving a value to another position.
- The first disagreement latches a Reason; the waveform window is a WindowMode.
"""

from __future__ import annotations

import functools
from dataclasses import astuple, dataclass
from enum import IntEnum

import numpy as np

from contract.hw import HwConfig
from contract.isa import Insn, Mem
from contract.regions import Dram, Sram, resolve

DIGEST_OFFSET = 0x9E3779B97F4A7C15
DIGEST_STEP = 0xD6E8FEB86659FD93
# Bytes of one SRAM word in the checker's shadow: SPAD keeps bf16 in the upper half.
SRAM_WORD_BYTES = 4


class RegionKind(IntEnum):
    NONE = 0
    SPAD = 1
    ACC = 2
    DRAM = 3


class Reason(IntEnum):
    """Why the checker stopped agreeing."""

    AGREE = 0
    PC = 1  # retired a different pc than the ISA model
    VALUE = 2  # wrote different values than the ISA model
    EXTRA = 3  # retired more instructions than the ISA model


REASON_TEXT = {
    Reason.PC: "retired a different pc than the ISA model",
    Reason.VALUE: "wrote different values than the ISA model",
    Reason.EXTRA: "retired more instructions than the ISA model",
}


class AxiRule(IntEnum):
    """The AXI4 rules the simulated DRAM checks on the core's DRAM port
    (sim/rtl/hdl/loom_axi_check.cc); the first one broken fails the run."""

    OK = 0
    UNALIGNED = 1  # a burst address not aligned to the bus (full-width beats only)
    CROSSES_4K = 2  # a burst crosses a 4 KiB boundary
    WLAST = 3  # WLAST not exactly on the last beat of its burst
    VALID_DROPPED = 4  # a valid withdrawn before its handshake
    PAYLOAD_CHANGED = 5  # a stalled transfer's address, length or data changed
    UNANSWERED = 6  # a request without its response when the segment ended


AXI_RULE_TEXT = {
    AxiRule.UNALIGNED: "burst address not aligned to the bus width",
    AxiRule.CROSSES_4K: "burst crosses a 4 KiB boundary",
    AxiRule.WLAST: "WLAST not on the last beat of the burst",
    AxiRule.VALID_DROPPED: "VALID withdrawn before READY",
    AxiRule.PAYLOAD_CHANGED: "payload changed while VALID waited for READY",
    AxiRule.UNANSWERED: "requests still outstanding when the segment ended",
}
# The channels a violation names.
AXI_CHANNELS = ("AR", "AW", "W", "R", "B")


class WindowMode(IntEnum):
    """When a traced build dumps waveforms."""

    OFF = 0
    ALL = 1
    PC = 2  # while the core's pc is in [lo, hi]
    CYCLES = 3  # while the cycle count is in [lo, hi]


@dataclass(frozen=True)
class Record:
    """One instruction's written region as the checker reads it (C++ struct Region):
    addr is an element index in SPAD/ACC or a byte address in DRAM; strides are in
    elements; esize is the bytes of one DRAM element (SRAM_WORD_BYTES in SRAM)."""

    kind: int
    addr: int
    row_stride: int
    col_stride: int
    rows: int
    cols: int
    esize: int

    def astuple(self) -> tuple[int, ...]:
        return astuple(self)


RECORD_FIELDS = tuple(Record.__dataclass_fields__)
NO_REGION = Record(RegionKind.NONE, 0, 0, 0, 0, 0, 0)


def write_record(insn: Insn, hw: HwConfig, dram_bytes: int) -> Record:
    """The record of what a (legal) instruction writes: its one written region from
    contract.regions.resolve, or NO_REGION."""
    writes = list(resolve(insn, hw, dram_bytes).writes.values())
    if not writes:
        return NO_REGION
    (region,) = writes
    if isinstance(region, Dram):
        return Record(
            RegionKind.DRAM,
            region.addr,
            region.rs,
            region.cs,
            region.rows,
            region.cols,
            region.size,
        )
    assert isinstance(region, Sram)
    kind = RegionKind.ACC if region.space == Mem.ACC else RegionKind.SPAD
    return Record(kind, region.addr, region.stride, 1, region.rows, region.cols, SRAM_WORD_BYTES)


@functools.lru_cache(maxsize=64)
def _digest_weights(n: int) -> np.ndarray:
    """(j * DIGEST_STEP | 1) for j < n, read-only: a program writes regions of a few
    sizes over and over (the lockstep setup digests every instruction's destination)."""
    w = (np.arange(n, dtype=np.uint64) * np.uint64(DIGEST_STEP)) | np.uint64(1)
    w.flags.writeable = False
    return w


def digest(words: np.ndarray) -> int:
    """The digest of a region's words in row-major order (see the module doc)."""
    w = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
    if w.size == 0:
        return 0
    return int(np.dot(w + np.uint64(DIGEST_OFFSET), _digest_weights(w.size)))
