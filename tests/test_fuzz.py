"""Constrained-random programs (verif/): the generator makes what it claims, cases are
reproducible and survive their assembly file, the shrinker finds a minimal program, and
on the RTL a fixed budget of programs runs clean while each injected RTL bug is found."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from contract.hw import DEFAULT_HW
from contract.isa import (
    FORMATS,
    INSN_BYTES,
    Fault,
    IllegalInstruction,
    Mem,
    Opcode,
    Role,
    decode,
)
from contract.regions import Sram, overlap, resolve
from sim.ref import ExecError, RefMachine
from verif.case import DRAM_BYTES, Case
from verif.generate import FAULTS, SCRUB_ELEMS, Generator, case, scrub_program
from verif.shrink import shrink

SEED = 11
BUDGET = 300  # programs on the RTL in `make test`
PAGE = 4096


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return [case(DEFAULT_HW, SEED, i) for i in range(BUDGET)]


def _insns(c: Case):
    for w in c.words:
        try:
            yield decode(w)
        except IllegalInstruction:
            continue


def test_cases_do_what_they_are_built_for(cases):
    """Legal cases halt on the ISA model; a faulting case faults with its class, at an
    instruction that by itself has that fault, after instructions that are all legal."""
    g = Generator(DEFAULT_HW, (SEED, 0))
    for c in cases:
        try:
            RefMachine(DEFAULT_HW, c.image()).run(c.code, c.pc)
            outcome = None
        except ExecError as e:
            outcome = e
        if c.intent == "legal":
            assert outcome is None, f"{c.seed}: {outcome}"
            continue
        assert outcome is not None and outcome.fault.name == c.intent, (c.seed, outcome)
        if outcome.fault == Fault.FETCH_RANGE:
            assert c.pc % INSN_BYTES or outcome.pc == len(c.code)
            continue
        before = [decode(w) for w in c.words[: outcome.index]]
        assert all(g.legal(i) for i in before), c.seed
        word = c.words[outcome.index]
        if outcome.fault == Fault.ILLEGAL_INSN:
            with pytest.raises(IllegalInstruction):
                decode(word)
        else:
            assert g.first_fault(decode(word)) == outcome.fault


def test_generator_reaches_every_class(cases):
    """Over the make-test budget: every opcode, every value of every selector and flag,
    every fault class, empty/1/line/line+1 shapes, rows across a 4 KiB page, transposed,
    strided and broadcast DRAM access, both SRAM zones, and instructions that read what
    the one before them wrote."""
    seen = Counter()
    for c in cases:
        seen[("intent", c.intent)] += 1
        previous: list = []
        for insn in _insns(c):
            seen[("opcode", insn.opcode)] += 1
            for f in insn.fmt.fields:
                if f.role in (Role.SELECT, Role.FLAG):
                    seen[(insn.opcode, f.name, int(insn.args[f.name]))] += 1
            try:
                ops = resolve(insn, DEFAULT_HW, DRAM_BYTES)
            except Exception:
                continue
            for r in ops.regions():
                if isinstance(r, Sram):
                    size = DEFAULT_HW.acc_elems if r.space == Mem.ACC else DEFAULT_HW.spad_elems
                    seen[("sram rows", min(r.rows, 2))] += 1
                    seen[("sram cols", r.cols if r.cols <= 17 else "many")] += 1
                    seen[("zone", "top" if r.addr >= size - SCRUB_ELEMS else "bottom")] += 1
                elif not r.empty:
                    seen[("page crossing", r.addr // PAGE != (r.end - 1) // PAGE)] += 1
                    seen[("dram", "transposed" if r.rs == 1 and r.cs > 1 else
                          "broadcast" if r.rs == 0 and r.rows > 1 else
                          "strided" if r.cs > 1 else "rows")] += 1  # fmt: skip
            reads = [r for r in ops.reads.values() if not r.empty]
            if any(overlap(r, w) for r in reads for w in previous):
                seen[("depends on the previous", insn.unit)] += 1
            previous = [w for w in ops.writes.values() if not w.empty]
    want = [("opcode", op) for op in Opcode]
    want += [("intent", f.name) for f in FAULTS] + [("intent", "legal")]
    for fmt in FORMATS.values():
        for f in fmt.fields:
            if f.role == Role.SELECT:
                want += [(fmt.opcode, f.name, int(v)) for v in f.enum]
            elif f.role == Role.FLAG:
                want += [(fmt.opcode, f.name, v) for v in (0, 1)]
    want += [("sram rows", n) for n in (0, 1, 2)] + [("sram cols", n) for n in (1, 15, 16, 17)]
    want += [("zone", "top"), ("zone", "bottom"), ("page crossing", True)]
    want += [("dram", k) for k in ("transposed", "broadcast", "strided", "rows")]
    want += [("depends on the previous", u) for u in ("dma", "mxu", "vpu")]
    missing = [w for w in want if not seen[w]]
    assert not missing, missing


def test_cases_are_reproducible_and_survive_their_file(cases):
    for c in cases[:50]:
        again = case(DEFAULT_HW, *c.seed)
        assert again.words == c.words and again.pc == c.pc
        back = Case.from_text(c.to_text())
        assert (back.words, back.pc, back.seed, back.intent) == (c.words, c.pc, c.seed, c.intent)
        assert np.array_equal(back.image(), c.image())


def test_scrub_program_clears_both_zones():
    m = RefMachine(DEFAULT_HW, np.zeros(DRAM_BYTES, np.uint8))
    m.acc[:], m.spad[:] = 3.0, 5.0
    for insn in scrub_program(DEFAULT_HW):
        m.step(insn)
    for mem in (m.acc, m.spad):
        assert not mem[:SCRUB_ELEMS].any() and not mem[-SCRUB_ELEMS:].any()


def test_shrink_finds_a_one_minimal_program(cases):
    """A stand-in for an RTL bug: the program 'fails' when it has a VADD that reads an
    ACC region some earlier DMA_LD wrote. The shrinker must end with just the two."""

    def fails(c: Case) -> bool:
        loaded = []
        for insn in _insns(c):
            ops = resolve(insn, DEFAULT_HW, DRAM_BYTES)
            if insn.mnemonic == "vadd" and any(r.overlaps(ops.reads["a"]) for r in loaded):
                return True
            if insn.opcode == Opcode.DMA_LD and insn.space == Mem.ACC:
                loaded.append(ops.writes["dst"])
        return False

    failing = [c for c in cases if c.intent == "legal" and fails(c)]
    assert failing, "the budget has no such program"
    small, runs = shrink(failing[0], fails)
    assert [i.mnemonic for i in _insns(small)] == ["dma_ld", "vadd"], small.to_text()
    assert runs < 200


# ------------------------------------------------------------------ RTL
@pytest.mark.rtl
def test_fuzz_budget_on_the_rtl(tmp_path):
    """The make-test budget: every program agrees with the ISA model in lockstep, with
    the same outcome, and the whole DRAM and SRAM match at the end."""
    from verif.run import Runner

    runner = Runner(DEFAULT_HW)
    failed = []
    try:
        for i in range(BUDGET):
            c = case(DEFAULT_HW, SEED, i)
            v = runner.run(c)
            if not v.ok:
                failed.append((c.seed, v.kind, v.message[:300]))
    finally:
        runner.close()
    assert not failed, failed


@pytest.mark.rtl
@pytest.mark.parametrize(
    "fault, kind, assertion",
    [
        # Wrong values: the lockstep checker; no assertion describes arithmetic or
        # addressing results, so the run reaches it.
        ("vpu_add_round", "divergence", None),
        ("dma_stride", "divergence", None),
        ("mxu_acc_flip", "divergence", None),
        ("ctrl_pc_skip", "divergence", None),
        # Writes outside every destination: the vector unit's lane-mask assertion, and
        # without assertions only the whole-SRAM comparison.
        ("vpu_mask_spill", "mismatch", "AccMaskIsChunk"),
        # Right data in bursts across 4 KiB: the DMA engine's page assertion, and without
        # assertions only the DRAM port's AXI4 rule checker.
        ("dma_burst_4k", "protocol", "ArWithinPage"),
        # Issue that ignores SRAM dependencies between units: the control unit's
        # assertion over the footprints in flight, and without assertions the lockstep
        # checker (the random programs draw sources from what was just written).
        ("ctrl_no_hazard", "divergence", "InFlightIndependent"),
    ],
)
def test_fuzz_finds_an_injected_rtl_bug(fault, kind, assertion, tmp_path):
    """With a bug injected into the RTL (debug build), the first random programs find it
    and name it the way the checks see it: first with the RTL's assertions on (the
    assertion that catches it, by name), then with them off (the harness's own check)."""
    import json

    from verif.__main__ import main

    def first_failure(*extra: str) -> dict:
        out = tmp_path / (fault + "".join(extra))
        rc = main(["fuzz", "--seed", "5", "-n", "40", "--fault", fault, "--max-failures", "1",
                   "--no-shrink", "--out", str(out), *extra])  # fmt: skip
        assert rc == 1
        (failure,) = json.loads((out / "summary.json").read_text())["failed"]
        return failure

    failure = first_failure()
    if assertion is None:
        assert failure["kind"] == kind, failure
    else:
        assert failure["kind"] == "assertion", failure
        assert f"assertion {assertion} failed" in failure["message"], failure
        assert first_failure("--no-assert")["kind"] == kind


@pytest.mark.rtl
def test_a_found_bug_is_shrunk_saved_and_rerun(tmp_path):
    """The failing program is shrunk to a few instructions, saved as assembly, and the
    saved file fails again on a fresh simulator (and passes without the bug)."""
    from verif.__main__ import main

    fault, out = "vpu_mask_spill", tmp_path / "spill"
    rc = main(["fuzz", "--seed", "5", "-n", "40", "--fault", fault, "--max-failures", "1",
               "--out", str(out)])  # fmt: skip
    assert rc == 1
    (saved,) = out.glob("*.s")
    small = Case.load(saved)
    assert 1 <= len(small.words) <= 4, small.to_text()
    assert any(i.unit == "vpu" for i in _insns(small)), small.to_text()
    assert main(["rerun", str(saved), "--fault", fault, "--out", str(out)]) == 1
    assert main(["rerun", str(saved), "--out", str(out)]) == 0
