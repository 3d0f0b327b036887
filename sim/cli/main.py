"""`python -m sim MODEL [options]`: compile, run, check every layer, write reports.
`make sim MODEL=gpt2 BACKEND=ref LAYERS=n TOKENS=n SEED=n WEIGHTS=path` calls this;
debugging options: WAVES=1 [LAYER=path | CYCLES=a:b | INSN=i:j], TRACE=1, FAULT=name."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import torch

import compiler
import sim
from compiler.frontend import FrontendError, prefill_kwargs, prefill_outputs
from contract.isa import INSN_BYTES
from golden import capture, check_outputs, eager_outputs
from sim.cli import dumps, report
from sim.cli.models import build
from sim.cli.options import RTL_BACKEND, OptionError, Options, parse
from sim.rtl.waves import Window, window_for, write_views


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(argv)
    except OptionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    # Dumps and logs of an earlier run must not pass for this one's.
    shutil.rmtree(opts.out / "mismatch", ignore_errors=True)
    (opts.out / "trace.log").unlink(missing_ok=True)

    spec = build(
        opts.model,
        layers=opts.layers,
        tokens=opts.tokens,
        seed=opts.seed,
        weights=opts.weights,
        **({"batch": opts.batch} if opts.batch != 1 else {}),
    )
    t0 = time.perf_counter()
    try:
        program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=opts.hw)
    except (FrontendError, NotImplementedError) as e:  # the cause and the fix, named
        print(f"error: cannot compile {opts.model}: {e}", file=sys.stderr)
        return 1
    t_compile = time.perf_counter() - t0
    rep = program.meta["report"]
    print(report.compile_line(opts.model, t_compile, rep, len(program.layers)))
    for note in rep.get("notes", []):
        print(f"note: {note}")
    try:
        window = window_for(program, opts.wave_layer, opts.wave_cycles, opts.wave_insns)
    except ValueError as e:  # a LAYER this program does not have, an INSN past its end
        print(f"error: {e}", file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    golden = capture(program.graph, spec.inputs)
    t_golden = time.perf_counter() - t1
    try:
        result = sim.run(
            program,
            spec.inputs,
            backend=opts.backend,
            check=True,
            golden=golden,
            trace=opts.trace,
            **backend_options(opts, window),
        )
    except Exception as e:  # a fault, hang or divergence, named by the backend
        report_waves(opts, program, getattr(e, "divergence", None))
        return report_failure(opts, program, rep, e)
    report_waves(opts, program, None)
    if opts.trace and result.stats.get("trace") is not None:
        log = opts.out / "trace.log"
        report.write_instruction_log(log, result.stats["trace"], program.listing)
        print(f"instruction log: {log} ({len(result.stats['trace'])} lines)")

    print(f"\n{report.TABLE_HEADER}")
    for row in result.layers:
        print(report.format_row(row))
    # The eager reference with the front end's changes (prefill switches off, extras
    # dropped), so both sides return the same outputs.
    eager_kwargs, _ = prefill_kwargs(spec.model, spec.kwargs)
    with prefill_outputs(spec.model, []) as eager_model:
        expected = eager_outputs(eager_model, spec.inputs, eager_kwargs)
    outputs = check_outputs(expected, result.outputs)
    summary = run_summary(opts, program, result, outputs, t_compile, t_golden)
    failed = [r for r in result.layers if r["status"] != "pass"]
    wrong_outputs = [o for o in outputs if o["status"] != "pass"]
    debug_md = []
    if rep.get("notes"):
        debug_md += ["## Compile notes", "", *[f"- {n}" for n in rep["notes"]], ""]
    if failed:
        dumps.dump_failed_layers(opts.out, program, result, golden)
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
    if failed and opts.backend == RTL_BACKEND and not opts.waves:
        cmd = opts.rerun_command(f"LAYER={failed[0]['path']}")
        debug_md += ["Rerun with waves on the first failing layer:", "", "```", cmd, "```", ""]
        print(f"\nrerun with waves on the first failing layer:\n  {cmd}", file=sys.stderr)
    if wrong_outputs:
        debug_md += ["## Outputs differing from the eager model", ""]
        debug_md += [
            f"- output {o['output']}: {o.get('reason', o.get('metrics'))}" for o in wrong_outputs
        ]
        debug_md.append("")
    ok = not failed and not wrong_outputs and bool(result.passed)
    summary["passed"] = ok
    report.write_reports(opts.out, summary, result.layers, rep, debug_md)
    if opts.save:
        program.save(opts.out / "program.loom")
    if ok:
        status = "PASS"
    elif failed:
        status = f"FAIL ({len(failed)} layers)"
    elif wrong_outputs:
        status = "FAIL (outputs differ from the eager model)"
    else:
        status = "FAIL (DRAM image)"
    print(report.summary_line(status, summary, result.stats, opts.out))
    return 0 if ok else 1


def backend_options(opts: Options, window: Window) -> dict:
    """What the chosen backend takes beyond the common options."""
    if opts.backend == "torch":
        return {"device": opts.device}
    if opts.backend != RTL_BACKEND:
        return {}
    options: dict = {"progress": True}
    if opts.fault:
        options["faults"] = [opts.fault]
    if opts.waves:
        options.update(waves=opts.out / "waves.fst", window=window)
        print(f"waveform window: {window.label} -> {opts.out / 'waves.fst'}")
    return options


def run_summary(opts: Options, program, result, outputs: list[dict], t_compile, t_golden) -> dict:
    st = result.stats
    summary = {
        "model": opts.model,
        "backend": opts.backend,
        "hw": program.hw.name,
        "layers_checked": len(result.layers),
        "layers_failed": sum(r["status"] != "pass" for r in result.layers),
        "output_max_abs_vs_eager": max(
            (o["metrics"]["max_abs"] for o in outputs if "metrics" in o), default=float("nan")
        ),
        "outputs_vs_eager": outputs,
        "compile_s": round(t_compile, 3),
        "golden_s": round(t_golden, 3),
        "run_s": round(st["wall_s"], 3),
        "instructions_retired": st.get("retired"),
        "macs": st.get("macs"),
        "passed": bool(result.passed),
    }
    if "cycles" in st:
        summary.update(
            cycles=st["cycles"],
            cycles_per_s=round(st["cycles"] / max(st["wall_s"], 1e-9)),
            rtl_build_s=st.get("build_s"),
            isa_mismatches=len(st.get("isa_mismatches", [])),
            unit_busy_cycles={u: st.get(f"{u}_busy") for u in ("dma", "mxu", "vpu")},
            fetch_stall_cycles=st.get("fetch_stall"),
            overlap_cycles=st.get("overlap"),
            issue_stall_cycles={
                cause: st.get(f"stall_{cause}") for cause in ("dep", "unit", "drain")
            },
            dma_bytes={"read": st.get("dma_rd_bytes"), "written": st.get("dma_wr_bytes")},
        )
    return summary


def report_waves(opts: Options, program, divergence) -> None:
    fst = opts.out / "waves.fst"
    if not (opts.waves and fst.exists()):
        return
    focus = divergence.pc if divergence is not None else None
    view = write_views(fst, focus, program.listing)
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


def report_failure(opts: Options, program, rep: dict, e: Exception) -> int:
    """Print why the run stopped; for a divergence, the report, the dumps and the
    command that reruns it with waves around the diverging instruction."""
    d = getattr(e, "divergence", None)
    print(f"\nFAIL: {e}", file=sys.stderr)
    summary = {"model": opts.model, "backend": opts.backend, "passed": False, "error": str(e)}
    debug_md = ["## Failure", "", "```", str(e), "```", ""]
    at = None
    if d is not None:
        at = d.insn_number
        summary["divergence"] = d.to_dict()
        files = dumps.dump_divergence(opts.out, d)
        if files:
            print(f"tensors: {files['npz']}  heatmap: {files['png']}", file=sys.stderr)
            name = Path(files["npz"]).name
            debug_md += [
                f"Expected (ISA model) and RTL values of the diverging instruction's region:"
                f" [{name}](mismatch/{name}), error heatmap:",
                "",
                f"![instruction {at}](mismatch/{Path(files['png']).name})",
                "",
            ]
    elif getattr(e, "pc", None) is not None and opts.backend == RTL_BACKEND:
        at = e.pc // INSN_BYTES  # an RTL fault or hang at a known instruction
    if at is not None:
        cmd = opts.rerun_command(f"INSN={max(0, at - 1)}:{at}")
        summary["rerun"] = cmd
        what = "the divergence" if d is not None else "it"
        debug_md += [f"Rerun with waves around {what}:", "", "```", cmd, "```", ""]
        print(f"\nrerun with waves around it:\n  {cmd}", file=sys.stderr)
    trace = getattr(e, "trace", None)
    if opts.trace and trace is not None:
        log = opts.out / "trace.log"
        report.write_instruction_log(log, trace, program.listing)
        print(f"instruction log: {log} ({len(trace)} lines)", file=sys.stderr)
    report.write_reports(opts.out, summary, [], rep, debug_md)
    print(f"report: {opts.out}/report.md", file=sys.stderr)
    return 1
