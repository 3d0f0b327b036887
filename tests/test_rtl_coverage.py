"""Code coverage of rtl/ (verif/rtl_coverage.py): Verilator's coverage files merged over
simulations and instances, waivers with reasons, holes listed; and a coverage build
that really counts the design when a test runs on it."""

from __future__ import annotations

import pytest

from verif import rtl_coverage as rc


def _point(file: str, line: int, kind: str, name: str, inst: str, count: int) -> str:
    fields = {"f": f"/somewhere/else/{file}", "l": line, "n": 3, "t": kind, "page": "v",
              "o": name, "S": str(line), "h": inst}  # fmt: skip
    key = "".join(f"\x01{k}\x02{v}" for k, v in fields.items())
    return f"C '{key}' {count}\n"


def _write(path, *points: str) -> None:
    path.write_text("# SystemC::Coverage-3\n" + "".join(points), encoding="latin-1")


def test_points_merge_over_files_and_instances(tmp_path):
    # The same SRAM line in two instances, covered in only one of two runs: covered.
    _write(tmp_path / "a.dat", _point("loom_sram.sv", 25, "branch", "if", "t.u_spad", 0),
           _point("loom_sram.sv", 25, "branch", "if", "t.u_acc", 0),
           _point("loom_ctrl.sv", 199, "line", "case", "t.u_ctrl", 0),
           _point("loom_tb_top.sv", 10, "line", "block", "t", 0))  # fmt: skip
    _write(tmp_path / "b.dat", _point("loom_sram.sv", 25, "branch", "if", "t.u_acc", 7),
           _point("loom_ctrl.sv", 199, "line", "case", "t.u_ctrl", 0))  # fmt: skip
    points = rc.merge(tmp_path)
    by = {(p.file, p.line): n for p, n in points.items()}
    assert by == {("rtl/loom_sram.sv", 25): 7, ("rtl/loom_ctrl.sv", 199): 0}  # no tb files
    s = rc.summarize(points, [])
    assert s["modules"]["rtl/loom_sram.sv"]["branch"]["percent"] == 100.0
    assert s["modules"]["rtl/loom_ctrl.sv"]["line"]["holes"] == [
        {"line": 199, "point": "case", "lines": "199"}
    ]
    assert s["line_branch_percent"] == 50.0


def test_a_waiver_removes_a_hole_and_needs_a_reason(tmp_path):
    _write(tmp_path / "a.dat", _point("loom_ctrl.sv", 199, "line", "case", "t.u_ctrl", 0),
           _point("loom_ctrl.sv", 120, "line", "block", "t.u_ctrl", 3))  # fmt: skip
    waivers = tmp_path / "w.yaml"
    waivers.write_text("- {file: rtl/loom_ctrl.sv, kind: line, lines: 199, reason: unreachable}\n")
    s = rc.summarize(rc.merge(tmp_path), rc.load_waivers(waivers))
    line = s["modules"]["rtl/loom_ctrl.sv"]["line"]
    assert (line["points"], line["covered"], line["waived"], line["holes"]) == (1, 1, 1, [])
    assert s["line_branch_percent"] == 100.0
    waivers.write_text("- {file: rtl/loom_ctrl.sv, kind: line, lines: 199}\n")
    with pytest.raises(ValueError, match="gives no reason"):
        rc.load_waivers(waivers)


def test_every_waiver_of_the_repository_has_a_reason():
    for w in rc.load_waivers():
        assert len(w.reason) > 20, w


@pytest.mark.rtl
def test_a_coverage_build_counts_the_design(tmp_path, monkeypatch):
    """Random programs on the coverage build (LOOM_RTL_COVERAGE) leave counts that cover
    the control unit's issue path and the DMA engine's loads."""
    from contract.hw import DEFAULT_HW
    from verif.generate import case
    from verif.run import Runner

    monkeypatch.setenv("LOOM_RTL_COVERAGE", str(tmp_path))
    runner = Runner(DEFAULT_HW)
    try:
        assert runner.backend.build.coverage
        for i in range(3):
            assert runner.run(case(DEFAULT_HW, 0, i)).ok
    finally:
        runner.close()
    assert list(tmp_path.glob("sim-*.dat"))
    s = rc.summarize(rc.merge(tmp_path), [])
    for module in ("rtl/loom_ctrl.sv", "rtl/loom_dma.sv", "rtl/loom_csr.sv"):
        m = s["modules"][module]
        assert m["line"]["covered"] > 0 and m["branch"]["covered"] > 0, (module, m)
        assert m["toggle"]["covered"] > 0, module
