"""`python -m sim MODEL [options]`: compile, run, check every layer, write reports.
`make sim MODEL=gpt2 BACKEND=ref LAYERS=n TOKENS=n SEED=n WEIGHTS=path` calls this."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import compiler
import sim
from compiler.report import format_report
from golden import capture
from sim.models import build


def _fmt_row(row: dict) -> str:
    e, f = row.get("e2e", {}), row.get("follow", {})
    shape = "x".join(map(str, row["shape"]))
    cycles = f"{row['cycles']:>10,}" if "cycles" in row else f"{'-':>10}"
    if "max_abs" not in e:
        return f"{row['id']:>4}  {row['path']:<40} {shape:<14} {row['status'].upper()}"
    line = (
        f"{row['id']:>4}  {row['path']:<40} {shape:<14} {e['max_abs']:>10.3e}"
        f" {e['cosine']:>10.7f} {f['max_abs']:>10.3e} {f['cosine']:>10.7f} {cycles}  "
        f"{row['status'].upper()}"
    )
    if row.get("reason"):
        line += f"  ({row['reason']})"
    return line


def write_reports(out_dir: Path, summary: dict, rows: list[dict], report: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps({"summary": summary, "layers": rows, "compile": report}, indent=1, default=str)
    )
    md = [
        f"# Loom run: {summary['model']} on backend `{summary['backend']}`",
        "",
        "| id | layer | kind | shape | e2e max abs | e2e cosine | follow max abs |"
        " follow cosine | vs ISA model | cycles | status |",
        "|---:|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        e, f = r.get("e2e", {}), r.get("follow", {})
        md.append(
            f"| {r['id']} | {r['path']} | {r['kind']} | {r['shape']} |"
            f" {e.get('max_abs', float('nan')):.3e} | {e.get('cosine', float('nan')):.7f} |"
            f" {f.get('max_abs', float('nan')):.3e} |"
            f" {f.get('cosine', float('nan')):.7f} | {r.get('isa', '-')} |"
            f" {r.get('cycles', '-')} | {r['status']} |"
        )
    md += [
        "",
        "## Summary",
        "",
        "```",
        json.dumps(summary, indent=1),
        "```",
        "",
        "## Compile report",
        "",
        format_report(report),
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(md))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    ap.add_argument("model", help="registered name (gpt2, gpt2-tiny, mlp) or module:function")
    ap.add_argument("--backend", default="verilator", help="verilator (RTL), ref (ISA model)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--hw", default=None, help="configs/hw name or YAML path")
    ap.add_argument("--out", default=None, help="report directory (build/<model>)")
    ap.add_argument("--save", action="store_true", help="also write program.loom")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    spec = build(
        args.model,
        layers=args.layers,
        tokens=args.tokens,
        seed=args.seed,
        weights=args.weights or None,
    )
    t0 = time.perf_counter()
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=args.hw)
    t_compile = time.perf_counter() - t0
    rep = program.meta["report"]
    print(
        f"compiled {args.model} in {t_compile:.2f} s: {rep['instructions']} instructions,"
        f" {len(program.layers)} checkpoints, DRAM {rep['dram']['total_bytes'] / 2**20:.1f}"
        f" MiB, CPU-fallback ops: {rep['cpu_fallback'] or 'none'}"
    )
    t1 = time.perf_counter()
    golden = capture(program.graph, spec.inputs)
    t_golden = time.perf_counter() - t1
    options = {"progress": True} if args.backend == "verilator" else {}
    try:
        result = sim.run(
            program, spec.inputs, backend=args.backend, check=True, golden=golden, **options
        )
    except Exception as e:  # a fault, hang or disagreement, named by the backend
        print(f"\nFAIL: {e}", file=sys.stderr)
        return 1
    print(
        f"\n{'id':>4}  {'layer':<40} {'shape':<14} {'e2e maxabs':>10} {'e2e cos':>10}"
        f" {'fa maxabs':>10} {'fa cos':>10} {'cycles':>10}  status"
    )
    for row in result.layers:
        print(_fmt_row(row))
    with torch.no_grad():
        eager = spec.model(*spec.inputs, **spec.kwargs)
    eager = eager[0] if isinstance(eager, (tuple, list)) else getattr(eager, "logits", eager)
    out_err = float((eager - result.outputs[0]).abs().max())
    failed = [r for r in result.layers if r["status"] != "pass"]
    summary = {
        "model": args.model,
        "backend": args.backend,
        "hw": program.hw.name,
        "layers_checked": len(result.layers),
        "layers_failed": len(failed),
        "output_max_abs_vs_eager": out_err,
        "compile_s": round(t_compile, 3),
        "golden_s": round(t_golden, 3),
        "run_s": round(result.stats["wall_s"], 3),
        "instructions_retired": result.stats.get("retired"),
        "macs": result.stats.get("macs"),
        "passed": bool(result.passed),
    }
    if "cycles" in result.stats:
        st = result.stats
        summary.update(
            cycles=st["cycles"],
            cycles_per_s=round(st["cycles"] / max(st["wall_s"], 1e-9)),
            rtl_build_s=st.get("build_s"),
            isa_mismatches=len(st.get("isa_mismatches", [])),
            unit_busy_cycles={u: st.get(f"{u}_busy") for u in ("dma", "mxu", "vpu")},
            fetch_stall_cycles=st.get("fetch_stall"),
        )
    out_dir = Path(args.out or f"build/{args.model.replace(':', '_')}")
    write_reports(out_dir, summary, result.layers, rep)
    if args.save:
        program.save(out_dir / "program.loom")
    ok = not failed and bool(result.passed)
    status = "PASS" if ok else f"FAIL ({len(failed)} layers)" if failed else "FAIL (DRAM image)"
    print(
        f"\n{status}: {len(result.layers)} checkpoints on backend {args.backend};"
        f" compile {t_compile:.2f} s, run {result.stats['wall_s']:.2f} s,"
        + (
            f" {result.stats['cycles']:,} cycles ({summary['cycles_per_s']:,} cycles/s),"
            if "cycles" in result.stats
            else ""
        )
        + f" output max|err| vs eager {out_err:.3e}; report {out_dir}/report.md"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
