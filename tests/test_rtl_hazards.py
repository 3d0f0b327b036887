"""Every read/write hazard between every two units of the overlapping core.

The control unit issues an instruction while older ones still execute on other units
(rtl/loom_ctrl.sv); sequential semantics hold only if it waits for every SRAM
dependency on them. Here each pair of units (X older, Y younger, on different units)
meets on one region in every way their instructions can (read-after-write,
write-after-read, write-after-write, in SPAD and in ACC): X is long, so that Y, issued
without the wait, would overtake it. Each case runs in lockstep with the ISA model
(every retirement's written region compared), the issue trace shows Y issued after X
retired, and where only the dependency orders them STALL_DEP counts the wait (where the
two also drive one memory port, the port rule orders them as well). With the injected fault ctrl_no_hazard (issue
ignores dependencies) every case that only the dependency check protects diverges:
these tests catch a core that misses one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from contract.asm import assemble
from contract.hw import DEFAULT_HW
from contract.isa import encode_program
from perf.schedule import ports

ROWS, COLS = 128, 16  # a DMA or matmul region: 128 lines of one SRAM line each
# A vector-unit region is twice as long: the VPU walks one line a cycle, so a shorter X
# would finish before a DMA Y (behind the DRAM latency) reaches the row they share.
VPU_ROWS = 2 * ROWS
ELEMS = ROWS * COLS
SLOT = 2 * VPU_ROWS * COLS  # each operand's slot: its region and room for one shifted in
DATA = 0x10000  # random fp32 rows in DRAM, blocks of ELEMS
SOURCES = 16  # the last two blocks are X's and Y's alone, the prologue cycles the rest
OUT = DATA + SOURCES * ELEMS * 4  # where the DMA stores go
DRAM_BYTES = 0x80000
UNITS = ("dma", "mxu", "vpu")


@dataclass(frozen=True)
class Template:
    """One instruction shape: its unit and its SRAM operands (name, space, written)."""

    name: str
    unit: str
    operands: tuple[tuple[str, str, bool], ...]

    @property
    def rows(self) -> int:
        return VPU_ROWS if self.unit == "vpu" else ROWS

    def text(self, at: dict[str, int], source: int = DATA) -> str:
        """The instruction with each operand at element address at[name]; a load reads
        DRAM from `source`."""
        region = f"rows={self.rows} cols={COLS}"
        dram = f"dram_rs={COLS} dram_cs=1 {region}"
        if self.name.startswith("ld_"):
            space = self.name[3:]
            return f"dma_ld space={space} dtype=fp32 sram={at['dst']} sram_stride={COLS} dram={source} {dram}"
        if self.name.startswith("st_"):
            space = self.name[3:]
            dtype = "fp32" if space == "acc" else "bf16"
            return f"dma_st space={space} dtype={dtype} sram={at['src']} sram_stride={COLS} dram={OUT} {dram}"
        if self.name.startswith("mm"):
            acc = " acc=1" if self.name == "mm_acc" else ""
            return (
                f"matmul dst={at['c']} dst_stride={COLS} a={at['a']} a_stride={COLS}"
                f" b={at['b']} b_stride={COLS} m={ROWS} n={COLS} k={COLS}{acc}"
            )
        if self.name.startswith("move_"):
            src, dst = self.name[5:].split("_to_")
            return (
                f"move dst_space={dst} src_space={src} dst={at['dst']} dst_stride={COLS}"
                f" src={at['src']} src_stride={COLS} {region}"
            )
        if self.name == "vadd":
            return (
                f"vadd dst={at['dst']} dst_stride={COLS} a={at['a']} a_stride={COLS}"
                f" b={at['b']} b_stride={COLS} {region}"
            )
        # VUNARY, VMASK, VREDUCE (its destination one column per row).
        extra = " offset=0 imm=-1.0" if self.name == "vmask" else ""
        return (
            f"{self.name} dst={at['dst']} dst_stride={COLS} a={at['a']} a_stride={COLS}"
            f" {region}{extra}"
        )


TEMPLATES = (
    Template("ld_spad", "dma", (("dst", "spad", True),)),
    Template("ld_acc", "dma", (("dst", "acc", True),)),
    Template("st_spad", "dma", (("src", "spad", False),)),
    Template("st_acc", "dma", (("src", "acc", False),)),
    Template("mm", "mxu", (("a", "spad", False), ("b", "spad", False), ("c", "acc", True))),
    Template(
        "mm_acc",
        "mxu",
        (("a", "spad", False), ("b", "spad", False), ("c", "acc", True), ("c", "acc", False)),
    ),
    Template("move_spad_to_acc", "vpu", (("src", "spad", False), ("dst", "acc", True))),
    Template("move_acc_to_spad", "vpu", (("src", "acc", False), ("dst", "spad", True))),
    Template("vadd", "vpu", (("a", "acc", False), ("b", "acc", False), ("dst", "acc", True))),
    Template("vexp", "vpu", (("a", "acc", False), ("dst", "acc", True))),
    Template("vmask", "vpu", (("a", "acc", False), ("dst", "acc", True))),
    Template("vrsum", "vpu", (("a", "acc", False), ("dst", "acc", True))),
)


@dataclass(frozen=True)
class Case:
    x: Template
    y: Template
    x_operand: str
    y_operand: str
    kind: str  # RAW, WAR, WAW
    space: str

    @property
    def name(self) -> str:
        return f"{self.x.name}.{self.x_operand}-{self.kind}-{self.y.name}.{self.y_operand}"

    @property
    def shares_a_port(self) -> bool:
        return bool(ports(_insn(self.x)) & ports(_insn(self.y)))

    def source(self) -> str:
        """Prologue (every region loaded), FENCE, X, Y, FENCE, HALT.

        Y's operand starts at the last row of X's: the row X reaches last is the row Y
        touches first, so however their units walk the regions, Y issued early gets
        there before X does."""
        bases = {"spad": 0, "acc": 0}
        at_x, at_y = {}, {}
        for tmpl, at in ((self.x, at_x), (self.y, at_y)):
            for name, space, _ in tmpl.operands:
                if name not in at:
                    at[name] = bases[space]
                    bases[space] += SLOT
        x_rows = COLS if (self.x.unit, self.x_operand) == ("mxu", "b") else self.x.rows
        at_y[self.y_operand] = at_x[self.x_operand] + (x_rows - 1) * COLS
        lines, block = [], 0
        for space in ("spad", "acc"):
            for base in range(0, bases[space], ELEMS):
                source = DATA + (block % (SOURCES - 2)) * ELEMS * 4
                lines.append(
                    f"dma_ld space={space} dtype=fp32 sram={base} sram_stride={COLS}"
                    f" dram={source} dram_rs={COLS} dram_cs=1 rows={ROWS} cols={COLS}"
                )
                block += 1
        # X and Y load data no earlier instruction loaded, so an overtaking is visible.
        x_source = DATA + (SOURCES - 2) * ELEMS * 4
        x, y = self.x.text(at_x, x_source), self.y.text(at_y, x_source + ELEMS * 4)
        lines += ["fence", x, y, "fence", "halt"]
        return "\n".join(lines)


def _insn(t: Template):
    at = {name: 0 for name, _, _ in t.operands}
    return assemble(t.text(at))[0]


def _cases() -> list[Case]:
    out = []
    for x, y in itertools.product(TEMPLATES, TEMPLATES):
        if x.unit == y.unit:
            continue  # one unit runs its instructions in order
        for (xn, xs, xw), (yn, ys, yw) in itertools.product(x.operands, y.operands):
            if xs != ys or not (xw or yw):
                continue
            kind = "WAW" if xw and yw else "RAW" if xw else "WAR"
            out.append(Case(x, y, xn, yn, kind, xs))
    # One case per (X, Y, kind, space, operands) combination, unique by name.
    return list({c.name: c for c in out}.values())


CASES = _cases()


def _dram(code: bytes) -> np.ndarray:
    rng = np.random.default_rng(11)
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    rows = rng.standard_normal(SOURCES * ELEMS).astype(np.float32)  # [SOURCES * ELEMS]
    dram[DATA : DATA + rows.nbytes] = rows.view(np.uint8)
    return dram


def test_the_cases_cover_every_unit_pair_and_hazard():
    covered = {(c.x.unit, c.y.unit, c.kind) for c in CASES}
    pairs = [(a, b) for a in UNITS for b in UNITS if a != b]
    assert covered == {(a, b, k) for a, b in pairs for k in ("RAW", "WAR", "WAW")}
    assert {c.space for c in CASES} == {"spad", "acc"}
    # Some pairs are ordered by a shared port as well; most only by the dependency.
    alone = [c for c in CASES if not c.shares_a_port]
    assert {(c.x.unit, c.y.unit) for c in alone} == set(pairs)


def _run_all(
    faults: tuple[str, ...], cases: list[Case], assertions: bool = True
) -> dict[str, object]:
    """Each case on one simulator: its counters, or the error it raised."""
    from sim.rtl.backend import NO_ASSERTIONS, VerilatorBackend

    out: dict[str, object] = {}
    plusargs = [] if assertions else [NO_ASSERTIONS]
    backend = VerilatorBackend(DEFAULT_HW, faults=list(faults), plusargs=plusargs, trace=True)
    try:
        for case in cases:
            code = encode_program(assemble(case.source()))
            before = dict(backend.stats)
            traced = len(backend.trace)
            try:
                backend.run_segment(_dram(code), code, 0, lambda layer: None)
            except Exception as e:  # noqa: BLE001 - the verdict is the error
                out[case.name] = e
                continue
            st = backend.stats
            out[case.name] = {
                k: st.get(k, 0) - before.get(k, 0) for k in ("stall_dep", "stall_unit", "overlap")
            } | {"mismatches": len(st["isa_mismatches"]) - len(before["isa_mismatches"])}
            # ... fence, X, Y, fence, halt: when X retired and when Y issued.
            x, y = backend.trace[traced:][-4:-2]
            out[case.name] |= {"x_retired": x.cycle, "y_issued": y.issued}
    finally:
        backend.close()
    return out


@pytest.mark.rtl
def test_every_hazard_waits_and_matches_the_isa_model():
    results = _run_all((), CASES)
    failed = {n: r for n, r in results.items() if not isinstance(r, dict) or r["mismatches"]}
    assert not failed, failed
    for case in CASES:
        r = results[case.name]
        assert r["y_issued"] > r["x_retired"], (case.name, r)
        if not case.shares_a_port:
            assert r["stall_dep"] > 0, (case.name, r)


@pytest.mark.rtl
def test_a_core_that_ignores_dependencies_fails_these_tests():
    """ctrl_no_hazard: Y issues while X runs. With the RTL's assertions off (the
    assertion InFlightIndependent names such a core at once: tests/test_fuzz.py), every
    case the dependency check alone orders must diverge from the ISA model in lockstep."""
    from sim.rtl.backend import DivergenceError

    alone = [c for c in CASES if not c.shares_a_port]
    results = _run_all(("ctrl_no_hazard",), alone, assertions=False)
    missed = []
    for case in alone:
        r = results[case.name]
        caught = isinstance(r, DivergenceError) or (isinstance(r, dict) and r["mismatches"])
        if not caught:
            missed.append((case.name, r))
    assert not missed, missed


@pytest.mark.rtl
def test_a_footprint_short_of_its_region_is_caught():
    """footprint_short: write footprints cover only their first line. The scoreboard
    trusts footprints, so loom_core compares every SRAM access with its instruction's
    (the AccessInFootprint assertions): the first write past a first line fails. With
    the assertions off, the overtaking it allows diverges in lockstep."""
    from sim.rtl.backend import AssertionFailure, DivergenceError

    case = next(c for c in CASES if c.name == "mm.c-RAW-st_acc.src")
    assert not case.shares_a_port
    r = _run_all(("footprint_short",), [case])[case.name]
    assert isinstance(r, AssertionFailure) and r.name.endswith("AccessInFootprint"), r
    r = _run_all(("footprint_short",), [case], assertions=False)[case.name]
    assert isinstance(r, DivergenceError) or (isinstance(r, dict) and r["mismatches"]), r
