"""`python -m verif fuzz` (`make fuzz SEED=s N=n`): constrained-random programs on the
RTL in lockstep with the ISA model; `python -m verif rerun CASE.s [--waves]`: one saved
case again, optionally with waveforms of the case's instructions.

A failing case is shrunk, saved as an assembly file under the output directory and
printed with the command that reruns it. The summary (programs, outcomes, opcodes,
cycles, failures) goes to OUT/summary.json; the exit status is 1 when any case failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from contract.hw import load_hw
from contract.isa import IllegalInstruction, decode
from verif.case import Case
from verif.generate import case as make_case
from verif.run import Runner, Verdict
from verif.shrink import shrink

DEFAULT_OUT = Path("build/fuzz")


def _opcodes(c: Case) -> Counter:
    out = Counter()
    for w in c.words:
        try:
            out[decode(w).mnemonic] += 1
        except IllegalInstruction:
            out["(illegal word)"] += 1
    return out


def _report_failure(
    runner: Runner, c: Case, v: Verdict, out: Path, name: str, do_shrink: bool
) -> dict:
    print(f"FAIL {name} ({v.kind}, expected {v.expected}):\n  {v.message}", file=sys.stderr)
    small, last, runs = c, v, 0
    if do_shrink:
        t0 = time.perf_counter()

        def fails(candidate: Case) -> bool:
            nonlocal last
            again = runner.run(candidate)
            if not again.ok and again.signature == v.signature:
                last = again
                return True
            return False

        small, runs = shrink(c, fails)
        print(
            f"  shrunk {len(c.words)} -> {len(small.words)} instructions"
            f" in {runs} runs ({time.perf_counter() - t0:.1f} s):\n  {last.message}",
            file=sys.stderr,
        )
    first_line = last.message.splitlines()[0] if last.message else ""
    small.notes = [*c.notes, f"shrunk to {len(small.words)}; {last.kind}: {first_line}"]
    path = small.save(out / f"{name}.s")
    from sim.rtl.backend import NO_ASSERTIONS

    flags = "".join(f" --fault {f}" for f in runner.backend.faults)
    flags += "" if NO_ASSERTIONS not in runner.backend.plusargs else " --no-assert"
    rerun = f"{sys.executable} -m verif rerun {path} --waves{flags}"
    print(f"  saved {path}\n  rerun with waves: {rerun}", file=sys.stderr)
    return {
        "case": name,
        "kind": v.kind,
        "expected": v.expected,
        "message": v.message,
        "shrunk_message": last.message,
        "instructions": len(c.words),
        "shrunk_to": len(small.words),
        "shrink_runs": runs,
        "file": str(path),
        "rerun": rerun,
    }


def fuzz(args) -> int:
    hw = load_hw(args.hw)
    out = Path(args.out)
    runner = Runner(hw, faults=tuple(args.fault), assertions=not args.no_assert)
    outcomes, opcodes, failures = Counter(), Counter(), []
    cycles, t0 = 0, time.perf_counter()
    try:
        for index in range(args.first, args.first + args.n):
            c = make_case(hw, args.seed, index)
            v = runner.run(c)
            outcomes[v.expected] += 1
            opcodes.update(_opcodes(c))
            cycles += v.cycles
            if not v.ok:
                name = f"seed{args.seed}-case{index}"
                failures.append(_report_failure(runner, c, v, out, name, not args.no_shrink))
                if len(failures) >= args.max_failures:
                    break
    finally:
        runner.close()
    seconds = time.perf_counter() - t0
    summary = {
        "seed": args.seed,
        "programs": sum(outcomes.values()),
        "failures": len(failures),
        "outcomes": dict(sorted(outcomes.items())),
        "opcodes": dict(sorted(opcodes.items())),
        "rtl_cycles": cycles,
        "seconds": round(seconds, 1),
        "hw": hw.name,
        "injected_faults": list(args.fault),
        "failed": failures,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"fuzz seed {args.seed}: {summary['programs']} programs, {len(failures)} failed,"
        f" {cycles:,} RTL cycles, {seconds:.1f} s; outcomes {summary['outcomes']};"
        f" summary {out / 'summary.json'}"
    )
    return 1 if failures else 0


def rerun(args) -> int:
    from contract.blob import Listing
    from sim.rtl.waves import Window, write_views

    hw = load_hw(args.hw)
    c = Case.load(Path(args.case))
    waves = None
    if args.waves:
        waves = Path(args.out) / f"{Path(args.case).stem}.fst"
    runner = Runner(hw, faults=tuple(args.fault), waves=waves, assertions=not args.no_assert)
    if waves is not None:  # the case's own instructions, not the scrub before it
        runner.backend.window = Window("insn", 0, len(c.words), "the case")
    try:
        v = runner.run(c)
    finally:
        runner.close()
    print(f"{'PASS' if v.ok else 'FAIL'} {args.case}: {v.kind}, expected {v.expected}")
    if v.message:
        print(f"  {v.message}")
    if waves is not None and waves.exists():
        write_views(waves, listing=Listing(c.code))  # the case's code runs from pc 0
        print(
            f"waves: {waves}, views {waves.with_suffix('.gtkw')};"
            f" open with `make waves WAVES_FILE={waves}`"
        )
    return 0 if v.ok else 1


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("LOOM_COVERAGE_DIR"):  # `make coverage`: the ISA model's runs sampled
        from verif import coverage

        coverage.enable(os.environ["LOOM_COVERAGE_DIR"])
    ap = argparse.ArgumentParser(prog="python -m verif", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fuzz", help="run random programs on the RTL")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("-n", type=int, default=200, help="programs to run")
    f.add_argument("--first", type=int, default=0, help="index of the first case")
    f.add_argument("--max-failures", type=int, default=3, help="stop after this many")
    f.add_argument("--no-shrink", action="store_true")
    r = sub.add_parser("rerun", help="run one saved case")
    r.add_argument("case")
    r.add_argument("--waves", action="store_true", help="record the case's instructions")
    for p in (f, r):
        p.add_argument("--hw", default=None, help="hardware config (name or YAML)")
        p.add_argument("--out", default=str(DEFAULT_OUT))
        p.add_argument(
            "--fault", action="append", default=[], help="inject an RTL fault (debug build)"
        )
        p.add_argument("--no-assert", action="store_true", help="run with the RTL's assertions off")
    args = ap.parse_args(argv)
    if args.cmd == "fuzz" and args.n <= 0:
        ap.error("-n must be positive")
    # The programs compute with infinities and NaNs on purpose: numpy's floating-point
    # warnings in the ISA model are expected, not news.
    with np.errstate(all="ignore"):
        return fuzz(args) if args.cmd == "fuzz" else rerun(args)


if __name__ == "__main__":
    sys.exit(main())
