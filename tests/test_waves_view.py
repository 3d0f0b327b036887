"""The generated GTKWave view, opened for real: GTKWave on a private Xvfb display, driven
by its Tcl interface, must show the view's groups, the pc and the instruction word
through the listing's translate filters, enum-typed registers by name, and the marker
on the diverging instruction; screenshots of the window must show the marker line where
the marker is and a drawn signal pane.

Needs the Debian packages gtkwave, xvfb and x11-apps (xwd); skipped with that reason
where they are missing (`.ci/run` installs them when it runs as root).
LOOM_SCREENSHOT_OUT=path.png keeps the screenshot (docs/img/gtkwave_view.png is one).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_debug import FAULT_EXPECTATIONS, _fault_program, _run_with_fault

from contract.isa import INSN_BYTES, Opcode, Unit, decode
from sim.rtl import waves

# The diverging instruction of the injected fault: the view's marker belongs on it.
FAULT = "vpu_add_round"
MOVE_MARKER_CYCLES = 40  # the second screenshot's marker: at most this many cycles later
CYCLE_PS = 10_000


def _trace_with_view(tmp_path: Path):
    from sim.rtl.backend import DivergenceError

    insn = FAULT_EXPECTATIONS[FAULT][0]
    fst = tmp_path / "waves.fst"
    with pytest.raises(DivergenceError) as err:
        _run_with_fault(FAULT, waves=fst, window=waves.Window("insn", insn - 1, insn))
    program, _ = _fault_program()
    view = waves.write_views(fst, err.value.divergence.pc, program.listing)
    return fst, view, program, err.value.divergence


def _marker_columns(rgb: np.ndarray, top: int) -> np.ndarray:
    """Columns in which the marker colour runs down most of the wave pane."""
    below = rgb[top:]
    is_marker = np.all(below == np.array(waves.MARKER_RGB, dtype=np.uint8), axis=2)
    return np.nonzero(is_marker.sum(axis=0) > 0.6 * below.shape[0])[0]


@pytest.mark.rtl
def test_trace_enum_tables_are_the_contracts_enums(tmp_path):
    """The view shows enums by the names of the trace's own enum tables; for the
    contract's types those tables are the generated package's, i.e. contract/isa.py's."""
    import pywellen

    fst, view, _, _ = _trace_with_view(tmp_path)
    variables = {v.full_name: v for v in pywellen.Waveform(str(fst)).all_vars()}
    for stem, enum, prefix in (
        ("u_ctrl.opcode", Opcode, "OPCODE_"),
        ("u_ctrl.issue_unit_q", Unit, "UNIT_"),
    ):
        name = next(n for n in view.signals() if n.endswith(stem))
        type_name, table = variables[name].enum_type
        assert {int(bits, 2): label for bits, label in table} == {
            e.value: prefix + e.name for e in enum
        }, type_name
    shown = {s.name.split(".")[-1]: s.fmt for _, sigs in view.groups for s in sigs}
    assert shown["state_q"] == shown["opcode"] == shown["mode_q"] == shown["phase_q"] == "enum"
    assert shown["pc_q"] == shown["retire_pc"] == "pc" and shown["insn_q"] == "insn"


@pytest.mark.rtl
def test_gtkwave_shows_groups_translated_pc_enums_and_marker(tmp_path):
    reason = waves.headless_gtkwave_missing()
    if reason:
        pytest.skip(f"GTKWave cannot be opened headless: {reason}")
    pytest.importorskip("PIL", reason="Pillow writes the screenshot")
    fst, view, program, d = _trace_with_view(tmp_path)
    texts = waves.instruction_texts(program.listing)
    filters = {f: fst.with_suffix(f".{f}.txt") for f in ("pc", "insn")}
    assert all(p.exists() for p in filters.values())
    # Inside the window: the two instructions take a few dozen cycles once fetched from
    # the fetch buffer.
    shift = max(1, min(MOVE_MARKER_CYCLES, (view.end_ps - view.focus_ps) // CYCLE_PS // 2))
    moved = view.focus_ps + shift * CYCLE_PS
    shot = waves.open_in_gtkwave(fst, fst.with_suffix(".gtkw"), moved)

    # The groups, in the view's order, each holding the view's signals.
    assert shot.groups() == [title for title, _ in view.groups], shot.log
    shown = [t for t in shot.traces if not t.flags & waves.TR_BLANK]
    assert len(shown) == len(view.signals())
    by_name = {t.name: t for t in shown}
    # The marker on the diverging instruction's issue; the whole window in sight.
    assert shot.marker == view.focus_ps
    assert shot.window[0] <= view.start_ps and shot.window[1] >= view.end_ps - CYCLE_PS
    # The pc through the listing's filter: "#n disassembly [layer]" of the diverging
    # instruction, its number and layer the ones the divergence report names.
    pc = by_name["pc_q[31:0]"]
    assert pc.flags & waves.TR_FTRANSLATED
    assert pc.value == texts[d.pc // INSN_BYTES], pc
    assert pc.value.startswith(f"#{d.insn_number} vadd ") and pc.value.endswith(f"[{d.layer}]")
    # The instruction word too: at the issue, insn_q still holds the word fetched before.
    insn = by_name["insn_q[255:0]"]
    assert insn.value == texts[d.insn_number - 1], insn
    # Enum-typed registers by name: the decoded opcode of that word, the FSM state.
    word = program.code[(d.insn_number - 1) * INSN_BYTES : d.insn_number * INSN_BYTES]
    assert by_name["opcode[7:0]"].value == f"OPCODE_{decode(word).opcode.name}"
    assert by_name["state_q[2:0]"].value.startswith("ST_")
    assert by_name["issue_unit_q[1:0]"].value.startswith("UNIT_")

    # Pixels. The marker is the pinned marker colour's one tall column, and it moves by
    # the expected number of pixels when the marker moves.
    first, second = shot.images
    assert first.shape == (waves.GTKW_SIZE[1], waves.GTKW_SIZE[0], 3)
    top = 150  # below the toolbar and the time ruler
    at_focus, at_moved = _marker_columns(first, top), _marker_columns(second, top)
    assert len(at_focus) == 1 and len(at_moved) == 1, (at_focus, at_moved)
    expected_shift = (moved - view.focus_ps) * shot.pixels_per_unit
    assert abs((at_moved[0] - at_focus[0]) - expected_shift) <= 2
    # ... and lies where the focus time is in the wave pane, right of the signal pane.
    wave_left = at_focus[0] - (view.focus_ps - shot.window[0]) * shot.pixels_per_unit
    assert waves.GTKW_SIGNALS_WIDTH < wave_left < at_focus[0]
    # The signal pane (left of the waves) holds drawn names: plenty of dark text pixels;
    # the wave pane is drawn: waveform green in many rows.
    names = first[top:, : int(wave_left) - 10]
    assert (names.max(axis=2) < 100).sum() > 5_000
    pane = first[top:, int(wave_left) :]
    green = (pane[:, :, 1] > 150) & (pane[:, :, 0] < 60) & (pane[:, :, 2] < 60)
    assert green.any(axis=1).sum() > 200

    out = os.environ.get("LOOM_SCREENSHOT_OUT")
    path = Path(out) if out else tmp_path / "gtkwave_view.png"
    waves.write_png(first, path)
    assert path.stat().st_size < 300_000
