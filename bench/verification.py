"""The verification figures (docs/verification.md) into bench/verification.{json,md}:
programs run and their outcomes, failures, functional coverage per group with its holes,
the counters checked, and what an RTL build costs.

Reads what `make coverage` wrote (build/coverage: the coverage hits of `make test` and
`make fuzz`, and the fuzz summary); with --build-time also builds the default core into
a scratch directory with ccache off and times it (minutes on 2 cores).

    make bench-verif            # = make coverage, then this script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import date
from pathlib import Path

from verif import coverage
from verif.run import COUNTED

ROOT = Path(__file__).resolve().parent.parent


def build_seconds() -> float:
    """A from-scratch build of the default core (ccache off; a define nothing reads makes
    it a build directory of its own, removed afterwards), in seconds."""
    from contract.hw import DEFAULT_HW
    from sim.rtl import build as rtl_build

    os.environ["CCACHE_DISABLE"] = "1"
    b = rtl_build.build(DEFAULT_HW, defines={"LOOM_BENCH_SCRATCH": time.time_ns()})
    shutil.rmtree(b.dir)
    return b.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coverage", default=str(ROOT / "build/coverage"))
    ap.add_argument("--build-time", action="store_true")
    args = ap.parse_args()
    cov_dir = Path(args.coverage)
    fuzz = json.loads((cov_dir / "fuzz" / "summary.json").read_text())
    rep = coverage.report(coverage.merge(cov_dir))
    out = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "fuzz": {
            k: fuzz[k]
            for k in ("seed", "programs", "failures", "outcomes", "rtl_cycles", "seconds")
        },
        "functional_coverage": {
            g: {k: v[k] for k in ("covered", "bins", "percent")} for g, v in rep.items()
        },
        "holes": {g: v["holes"] for g, v in rep.items() if v.get("holes")},
        "counters_checked": list(COUNTED),
    }
    if args.build_time:
        out["rtl_build_s_from_scratch"] = round(build_seconds(), 1)
    (ROOT / "bench/verification.json").write_text(json.dumps(out, indent=1) + "\n")
    f = out["fuzz"]
    lines = [
        "# Verification figures",
        "",
        f"Measured {out['date']} on {out['machine']} by `make bench-verif`"
        " (bench/verification.py).",
        "",
        f"Random programs (`make fuzz`, seed {f['seed']}): {f['programs']} programs,"
        f" {f['failures']} failed, {f['rtl_cycles']:,} RTL cycles, {f['seconds']} s.",
        "",
        "| outcome | programs |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in f["outcomes"].items()],
        "",
        "Functional coverage of `make test` plus that fuzz run (verif/coverage.py):",
        "",
        "| group | covered | bins | % |",
        "|---|---:|---:|---:|",
        *[
            f"| {g} | {v['covered']} | {v['bins']} | {v['percent']} |"
            for g, v in out["functional_coverage"].items()
        ],
        "",
    ]
    if out["holes"]:
        lines += ["Holes:", ""]
        for items in out["holes"].values():
            for item, bins in items.items():
                lines.append(f"- {item}: {', '.join(bins)}")
        lines.append("")
    lines += [
        "Counters checked on every random program: "
        + ", ".join(f"`{c}`" for c in COUNTED)
        + " (equal to the ISA model's count, or the in-order invariants of docs/verification.md).",
        "",
    ]
    if "rtl_build_s_from_scratch" in out:
        lines += [
            f"Default core built from scratch (ccache off): {out['rtl_build_s_from_scratch']} s.",
            "",
        ]
    (ROOT / "bench/verification.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
