"""`python -m perf predict MODEL` (make perf) and `python -m perf explore MODEL` (make explore)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from contract.hw import load_hw

# An RTL run costs ~6-7 us per simulated cycle on a 2-core machine (GPT-2 small: 23 M
# cycles in ~2.5 min): below this many predicted cycles it is cheap enough to run
# unasked.
CHEAP_RTL_CYCLES = 2_000_000


def _compile(model: str, hw, tokens: int, seed: int, layers: int | None):
    import compiler
    from sim.cli.models import build

    spec = build(model, tokens=tokens, seed=seed, layers=layers)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=hw)
    return spec, program


def cmd_predict(args) -> int:
    from perf import report
    from perf.predict import predict
    from perf.validate import compare, instruction_mismatches, measure

    hw = load_hw(args.hw)
    t0 = time.perf_counter()
    spec, program = _compile(args.model, hw, args.tokens, args.seed, args.layers)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict(program, mode=args.mode)
    t_predict = time.perf_counter() - t0
    print(
        f"{args.model} on {hw.name}: {pred.total.insns:,} instructions, compiled in"
        f" {t_compile:.1f} s, predicted in {t_predict:.2f} s ({args.mode} schedule)"
    )
    run_rtl = args.rtl
    if run_rtl is None:
        run_rtl = args.mode == "overlapped" and pred.total.cycles <= CHEAP_RTL_CYCLES
        if not run_rtl:
            print(f"RTL: not run ({pred.total.cycles:,} predicted cycles; RTL=1 runs it)")
    cmp, mismatches = None, []
    if run_rtl:
        if args.mode != "overlapped":
            print("RTL: the sequential schedule is the core before overlap; the RTL overlaps")
        print("RTL: running (backend verilator, no golden checks) ...", flush=True)
        meas = measure(program, spec.inputs, trace=True)
        cmp = compare(pred, meas)
        mismatches = instruction_mismatches(pred, meas)
    print()
    print(report.text_table(report.KIND_HEADER, report.kind_rows(pred, cmp)))
    print()
    print(report.text_table(report.COUNTER_HEADER, report.counter_rows(pred, cmp)))
    if args.layers_table:
        print()
        print(report.text_table(report.LAYER_HEADER, report.layer_rows(pred, cmp)))
    if cmp:
        print(
            f"\nRTL run {cmp.wall_s:.1f} s; instructions whose cycles differ from the model:"
            f" {len(mismatches)} of {pred.total.insns}"
        )
    meta = {
        "hw": hw.to_dict(),
        "tokens": args.tokens,
        "seed": args.seed,
        "compile_s": t_compile,
        "predict_s": t_predict,
        "instruction_mismatches": mismatches[:50],
        "note": "" if cmp else "No RTL run.",
    }
    out = Path(args.out or f"build/perf/{args.model.replace(':', '_')}/{hw.name}")
    report.write(out, args.model, pred, cmp, meta)
    print(f"\nwrote {out}/figures.json, roofline.png, utilization.png, report.md")
    return 0


def cmd_explore(args) -> int:
    from perf import explore

    base = load_hw(args.hw)
    spec = explore.parse_sweep(args.sweep)
    tokens = tuple(int(t) for t in args.tokens.split(","))
    print(f"explore {args.model} around {base.name}: {spec}, tokens {tokens}")
    print(f"clock: each config's clock_mhz ({base.clock_mhz:g} MHz for the base)")
    print(explore.NOTE_DECODE)
    t0 = time.perf_counter()
    rows = explore.sweep(args.model, base, spec, tokens, args.grid, args.seed, args.layers)
    checks: dict[str, dict] = {}
    if args.rtl:
        wanted = [c for c in explore.DEFAULT_VALIDATE if c in explore.points(base, spec, False)]
        print(f"RTL checks with {args.validate_model} (tokens 8) on {len(wanted)} points:")
        checks = explore.validate_points(args.validate_model, base, wanted)
        for r in rows:
            c = checks.get(r.get("point"))
            if c:
                r["rtl_check"] = (
                    f"{c['model']}: cycles {c['error']:+.2%},"
                    f" worst kind {c['worst_kind_error']:.2%}"
                )
    out = Path(args.out)
    explore.write_csv(out / "explore.csv", rows)
    pngs = explore.plot(out, args.model, base, spec, rows)
    (out / "explore.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "base": base.to_dict(),
                "sweep": spec,
                "tokens": tokens,
                "decode": explore.NOTE_DECODE,
                "rows": rows,
                "rtl_checks": checks,
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"\n{len(rows)} rows in {time.perf_counter() - t0:.0f} s; wrote {out}/explore.csv,"
        f" explore.json, {', '.join(p.name for p in pngs)}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perf", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("predict", help="predicted (and RTL) cycles per layer and layer kind")
    p.add_argument("model")
    p.add_argument("--hw", default=None)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--mode", choices=("overlapped", "sequential"), default="overlapped")
    rtl = p.add_mutually_exclusive_group()
    rtl.add_argument("--rtl", dest="rtl", action="store_true", default=None)
    rtl.add_argument("--no-rtl", dest="rtl", action="store_false")
    p.add_argument("--layers-table", action="store_true", help="print every layer too")
    p.add_argument("--out", default=None, help="default build/perf/<model>/<hw name>")
    p.set_defaults(fn=cmd_predict)
    e = sub.add_parser("explore", help="sweep hardware parameters with the model")
    e.add_argument("model")
    e.add_argument("--hw", default=None, help="the base config")
    e.add_argument("--sweep", default=None, help="'array_dim=8,16,32 dram_bus_bits=128,256'")
    e.add_argument("--grid", action="store_true", help="every combination, not one at a time")
    e.add_argument("--tokens", default=",".join(str(t) for t in (8, 64)))
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--layers", type=int, default=None)
    e.add_argument("--rtl", action="store_true", help="check a few points on the RTL")
    e.add_argument("--validate-model", default="gpt2-tiny")
    e.add_argument("--out", default="build/explore")
    e.set_defaults(fn=cmd_explore)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
