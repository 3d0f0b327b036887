"""One fuzz case on the RTL, in lockstep with the ISA model, and its verdict.

Every case runs as two device segments on one simulator: the scrub program (it zeroes
the SRAM zones legal programs use, so a case never depends on the one before it), then
the case. The RTL backend checks every retired instruction against the ISA model as it
retires, and at the end of each segment the whole DRAM image and the whole of both
SRAMs (after a fault: everything but the faulting instruction's destination, which the
ISA leaves undefined). Here the outcome is also compared with the ISA model's: the same
fault code at the same instruction index and pc, or HALT on both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.hw import HwConfig
from contract.isa import Fault, encode_program
from contract.regions import resolve
from sim.ref import ExecError, RefMachine
from verif.case import CODE_BYTES, Case, checkpoint_layers
from verif.generate import scrub_program

# The run's counters, as the RTL backend's stats name them (CSRs in lower case).
COUNTED = ("cycles", "retired", "macs", "dma_rd_bytes", "dma_wr_bytes", "dma_busy",
           "mxu_busy", "vpu_busy", "fetch_stall", "overlap", "stall_dep", "stall_unit",
           "stall_drain")  # fmt: skip


@dataclass
class Verdict:
    ok: bool
    # pass | divergence | mismatch | outcome | counters | protocol | assertion | hang | error
    kind: str
    expected: str  # "halt" or the ISA model's fault name
    message: str = ""
    cycles: int = 0
    seconds: float = 0.0
    retired: int = 0
    details: dict = field(default_factory=dict)

    @property
    def signature(self) -> tuple[str, str]:
        """What a shrunk case must keep failing with: the same kind of failure on a
        program with the same ISA-model outcome (a legal program stays legal)."""
        return (self.kind, self.expected)


@dataclass
class Expected:
    """The ISA model's account of a case: its fault (None: it halts) and the counts the
    core's counters must agree with."""

    error: ExecError | None
    retired: int = 0
    macs: int = 0
    rd_bytes: int = 0
    wr_bytes: int = 0
    vpu_lines: int = 0  # SRAM lines the vector unit must at least pass through
    # DRAM bytes the faulting instruction may move before it stops (a gather reads
    # indices and rows until the bad index; the ISA leaves how many undefined).
    fault_rd_slack: int = 0


def expected_outcome(hw: HwConfig, case: Case) -> Expected:
    """Run the case on the ISA model, counting what the counters must show."""
    machine = RefMachine(hw, case.image())
    out = Expected(None)
    line = hw.line_elems

    def count(index: int, pc: int, insn) -> None:
        ops = resolve(insn, hw, machine.dram.size)
        out.rd_bytes += ops.dram_read_bytes
        out.wr_bytes += ops.dram_write_bytes
        if insn.unit == "vpu":
            out.vpu_lines += max(
                (r.rows * -(-r.cols // line) for r in ops.writes.values() if not r.empty), default=0
            )

    try:
        machine.run(case.code, case.pc, on_retire=count)
    except ExecError as e:
        out.error = e
        if e.insn is not None and e.fault == Fault.GATHER_INDEX:
            out.fault_rd_slack = resolve(e.insn, hw, machine.dram.size).dram_read_bytes
    out.retired, out.macs = machine.stats.retired, machine.stats.macs
    return out


def counter_problems(hw: HwConfig, want: Expected, got: dict) -> list[str]:
    """Every performance counter against the ISA model's count or an invariant of the
    core (one instruction per unit at a time, three units: their busy cycles add up to
    at most CYCLES + 2 x OVERLAP; the control unit's fetch and issue stalls are
    exclusive states, so they add up to at most CYCLES)."""
    bad = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            bad.append(what)

    cyc = got["cycles"]
    expect(got["retired"] == want.retired, f"RETIRED {got['retired']} != {want.retired}")
    expect(got["macs"] == want.macs, f"MACS {got['macs']} != {want.macs}")
    rd, wr = got["dma_rd_bytes"], got["dma_wr_bytes"]
    expect(
        want.rd_bytes <= rd <= want.rd_bytes + want.fault_rd_slack,
        f"DMA_RD_BYTES {rd} != {want.rd_bytes}"
        + (f" (+ up to {want.fault_rd_slack})" if want.fault_rd_slack else ""),
    )
    expect(wr == want.wr_bytes, f"DMA_WR_BYTES {wr} != {want.wr_bytes}")
    busy = {u: got[f"{u}_busy"] for u in ("dma", "mxu", "vpu")}
    stall = got["fetch_stall"]
    overlap = got["overlap"]
    expect(
        max(*busy.values(), overlap) <= cyc,
        f"DMA/MXU/VPU busy {busy} or OVERLAP {overlap} exceed CYCLES {cyc}",
    )
    # Three units: a cycle with n >= 2 of them busy adds n <= 1 + 2 to their sum.
    expect(
        sum(busy.values()) <= cyc + 2 * overlap,
        f"DMA/MXU/VPU busy {busy} exceed CYCLES {cyc} + 2 x OVERLAP {overlap}",
    )
    expect(
        sum(busy.values()) >= 2 * overlap,
        f"OVERLAP {overlap} with busy {busy}: two units busy in each such cycle",
    )
    stalls = {c: got[f"stall_{c}"] for c in ("dep", "unit", "drain")}
    expect(
        stall + sum(stalls.values()) <= cyc,
        f"FETCH_STALL {stall} + issue stalls {stalls} exceed CYCLES {cyc}",
    )
    bus = hw.dram_bus_bits // 8
    expect(
        busy["dma"] >= -(-(want.rd_bytes + want.wr_bytes) // bus),
        f"DMA_BUSY {busy['dma']} < the {want.rd_bytes + want.wr_bytes} bytes' bus beats",
    )
    pes = hw.array_dim**2
    expect(busy["mxu"] >= -(-want.macs // pes), f"MXU_BUSY {busy['mxu']} < MACS / PEs")
    expect(busy["vpu"] >= want.vpu_lines, f"VPU_BUSY {busy['vpu']} < {want.vpu_lines} lines")
    expect(stall >= 1 if want.retired else True, "FETCH_STALL 0 although instructions ran")
    return bad


class Runner:
    """Cases on one RTL simulator (started on first use; restarted by the backend after
    a hang or a divergence)."""

    def __init__(
        self,
        hw: HwConfig,
        faults: tuple[str, ...] = (),
        waves: Path | None = None,
        assertions: bool = True,
    ):
        from sim.rtl.backend import NO_ASSERTIONS, VerilatorBackend

        self.hw = hw
        # Without the RTL's assertions, the checks outside the core (lockstep, whole-SRAM
        # and DRAM comparison, AXI4 rules, counters) are what finds a bug.
        plusargs = [] if assertions else [NO_ASSERTIONS]
        self.backend = VerilatorBackend(hw, faults=list(faults), waves=waves, plusargs=plusargs)
        self.backend.layers = checkpoint_layers()
        self.scrub = encode_program(scrub_program(hw))

    def close(self) -> None:
        self.backend.close()

    def run(self, case: Case) -> Verdict:
        from sim.rtl.backend import (
            AssertionFailure,
            DivergenceError,
            HangError,
            ProtocolError,
            RtlError,
        )

        account = expected_outcome(self.hw, case)
        want = account.error
        expected = "halt" if want is None else want.fault.name
        dram = case.image()
        seen = len(self.backend.stats["isa_mismatches"])
        t0 = time.perf_counter()
        verdict = Verdict(True, "pass", expected)
        before: dict = {}
        try:
            # The scrub code sits at the end of the code area; the case's code ends
            # where its own instructions do (a program without HALT runs off it).
            area = bytearray(CODE_BYTES)
            area[: len(case.code)] = case.code
            area[CODE_BYTES - len(self.scrub) :] = self.scrub
            dram[: len(area)] = memoryview(area)
            self.backend.run_segment(
                dram, bytes(area), CODE_BYTES - len(self.scrub), lambda layer: None
            )
            before = dict(self.backend.stats)
            self.backend.run_segment(dram, case.code, case.pc, lambda layer: None)
            if want is not None:
                verdict = Verdict(
                    False, "outcome", expected, f"the RTL halted; the ISA model: {want}"
                )
        except DivergenceError as e:
            verdict = Verdict(False, "divergence", expected, str(e))
        except HangError as e:
            verdict = Verdict(False, "hang", expected, str(e))
        except ProtocolError as e:
            verdict = Verdict(False, "protocol", expected, str(e))
        except AssertionFailure as e:
            verdict = Verdict(False, "assertion", expected, str(e))
        except RtlError as e:
            if e.fault is None and want is None:
                verdict = Verdict(False, "error", expected, str(e))
            elif want is None or (e.fault, e.index, e.pc) != (want.fault, want.index, want.pc):
                verdict = Verdict(
                    False, "outcome", expected, f"{e}\n  the ISA model: {want or 'halts'}"
                )
        stats = self.backend.stats
        mismatches = stats["isa_mismatches"][seen:]
        if verdict.ok and mismatches:
            verdict = Verdict(
                False, "mismatch", expected, "; ".join(m.get("reason", "?") for m in mismatches)
            )
        if before:
            counts = {k: stats[k] - before.get(k, 0) for k in COUNTED}
            verdict.cycles, verdict.retired = counts["cycles"], counts["retired"]
            problems = counter_problems(self.hw, account, counts) if verdict.ok else []
            if problems:
                verdict = Verdict(False, "counters", expected, "; ".join(problems))
        verdict.seconds = time.perf_counter() - t0
        return verdict
