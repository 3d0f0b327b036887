"""The scoreboard: the RTL against the ISA model (sim.ref), fed only by analysis ports.

From the host driver: the segment (before the core starts) and the registers read
after its end; from the core monitor: checkpoints and the end of the run. Verdicts go
out on its own analysis port, one per checkpoint and one per segment.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from pyuvm import uvm_analysis_port, uvm_scoreboard, uvm_subscriber

from contract.blob import binding_view
from contract.csr import STATUS_FAULT
from contract.hw import HwConfig
from contract.isa import Mem
from contract.regions import OperandError, Sram, resolve
from sim.ref import ExecError, RefMachine
from testbench import lockstep
from testbench.bfm import LoomBfm
from testbench.transactions import (
    CheckpointTxn,
    CheckpointVerdict,
    RunEnd,
    RunOutcome,
    SegmentItem,
    SegmentVerdict,
)


class Scoreboard(uvm_scoreboard):
    """Checks the RTL against the ISA model at two granularities.

    On a segment it runs the ISA model over it on a private copy of the DRAM image,
    keeping every checkpoint's expected bytes and, per retired instruction, the pc and
    the digest of what it wrote; those go to the lockstep checker in the simulator,
    which compares every retirement as it happens (testbench/lockstep.py). Each
    checkpoint's tensor is compared bit for bit in the RTL's DRAM; at the end of the
    segment the whole DRAM image and both whole SRAMs (the checker's shadow of them), the
    DRAM port's AXI4 rule checker is read, and the checker's first disagreement is
    explained."""

    def build_phase(self):
        self.analysis_export = uvm_subscriber.uvm_AnalysisImp("analysis_export", self, self.write)
        self.ap = uvm_analysis_port("ap", self)
        self.bfm: LoomBfm = self.cdb_get("bfm")  # the lockstep checker's buffers
        self.hw: HwConfig = self.cdb_get("hw")
        # Per layer id, the ISA model's tensor at each of its checkpoints, in order (a
        # program may checkpoint one layer more than once).
        self.expected: dict[int, deque[np.ndarray]] = {}
        self.ref_fault: ExecError | None = None
        self.ref_dram: np.ndarray | None = None
        self.layers: dict[int, dict] = {}
        self.dram: np.ndarray | None = None  # the RTL's DRAM (shared mapping)
        self.exp: lockstep.Expectations | None = None
        self.trace = np.zeros((0, 4), dtype=np.uint64)  # pc, cycle, digest, issue cycle
        self.end: RunEnd | None = None

    def write(self, txn) -> None:
        match txn:
            case SegmentItem():
                self.expect(txn)
            case CheckpointTxn():
                self.ap.write(self.check_checkpoint(txn))
            case RunEnd():
                self.end = txn
            case RunOutcome():
                self.ap.write(self.verdict(txn))

    def expect(self, segment: SegmentItem) -> None:
        hw = self.hw
        dram = np.memmap(segment.dram_path, dtype=np.uint8, mode="r+")
        self.code = bytes(dram[: segment.code_end])
        self.pc = segment.pc
        self.dram = dram
        self.layers = segment.layers
        self.expected = {}
        self.end = None
        self.initial_dram = np.array(dram, copy=True)  # to re-run up to a divergence
        ref_dram = np.array(dram, copy=True)
        machine = RefMachine(hw, ref_dram)
        # SRAM keeps its contents across segments, as the core's does: the ISA model
        # starts from what the RTL's SRAM holds now, so the whole of it can be compared
        # at the end.
        machine.spad[:] = self.bfm.lockstep_shadow(0, hw.spad_elems).view(np.float32)
        machine.acc[:] = self.bfm.lockstep_shadow(1, hw.acc_elems).view(np.float32)
        self.machine = machine
        self.bfm.axi_begin(hw.dram_bus_bits // 8)
        self.bfm.assert_begin()

        def on_checkpoint(layer_id: int) -> None:
            la = self.layers.get(layer_id)
            if la is not None:
                tensor = _raw(ref_dram, la["output"]).copy()
                self.expected.setdefault(layer_id, deque()).append(tensor)

        self.exp = lockstep.expectations(machine, self.code, self.pc, on_checkpoint)
        self.ref_fault = self.exp.fault
        self.ref_dram = ref_dram
        # Room for every retirement the ISA model made, plus a margin for an RTL that
        # runs on past it (the checker stops at the first extra one anyway).
        self.trace = np.zeros((len(self.exp.pc) + 16, 4), dtype=np.uint64)
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

    def check_checkpoint(self, txn: CheckpointTxn) -> CheckpointVerdict:
        """Compare the layer's tensor in the RTL's DRAM with the ISA model's."""
        la = self.layers.get(txn.layer)
        row = {"layer": txn.layer, "cycle": txn.cycle, "retired": txn.retired}
        if la is None:
            row.update(match=False, reason=f"checkpoint {txn.layer} not in the layer table")
        elif not self.expected.get(txn.layer):
            row.update(match=False, reason="the ISA model never reached this checkpoint")
        else:
            expected = self.expected[txn.layer].popleft()
            row.update(compare_bits(expected, _raw(self.dram, la["output"]), la))
        return CheckpointVerdict(txn.layer, txn.cycle, row)

    def verdict(self, outcome: RunOutcome) -> SegmentVerdict:
        end = self.end
        status = {"irq": "done", "diverge": "diverge"}.get(end.kind, "timeout")
        if status != "timeout" and outcome.status & STATUS_FAULT:
            status = "fault"
        divergence = self.divergence()
        if divergence is not None:
            status = "diverge"
        assertion = self.bfm.assert_end()
        if assertion is not None:
            status = "assertion"
        self.dram.flush()
        return SegmentVerdict(
            status=status,
            end=end,
            outcome=outcome,
            divergence=divergence,
            trace=self.retire_trace().copy(),
            ref_fault=None if self.ref_fault is None else int(self.ref_fault.fault),
            ref_fault_msg=None if self.ref_fault is None else str(self.ref_fault),
            final=self.final(self.dram) if self._comparable(status, outcome) else {"match": True},
            axi=self.bfm.axi_end(outcome.cycles, complete=status in ("done", "fault")),
            assertion=assertion,
        )

    def _comparable(self, status: str, outcome: RunOutcome) -> bool:
        """Whether the end state is defined: the run finished, or it faulted where the
        ISA model did (everything before the fault has taken effect)."""
        if status == "done":
            return True
        ref = self.ref_fault
        return (
            status == "fault"
            and ref is not None
            and int(ref.fault) == outcome.fault
            and ref.pc == outcome.fault_pc
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
        # The diverging retirement is in the trace with the cycle its unit started it.
        start = int(trace[index, 3]) if 0 <= index < len(trace) else None
        return lockstep.explain(
            self.hw, self.initial_dram, self.code, self.pc, self.exp, raw, self.scratch, start
        )

    def final(self, dram: np.ndarray) -> dict:
        """The whole DRAM image and the whole of both SRAMs against the ISA model's (bytes
        no instruction touched included). After a fault, the faulting instruction's
        destination is left out: the ISA leaves it undefined."""
        if self.ref_dram is None:
            return {"match": True}
        n = min(dram.size, self.ref_dram.size)
        count, a = _differing(dram[:n], self.ref_dram[:n])
        if count:
            return {
                "match": False,
                "reason": f"{count} DRAM bytes differ from the ISA model; first at {a:#x}"
                f" (RTL {int(dram[a]):#04x}, ISA model {int(self.ref_dram[a]):#04x})",
            }
        undefined = self._fault_destination()
        for mem, space, ref in ((0, Mem.SPAD, self.machine.spad), (1, Mem.ACC, self.machine.acc)):
            rtl = self.bfm.lockstep_shadow(mem, ref.size)
            differ = rtl != ref.view(np.uint32)
            if undefined is not None and undefined.space == space:
                for r in range(undefined.rows):
                    start = undefined.addr + r * undefined.stride
                    differ[start : start + undefined.cols] = False
            diff = np.nonzero(differ)[0]
            if diff.size:
                e = int(diff[0])
                return {
                    "match": False,
                    "reason": f"{diff.size} {space.name} elements differ from the ISA model;"
                    f" first at element {e} (RTL {int(rtl[e]):#010x},"
                    f" ISA model {int(ref.view(np.uint32)[e]):#010x})",
                }
        return {"match": True}

    def _fault_destination(self) -> Sram | None:
        """The SRAM region the ISA model's faulting instruction would have written, when
        it faulted while executing (its operands resolved)."""
        err = self.ref_fault
        if err is None or err.insn is None:
            return None
        try:
            writes = resolve(err.insn, self.hw, self.ref_dram.size).writes
        except OperandError:
            return None  # faulted at issue: it wrote nothing
        dst = next(iter(writes.values()), None)
        return dst if isinstance(dst, Sram) else None


def _differing(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 24) -> tuple[int, int]:
    """(how many, the first) of the positions where a and b differ, compared a chunk at a
    time: a whole-image comparison would allocate (and the kernel zero) a boolean array
    as large as the DRAM image, hundreds of MB for GPT-2."""
    count, first = 0, -1
    for off in range(0, a.size, chunk):
        d = np.flatnonzero(a[off : off + chunk] != b[off : off + chunk])
        if d.size:
            first = off + int(d[0]) if first < 0 else first
            count += int(d.size)
    return count, first


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
