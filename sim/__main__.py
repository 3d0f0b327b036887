"""`python -m sim MODEL [options]`: compile, run, check every layer, write reports.
`make sim MODEL=gpt2 BACKEND=ref LAYERS=n TOKENS=n SEED=n WEIGHTS=path` calls this;
debugging options: WAVES=1 [LAYER=path | CYCLES=a:b | INSN=i:j], TRACE=1, FAULT=name."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

import compiler
import sim
from compiler.asm import format_insn
from compiler.isa import FORMATS, INSN_BYTES, IllegalInstruction, decode
from compiler.report import format_report
from golden import capture
from sim import dumps, lockstep
from sim.models import build
from sim.waves import window_for, write_views


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


def write_reports(
    out_dir: Path, summary: dict, rows: list[dict], report: dict, debug: list[str] | None = None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps({"summary": summary, "layers": rows, "compile": report}, indent=1, default=str)
    )
    md = [
        f"# Loom run: {summary['model']} on backend `{summary['backend']}`",
        "",
        *(debug or []),
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


def rerun_command(args, window: str) -> str:
    """The one-line command that reruns this program and seed with waves on a window
    (`INSN=i:j`, `LAYER=path`, `CYCLES=a:b`)."""
    parts = [f"make sim MODEL={args.model}", f"SEED={args.seed}", f"TOKENS={args.tokens}"]
    if args.layers is not None:
        parts.append(f"LAYERS={args.layers}")
    if args.weights:
        parts.append(f"WEIGHTS={args.weights}")
    if args.hw:
        parts.append(f"HW={args.hw}")
    if args.fault:
        parts.append(f"FAULT={args.fault}")
    if args.batch != 1:
        parts.append(f"BATCH={args.batch}")
    parts += [f"BACKEND={args.backend}", "WAVES=1", window]
    return " ".join(parts)


def write_instruction_log(path: Path, trace, code: bytes) -> None:
    """One line per retired instruction: cycle, pc, listing number, unit, disassembly."""
    with open(path, "w") as f:
        f.write(f"# {'cycle':>12} {'pc':>10} {'insn':>7}  {'unit':<5} instruction\n")
        for r in trace:
            cycle = f"{r.cycle:>14}" if r.cycle is not None else f"{'-':>14}"
            try:
                insn = decode(code[r.pc : r.pc + INSN_BYTES])
                unit, text = FORMATS[insn.opcode].unit, format_insn(insn)
            except (IllegalInstruction, ValueError):
                unit, text = "?", code[r.pc : r.pc + INSN_BYTES].hex()
            f.write(f"{cycle} {r.pc:#10x} {r.pc // INSN_BYTES:>7}  {unit:<5} {text}\n")


def dump_divergence(out_dir: Path, d: lockstep.Divergence) -> dict | None:
    if d.expected is None or d.actual is None:
        return None
    bf16 = d.region.get("space") == "DRAM" and d.region.get("esize") == 2
    return dumps.save_mismatch(
        out_dir / "mismatch",
        f"insn{d.insn_number}",
        lockstep.as_floats(d.expected, bf16),
        lockstep.as_floats(d.actual, bf16),
        expected_bits=d.expected,
        actual_bits=d.actual,
    )


def dump_failed_layers(out_dir: Path, program, result, golden) -> dict[int, dict]:
    """Expected (PyTorch, end to end) and actual tensors of every failing checkpoint."""
    files = {}
    by_id = {la["id"]: la for la in program.layers}
    for row in result.layers:
        got = result.checkpoints.get(row["id"])
        if row["status"] == "pass" or got is None:
            continue
        la = by_id[row["id"]]
        expected = golden[la["node"]].detach().float().numpy()
        actual = got["output"].detach().float().numpy()
        if expected.shape != actual.shape:
            continue
        files[row["id"]] = dumps.save_mismatch(
            out_dir / "mismatch", f"{row['id']:04d}_{row['path']}", expected, actual
        )
        row["dump"] = files[row["id"]]
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    ap.add_argument("model", help="registered name (gpt2, gpt2-tiny, mlp) or module:function")
    ap.add_argument(
        "--backend", default="verilator", help="verilator (RTL), ref (ISA model), torch"
    )
    ap.add_argument("--device", default="cpu", help="torch backend: cpu or cuda")
    ap.add_argument("--batch", type=int, default=1, help="batch size (GPT-2, mlp)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--hw", default=None, help="configs/hw name or YAML path")
    ap.add_argument("--out", default=None, help="report directory (build/<model>)")
    ap.add_argument("--save", action="store_true", help="also write program.loom")
    dbg = ap.add_argument_group("debugging (verilator backend)")
    dbg.add_argument("--waves", action="store_true", help="write <out>/waves.fst + views")
    dbg.add_argument("--wave-layer", default=None, help="trace only this layer (path prefix)")
    dbg.add_argument("--wave-cycles", default=None, help="trace only cycles a:b")
    dbg.add_argument("--wave-insns", default=None, help="trace only instructions i:j")
    dbg.add_argument("--trace", action="store_true", help="write <out>/trace.log")
    dbg.add_argument("--fault", default=None, help="inject a fault (sim/faults.py)")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out_dir = Path(args.out or f"build/{args.model.replace(':', '_')}")
    # Dumps and logs of an earlier run must not pass for this one's.
    shutil.rmtree(out_dir / "mismatch", ignore_errors=True)
    (out_dir / "trace.log").unlink(missing_ok=True)
    spec = build(
        args.model,
        layers=args.layers,
        tokens=args.tokens,
        seed=args.seed,
        weights=args.weights or None,
        **({"batch": args.batch} if args.batch != 1 else {}),
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
    options: dict = {}
    if args.backend == "verilator":
        options["progress"] = True
        if args.fault:
            options["faults"] = [args.fault]
        if args.waves:
            window = window_for(program, args.wave_layer, args.wave_cycles, args.wave_insns)
            options.update(waves=out_dir / "waves.fst", window=window)
            print(f"waveform window: {window.label} -> {out_dir / 'waves.fst'}")
    elif args.backend == "torch":
        options["device"] = args.device
    if args.backend != "verilator" and (args.waves or args.fault):
        print("FAIL: WAVES and FAULT need the RTL (BACKEND=verilator)", file=sys.stderr)
        return 2
    try:
        result = sim.run(
            program,
            spec.inputs,
            backend=args.backend,
            check=True,
            golden=golden,
            trace=args.trace,
            **options,
        )
    except Exception as e:  # a fault, hang or divergence, named by the backend
        if args.waves and (out_dir / "waves.fst").exists():
            report_waves(out_dir / "waves.fst", getattr(e, "divergence", None))
        return report_failure(args, out_dir, program, rep, e)
    if args.waves and (out_dir / "waves.fst").exists():
        report_waves(out_dir / "waves.fst", None)
    if args.trace and result.stats.get("trace") is not None:
        write_instruction_log(out_dir / "trace.log", result.stats["trace"], program.code)
        print(f"instruction log: {out_dir / 'trace.log'} ({len(result.stats['trace'])} lines)")
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
    debug_md = []
    if failed:
        dump_failed_layers(out_dir, program, result, golden)
        debug_md += ["## Failing checkpoints", ""]
        for r in failed:
            if "dump" in r:
                npz, png = Path(r["dump"]["npz"]).name, Path(r["dump"]["png"]).name
                debug_md.append(
                    f"- {r['id']} `{r['path']}`: {r.get('reason', 'outside tolerance')};"
                    f" tensors [{npz}](mismatch/{npz}),"
                    f" error heatmap ![{r['path']}](mismatch/{png})"
                )
        debug_md.append("")
    if failed and args.backend == "verilator" and not args.waves:
        cmd = rerun_command(args, f"LAYER={failed[0]['path']}")
        debug_md += ["Rerun with waves on the first failing layer:", "", "```", cmd, "```", ""]
        print(f"\nrerun with waves on the first failing layer:\n  {cmd}", file=sys.stderr)
    write_reports(out_dir, summary, result.layers, rep, debug_md)
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


def report_waves(fst: Path, divergence) -> None:
    focus = divergence.pc if divergence is not None else None
    view = write_views(fst, focus)
    where = (
        f"marker on instruction {divergence.insn_number} at t={view.focus_ps}"
        if divergence is not None and view.focus_ps is not None
        else "marker at the window start"
    )
    print(
        f"waves: {fst} ({fst.stat().st_size / 1024:.0f} KiB), views {fst.with_suffix('.gtkw')},"
        f" {fst.with_suffix('.sucl')} ({where}); open with `make waves`",
        file=sys.stderr,
    )


def report_failure(args, out_dir: Path, program, rep: dict, e: Exception) -> int:
    """Print why the run stopped; for a divergence, the report, the dumps and the
    command that reruns it with waves around the diverging instruction."""
    d = getattr(e, "divergence", None)
    print(f"\nFAIL: {e}", file=sys.stderr)
    summary = {"model": args.model, "backend": args.backend, "passed": False, "error": str(e)}
    debug_md = ["## Failure", "", "```", str(e), "```", ""]
    if d is not None:
        n = d.insn_number
        cmd = rerun_command(args, f"INSN={max(0, n - 1)}:{n}")
        files = dump_divergence(out_dir, d)
        summary["divergence"] = d.to_dict()
        summary["rerun"] = cmd
        if files:
            print(f"tensors: {files['npz']}  heatmap: {files['png']}", file=sys.stderr)
            name = Path(files["npz"]).name
            debug_md += [
                f"Expected (ISA model) and RTL values of the diverging instruction's region:"
                f" [{name}](mismatch/{name}), error heatmap:",
                "",
                f"![instruction {n}](mismatch/{Path(files['png']).name})",
                "",
            ]
        debug_md += ["Rerun with waves around the divergence:", "", "```", cmd, "```", ""]
        print(f"\nrerun with waves around it:\n  {cmd}", file=sys.stderr)
    elif getattr(e, "pc", None) is not None and args.backend == "verilator":
        n = e.pc // INSN_BYTES  # an RTL fault or hang at a known instruction
        cmd = rerun_command(args, f"INSN={max(0, n - 1)}:{n}")
        summary["rerun"] = cmd
        debug_md += ["Rerun with waves around it:", "", "```", cmd, "```", ""]
        print(f"\nrerun with waves around it:\n  {cmd}", file=sys.stderr)
    trace = getattr(e, "trace", None)
    if args.trace and trace is not None:
        write_instruction_log(out_dir / "trace.log", trace, program.code)
        print(f"instruction log: {out_dir / 'trace.log'} ({len(trace)} lines)", file=sys.stderr)
    write_reports(out_dir, summary, [], rep, debug_md)
    print(f"report: {out_dir}/report.md", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
