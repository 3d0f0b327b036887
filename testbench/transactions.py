"""What moves between the testbench's components: sequence items (test -> drivers) and
analysis transactions (drivers and monitor -> scoreboard -> the parent process).

One per program, segment or checkpoint, never per beat or cycle: pyuvm costs tens of
microseconds per transaction (toolchain notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyuvm import uvm_sequence_item


# ---------------------------------------------------------------- sequence items
class Item(uvm_sequence_item):
    """A sequence item; its driver sets `error` when it could not carry it out."""

    def __init__(self, name: str):
        super().__init__(name)
        self.error: str | None = None


class ResetItem(Item):
    """Start the clock and reset the core (host agent)."""


class DramImageItem(Item):
    """Make a segment's DRAM image the simulated DRAM's (memory agent): map the shared
    file (back door), and stream `image` in through the front door when it is given."""

    def __init__(self, name: str, dram_path: str, image: bytes | None):
        super().__init__(name)
        self.dram_path = dram_path
        self.image = image


class SegmentItem(Item):
    """Run one device segment (the parent's "run" request) on the host agent. The driver
    fills in `outcome`."""

    def __init__(self, name: str, request: dict):
        super().__init__(name)
        self.dram_path: str = request["dram_path"]
        self.dram_bytes: int = request["dram_bytes"]
        self.pc: int = request["pc"]
        self.code_end: int = request["code_end"]
        self.layers: dict[int, dict] = request["layers"]
        self.budget_cycles: int = request["budget_cycles"]
        self.wave_window: tuple[int, int, int] = tuple(request["wave_window"])
        self.outcome: RunOutcome | None = None


# ---------------------------------------------------------------- analysis transactions
@dataclass
class CheckpointTxn:
    """The monitor saw a CHECKPOINT issue (the simulation is frozen at that edge)."""

    layer: int
    cycle: int  # since start
    retired: int  # instructions retired, the CHECKPOINT included


@dataclass
class RunEnd:
    """The monitor saw the run end: irq (HALT or fault), diverge or timeout (watchdog)."""

    kind: str
    current_index: int  # the instruction in the retire stage then
    current_pc: int


@dataclass
class RunOutcome:
    """The status and counter registers, read by the host driver after the run ended."""

    status: int  # the STATUS register
    cycles: int
    counters: dict
    fault: int
    fault_pc: int
    retired: int
    last_layer: int


@dataclass
class CheckpointVerdict:
    """The scoreboard's comparison of one checkpoint's tensor with the ISA model's."""

    layer: int
    cycle: int
    row: dict  # layer, cycle, retired, match, and reason/mismatches when it differs


@dataclass
class SegmentVerdict:
    """The scoreboard's verdict on a whole segment."""

    status: str  # done | fault | timeout | diverge | assertion
    end: RunEnd
    outcome: RunOutcome
    divergence: object | None  # testbench.lockstep.Divergence
    trace: object  # [n, 3] uint64 retire trace: pc, cycle, digest
    ref_fault: int | None
    ref_fault_msg: str | None
    final: dict = field(default_factory=lambda: {"match": True})
    # The first AXI4 rule the core broke on its DRAM port (contract.lockstep.AxiRule):
    # rule, channel, cycle, addr, len, retired before it; None when none.
    axi: dict | None = None
    # The first RTL assertion that failed (testbench.bfm.LoomBfm.assert_end); None: none.
    assertion: dict | None = None
