"""The debugging workflow: lockstep co-simulation, windowed waveforms and their views,
instruction logs (mismatch dumps: tests/test_dumps.py).

The proof that the harness works is fault injection: each fault of sim/faults.py is
compiled into the "debug" build of the RTL and armed in turn; the harness must name the
first divergent instruction and its layer, which the program below is built to make
known in advance, and a windowed FST around it must exist, be small and hold the
signals of the generated view (read back with pywellen).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import lockstep
from contract.asm import assemble
from contract.blob import Program
from contract.hw import DEFAULT_HW
from contract.isa import Opcode, decode, encode_program
from contract.lockstep import RegionKind
from sim.ref import RefMachine
from sim.rtl.faults import FAULTS
from sim.rtl.waves import Window, window_for

ROOT = Path(__file__).resolve().parent.parent
DATA, DATA_B, OUT = 0x4000, 0x5000, 0x8000
DRAM_BYTES = 0x10000


# ---------------------------------------------------------------------------- no RTL
def test_digest_matches_its_definition():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2**32, size=37, dtype=np.uint64)
    expected = 0
    for j, x in enumerate(w.tolist()):
        k = (j * 0xD6E8FEB86659FD93) & (2**64 - 1) | 1
        expected = (expected + (x + 0x9E3779B97F4A7C15) * k) & (2**64 - 1)
    assert lockstep.digest(w) == expected
    # Any one changed word, and any swap of two different words, changes the digest.
    for j in range(w.size):
        v = w.copy()
        v[j] ^= 1
        assert lockstep.digest(v) != expected
    v = w.copy()
    v[[3, 4]] = v[[4, 3]]
    assert lockstep.digest(v) != expected


def test_write_regions_cover_every_writing_opcode():
    src = """dma_ld space=spad dtype=bf16 sram=32 sram_stride=48 dram=0x100 dram_rs=40 dram_cs=1 rows=5 cols=37
    dma_st space=acc dtype=bf16 sram=0 sram_stride=16 dram=0x200 dram_rs=9 dram_cs=2 rows=3 cols=4
    gather space=acc dtype=fp32 sram=64 sram_stride=16 table_addr=0x400 table_rs=8 table_rows=5 idx=0x800 rows=2 cols=8
    matmul dst=16 dst_stride=32 a=0 a_stride=16 b=0 b_stride=16 m=3 n=7 k=2
    move dst_space=spad src_space=acc dst=0 dst_stride=48 src=0 src_stride=48 rows=6 cols=40
    vadd dst=512 dst_stride=48 a=0 a_stride=48 b=0 b_stride=48 rows=2 cols=40
    vrsum dst=0 dst_stride=16 a=64 a_stride=48 rows=3 cols=40
    nop"""
    regions = [lockstep.write_record(i, DEFAULT_HW, DRAM_BYTES).astuple() for i in assemble(src)]
    assert regions == [
        (RegionKind.SPAD, 32, 48, 1, 5, 37, 4),
        (RegionKind.DRAM, 0x200, 9, 2, 3, 4, 2),
        (RegionKind.ACC, 64, 16, 1, 2, 8, 4),
        (RegionKind.ACC, 16, 32, 1, 3, 7, 4),
        (RegionKind.SPAD, 0, 48, 1, 6, 40, 4),
        (RegionKind.ACC, 512, 48, 1, 2, 40, 4),
        (RegionKind.ACC, 0, 16, 1, 3, 1, 4),
        (RegionKind.NONE, 0, 0, 0, 0, 0, 0),
    ]


def _fault_program():
    """A program whose first divergence under each injected fault is known by design:
    every fault's first victim is the first instruction of its own layer."""
    st = "dma_st space=acc dtype=fp32 dram_cs=1"
    src = f"""
    dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={DATA} dram_rs=24 dram_cs=1 rows=1 cols=24
    {st} sram=0 sram_stride=32 dram={OUT} dram_rs=24 rows=1 cols=24
    checkpoint layer=1
    dma_ld space=acc dtype=fp32 sram=32 sram_stride=32 dram={DATA} dram_rs=24 dram_cs=1 rows=4 cols=24
    {st} sram=32 sram_stride=32 dram={OUT + 0x100} dram_rs=24 rows=4 cols=24
    checkpoint layer=2
    move dst_space=acc src_space=acc dst=256 dst_stride=32 src=32 src_stride=32 rows=4 cols=24
    vmul dst=384 dst_stride=32 a=256 a_stride=32 b=256 b_stride=32 rows=4 cols=24
    {st} sram=384 sram_stride=32 dram={OUT + 0x300} dram_rs=24 rows=4 cols=24
    checkpoint layer=3
    vadd dst=512 dst_stride=32 a=256 a_stride=32 b=32 b_stride=32 rows=4 cols=24
    {st} sram=512 sram_stride=32 dram={OUT + 0x500} dram_rs=24 rows=4 cols=24
    checkpoint layer=4
    dma_ld space=spad dtype=fp32 sram=0 sram_stride=32 dram={DATA} dram_rs=24 dram_cs=1 rows=4 cols=24
    dma_ld space=spad dtype=fp32 sram=1024 sram_stride=16 dram={DATA_B} dram_rs=16 dram_cs=1 rows=24 cols=16
    matmul dst=512 dst_stride=32 a=0 a_stride=32 b=1024 b_stride=16 m=4 n=16 k=24
    {st} sram=512 sram_stride=32 dram={OUT + 0x700} dram_rs=24 rows=4 cols=16
    checkpoint layer=5
    halt"""
    code = encode_program(assemble(src))
    rng = np.random.default_rng(7)
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    dram[DATA : DATA + 4 * 24 * 4] = rng.standard_normal(96).astype(np.float32).view(np.uint8)
    b = rng.standard_normal(24 * 16).astype(np.float32)
    dram[DATA_B : DATA_B + b.nbytes] = b.view(np.uint8)
    out = {"dtype": "float32", "addr": OUT, "offset": 0, "shape": [24], "strides": [1]}
    names = ["load.row", "load.rows", "move.mul", "vector.add", "matrix.mm"]
    layers = [{"id": i + 1, "path": n, "output": out} for i, n in enumerate(names)]
    return Program(DEFAULT_HW, code, b"", {"layers": layers}), dram


# fault -> (first divergent instruction, its layer, what diverges)
FAULT_EXPECTATIONS = {
    "dma_stride": (3, "load.rows", "values"),
    "ctrl_pc_skip": (7, "move.mul", "pc"),
    "vpu_add_round": (10, "vector.add", "values"),
    "mxu_acc_flip": (15, "matrix.mm", "values"),
}


# Faults exercised elsewhere. tests/test_fuzz.py: a write outside every destination is
# seen only by the whole-SRAM comparison, a burst across 4 KiB only by the DRAM port's
# AXI4 rule checker. tests/test_rtl_hazards.py: a missed dependency needs two units'
# instructions in flight on one region, and a footprint short of its region the
# assertions that compare every SRAM access with it.
ELSEWHERE = {"vpu_mask_spill", "dma_burst_4k", "ctrl_no_hazard", "footprint_short"}


def test_every_fault_is_exercised_and_compiled_in():
    assert set(FAULT_EXPECTATIONS) | ELSEWHERE == set(FAULTS)
    rtl = "".join(p.read_text() for p in (ROOT / "rtl").glob("loom_*.sv"))
    for name in FAULTS:
        assert f'$test$plusargs("loom_fault_{name}")' in rtl, name


def test_fault_program_victims_are_what_the_table_says():
    program, _ = _fault_program()
    ops = [decode(program.code[i * 32 : i * 32 + 32]).opcode for i in range(19)]
    assert ops[3] == Opcode.DMA_LD and ops[6] == Opcode.MOVE
    assert ops[10] == Opcode.VBIN and ops[15] == Opcode.MATMUL
    spans = program.listing.layer_spans()
    for insn, layer, _ in FAULT_EXPECTATIONS.values():
        layer_id = next(la["id"] for la in program.layers if la["path"] == layer)
        assert spans[layer_id][0] <= insn <= spans[layer_id][1]


def test_wave_windows_resolve():
    program, _ = _fault_program()
    assert window_for(program, "vector", None, None) == Window(
        "insn", 10, 12, "layer vector (instructions 10:12)"
    )
    assert window_for(program, "load", None, None).lo == 0
    assert window_for(program, "load", None, None).hi == 5
    assert window_for(program, None, "100:200", None).checker_args() == (3, 100, 200)
    assert window_for(program, None, None, "3:4").checker_args() == (2, 96, 128)
    assert window_for(program, None, None, None).checker_args() == (1, 0, 0)
    with pytest.raises(ValueError, match="matches no layer"):
        window_for(program, "transformer.h.3", None, None)
    with pytest.raises(ValueError, match="first:last"):
        window_for(program, None, "12", None)
    with pytest.raises(ValueError, match="at most one"):
        window_for(program, "load", "1:2", None)


# ---------------------------------------------------------------------------- RTL
def _run_with_fault(fault: str | None, **options):
    from sim.rtl.backend import VerilatorBackend

    program, dram = _fault_program()
    backend = VerilatorBackend(DEFAULT_HW, faults=[fault] if fault else [], **options)
    backend.bind(program)
    try:
        backend.run_segment(dram, program.code, 0, lambda layer: None)
    finally:
        backend.close()
    return backend


@pytest.mark.rtl
def test_fault_free_debug_build_agrees_with_the_isa_model(tmp_path):
    """The debug build with no fault armed runs the program in lockstep without a
    divergence, and traces the whole run when asked."""
    program, dram = _fault_program()
    ref = dram.copy()
    RefMachine(DEFAULT_HW, ref).run(program.code, 0)
    from sim.rtl.backend import VerilatorBackend

    backend = VerilatorBackend(DEFAULT_HW, trace=True, waves=tmp_path / "all.fst")
    backend.bind(program)
    try:
        backend.run_segment(dram, program.code, 0, lambda layer: None)
    finally:
        backend.close()
    assert np.array_equal(dram, ref)
    assert [r.pc // 32 for r in backend.trace] == list(range(19))
    cycles = [r.cycle for r in backend.trace]
    assert cycles == sorted(cycles) and cycles[0] > 0
    assert (tmp_path / "all.fst").stat().st_size > 0


@pytest.mark.rtl
@pytest.mark.parametrize("fault", sorted(FAULT_EXPECTATIONS))
def test_injected_fault_is_named_at_its_first_divergent_instruction(fault):
    from sim.rtl.backend import DivergenceError

    insn, layer, what = FAULT_EXPECTATIONS[fault]
    with pytest.raises(DivergenceError) as err:
        _run_with_fault(fault)
    d = err.value.divergence
    assert d.insn_number == insn, str(err.value)
    assert d.layer == layer, str(err.value)
    assert d.cycle > 0 and d.start_cycle is not None and d.start_cycle < d.cycle
    text = str(err.value)
    assert f"instruction {insn} " in text and layer in text
    if what == "pc":
        assert (
            d.reason == lockstep.Reason.PC and d.expected_pc == insn * 32 and d.pc != d.expected_pc
        )
    else:
        assert d.reason == lockstep.Reason.VALUE and d.mismatches > 0 and d.first
        f = d.first[0]
        assert f["expected_hex"] != f["actual_hex"]
        assert int((d.expected != d.actual).sum()) == d.mismatches
        assert "expected" in text and "RTL" in text
    if fault == "vpu_add_round":  # the RTL's values are the ISA model's with bit 0 cleared
        assert np.array_equal(d.actual, d.expected & np.uint32(0xFFFFFFFE))


@pytest.mark.rtl
def test_a_backend_runs_on_after_a_divergence():
    """After a divergence the core is still busy with the diverged segment: the next
    segment on the same backend must run from a clean core (a fresh simulator)."""
    from sim.rtl.backend import DivergenceError, VerilatorBackend

    program, dram = _fault_program()
    backend = VerilatorBackend(DEFAULT_HW, faults=["ctrl_pc_skip"])
    backend.bind(program)
    try:
        with pytest.raises(DivergenceError):
            backend.run_segment(dram, program.code, 0, lambda layer: None)
        # No MOVE in this one, so the armed fault has nothing to skip.
        code = encode_program(
            assemble(
                f"dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={DATA} dram_rs=24 dram_cs=1 rows=4 cols=24\n"
                f"dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={OUT} dram_rs=24 dram_cs=1 rows=4 cols=24\n"
                "halt"
            )
        )
        dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
        ref = dram.copy()
        RefMachine(DEFAULT_HW, ref).run(code, 0)
        backend.run_segment(dram, code, 0, lambda layer: None)
    finally:
        backend.close()
    assert np.array_equal(dram, ref)


@pytest.mark.rtl
def test_windowed_trace_around_a_divergence_is_small_and_holds_the_view(tmp_path):
    import pywellen

    from sim.rtl.backend import DivergenceError
    from sim.rtl.waves import write_views

    insn = FAULT_EXPECTATIONS["vpu_add_round"][0]
    fst = tmp_path / "waves.fst"
    with pytest.raises(DivergenceError) as err:
        _run_with_fault("vpu_add_round", waves=fst, window=Window("insn", insn - 1, insn))
    d = err.value.divergence
    assert fst.exists() and fst.stat().st_size < 1_000_000
    program, _ = _fault_program()
    view = write_views(fst, d.pc, program.listing)
    # The view's signals are read back from the trace by a waveform reader.
    w = pywellen.Waveform(str(fst))
    names = {v.full_name for v in w.all_vars()}
    assert set(view.signals()) <= names
    titles = [t for t, _ in view.groups]
    for unit in ("control", "DMA", "matrix unit", "vector unit", "checkpoints"):
        assert any(t.startswith(unit) for t in titles), titles
    assert any(s.endswith("u_ctrl.pc_q") for s in view.signals())
    # Only the window was recorded: its span is about the two instructions' cycles.
    assert 0 < view.clock_edges <= (d.cycle - d.start_cycle) + 400
    # The view opens on the diverging instruction.
    assert view.focus_ps is not None and view.start_ps <= view.focus_ps <= view.end_ps
    gtkw = fst.with_suffix(".gtkw").read_text()
    assert f" {view.focus_ps} " in gtkw
    assert "u_ctrl.pc_q[31:0]" in gtkw
    # pc and instruction words through the listing's translate filters (opened in GTKWave
    # by tests/test_waves_view.py).
    pc_filter = fst.with_suffix(".pc.txt")
    assert f"^1 {pc_filter.resolve()}" in gtkw
    assert f"{d.pc:08X} #{d.insn_number} vadd " in pc_filter.read_text()
    sucl = fst.with_suffix(".sucl").read_text()
    assert "FP: 32-bit IEEE 754" in sucl and "FP: bfloat16" in sucl
    assert f"cursor_set {view.focus_ps}" in sucl
    assert any("mxu_a_edge" in s for s in view.signals())


@pytest.mark.rtl
def test_cycle_window_records_just_those_cycles(tmp_path):
    from sim.rtl.waves import build_view

    # The middle half of the run, in the simulation's cycles (counted from reset).
    retired = [r.cycle for r in _run_with_fault(None, trace=True).trace]
    lo, hi = retired[0], retired[-1]
    lo, hi = lo + (hi - lo) // 4, hi - (hi - lo) // 4
    fst = tmp_path / "cycles.fst"
    _run_with_fault(None, waves=fst, window=Window("cycles", lo, hi))
    view = build_view(fst)
    assert hi - lo - 5 <= view.clock_edges <= hi - lo + 5, (view.clock_edges, lo, hi)
    assert set(view.signals())


@pytest.mark.rtl
def test_make_sim_with_a_fault_reports_and_its_rerun_command_traces_it(tmp_path):
    """The user's path: `make sim` with a fault prints the divergence report and the
    rerun command; that command writes a windowed FST whose view opens on it."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "sim", "gpt2-tiny", "--fault", "vpu_add_round", "--out", str(out)]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 1, first.stdout + first.stderr
    err = first.stderr
    assert "first divergence from the ISA model: instruction" in err
    assert "vadd" in err and "layer" in err
    rerun = next(line.strip() for line in err.splitlines() if line.strip().startswith("make sim"))
    assert "FAULT=vpu_add_round" in rerun and "WAVES=1" in rerun and "INSN=" in rerun
    report = (out / "report.md").read_text()
    assert "mismatch/insn" in report and rerun in report
    assert list((out / "mismatch").glob("insn*.npz")) and list((out / "mismatch").glob("*.png"))
    # The rerun command, as the CLI options make turns it into.
    insns = rerun.split("INSN=")[1].split()[0]
    second = subprocess.run(
        [*cmd, "--waves", "--wave-insns", insns, "--trace"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert second.returncode == 1
    assert "marker on instruction" in second.stderr, second.stderr
    fst = out / "waves.fst"
    assert fst.exists() and fst.stat().st_size < 2_000_000
    # The instruction log ends at the diverging instruction, with cycles.
    n = int(insns.split(":")[1])
    last = (out / "trace.log").read_text().splitlines()[-1].split()
    issued, retired = int(last[0]), int(last[1])
    assert int(last[3]) == n and 0 < issued < retired and last[4] == "vpu" and last[5] == "vadd"
    assert fst.with_suffix(".gtkw").exists() and fst.with_suffix(".sucl").exists()
