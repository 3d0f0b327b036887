"""The verification figures (docs/verification.md) into bench/verification.{json,md}:
programs run and their outcomes, failures, functional coverage per group with its holes,
code coverage of rtl/ per module, the RTL's assertions, the counters checked, the
mutation score (bench/mutation.json, `make mutate`) and what an RTL build costs.

Reads what `make coverage` wrote (build/coverage: the functional coverage hits and the
Verilator coverage counts of `make test` and `make fuzz`, and the fuzz summary); with
--build-time also builds each core variant (product, debug with tracing and the
fault-injection sites, code coverage) into scratch directories with ccache off and
times them.

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


def build_seconds() -> dict[str, float]:
    """From-scratch builds of the default core's variants (ccache off; a define nothing
    reads makes each a build directory of its own, removed afterwards), in seconds."""
    from contract.hw import DEFAULT_HW
    from sim.rtl import build as rtl_build
    from sim.rtl import faults

    os.environ["CCACHE_DISABLE"] = "1"
    variants = {
        "product": {},
        "debug (FST tracing, fault injection)": {"waves": True, "faults": True},
        "code coverage": {"coverage": True},
    }
    out = {}
    for name, v in variants.items():
        defines = {"LOOM_BENCH_SCRATCH": time.time_ns()}
        if v.get("faults"):
            defines[faults.DEFINE] = 1
        b = rtl_build.build(
            DEFAULT_HW, waves=v.get("waves", False), defines=defines, coverage=v.get("coverage")
        )
        shutil.rmtree(b.dir)
        out[name] = round(b.seconds, 1)
    return out


def assertion_count() -> dict[str, int]:
    """ASSERT macro uses per rtl/ module (each a named concurrent assertion)."""
    import re

    return {
        p.name: len(re.findall(r"`ASSERT\w*\(", p.read_text()))
        for p in sorted((ROOT / "rtl").glob("*.sv"))
        if "endmodule" in p.read_text()
    }


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
        "assertions": assertion_count(),
    }
    rtl_cov = cov_dir / "rtl.json"
    if rtl_cov.exists():
        rc = json.loads(rtl_cov.read_text())
        out["code_coverage"] = {
            "line_branch_percent": rc["line_branch_percent"],
            "totals": rc["totals"],
            "modules": {
                Path(f).name: {k: m[k]["percent"] for k in ("line", "branch", "toggle")}
                for f, m in rc["modules"].items()
            },
        }
    mutation = ROOT / "bench/mutation.json"
    if mutation.exists():
        out["mutation"] = json.loads(mutation.read_text()).get("summary")
    if args.build_time:
        out["rtl_build_s_from_scratch"] = build_seconds()
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
    if "code_coverage" in out:
        cc = out["code_coverage"]
        t = cc["totals"]
        lines += [
            "Code coverage of rtl/ over the same runs (Verilator coverage builds,"
            " verif/rtl_coverage.py; waivers in rtl/coverage_waivers.yaml):"
            f" line + branch **{cc['line_branch_percent']}%**; line {t['line']['percent']}%,"
            f" branch {t['branch']['percent']}%, toggle {t['toggle']['percent']}%"
            " (toggles of signals up to 64 bits; no target).",
            "",
            "| module | line % | branch % | toggle % |",
            "|---|---:|---:|---:|",
            *[
                f"| {m} | {v['line']} | {v['branch']} | {v['toggle']} |"
                for m, v in cc["modules"].items()
            ],
            "",
        ]
    a = out["assertions"]
    lines += [
        f"Assertions: {sum(a.values())} in {len(a)} modules ("
        + ", ".join(f"{m} {n}" for m, n in a.items())
        + "), compiled into every build.",
        "",
    ]
    if out.get("mutation"):
        lines += [f"Mutation testing (`make mutate`, bench/mutation.md): {out['mutation']}.", ""]
    if "rtl_build_s_from_scratch" in out:
        lines += [
            "Core builds from scratch (default config, ccache off, 2 cores): "
            + "; ".join(f"{k} {v} s" for k, v in out["rtl_build_s_from_scratch"].items())
            + ".",
            "",
        ]
    (ROOT / "bench/verification.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
