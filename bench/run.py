"""`make bench`: compile and run models on the ISA model and on the RTL; record figures
in bench/results.json and bench/results.md (figures, not timed assertions).

RTL figures per model: Verilator build time (0 when the cached build was reused),
simulated cycles, wall time, simulated cycles per second and useful MACs per host second,
the matrix unit's utilization per layer kind (ideal cycles, MACs / array PEs, over
measured cycles), the unit busy, overlap and stall counters, and the DRAM floor: the
program's constant bytes over the configured DRAM bytes per cycle (issue 16's measure),
and the bytes the run read over the same rate.

Model figures (perf/, docs/perf.md) for GPT-2 small at 64 tokens, next to the RTL's
cycles for the same run (the model is cycle-exact against the RTL)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import compiler
import sim
from sim.cli.models import build

OUT = Path(__file__).resolve().parent
MODELS = [("gpt2-tiny", 8), ("mlp", 8), ("gpt2", 8), ("gpt2", 64)]
RTL_MODELS = [("gpt2-tiny", 8), ("gpt2", 8), ("gpt2", 64)]
MODEL_ONLY = [("gpt2", 64)]
REPEATS = 3


def layer_macs(program) -> dict[int, int]:
    """MACs of the MATMULs between each checkpoint and the one before it."""
    from contract.isa import Opcode

    out, acc = {}, 0
    for insn in (line.insn for line in program.listing.lines):
        if insn.opcode == Opcode.MATMUL:
            acc += insn.m * insn.n * insn.k
        elif insn.opcode == Opcode.CHECKPOINT:
            out[insn.layer] = acc
            acc = 0
    return out


def rtl_row(name: str, tokens: int, spec, program) -> dict:
    t0 = time.perf_counter()
    result = sim.run(program, spec.inputs, backend="verilator", check=False)
    wall = time.perf_counter() - t0
    st = result.stats
    pes = program.hw.array_dim**2
    macs = layer_macs(program)
    kinds: dict[str, list[int]] = {}
    for la in program.layers:
        cyc = st["layer_cycles"].get(la["id"], 0)
        k = kinds.setdefault(la["kind"], [0, 0])
        k[0] += macs.get(la["id"], 0)
        k[1] += cyc
    util = {kind: round(m / pes / c, 4) for kind, (m, c) in sorted(kinds.items()) if m and c}
    bpc = program.hw.dram_bytes_per_cycle
    floor = program.meta["report"]["dram"]["constant_bytes"] / bpc
    return {
        "model": name,
        "tokens": tokens,
        "build_s": st["build_s"],
        "cycles": st["cycles"],
        "wall_s": round(wall, 2),
        "cycles_per_s": round(st["cycles"] / wall),
        "macs": st["macs"],
        "mxu_utilization_overall": round(st["macs"] / pes / st["cycles"], 4),
        "mxu_utilization_by_kind": util,
        "isa_mismatches": len(st["isa_mismatches"]),
        "macs_per_host_s": round(st["macs"] / wall),
        "unit_busy_cycles": {u: st[f"{u}_busy"] for u in ("dma", "mxu", "vpu")},
        "overlap_cycles": st["overlap"],
        "stall_cycles": {
            k: st[k] for k in ("fetch_stall", "stall_dep", "stall_unit", "stall_drain")
        },
        "fetch_stall_cycles": st["fetch_stall"],
        "dram_read_bytes": st["dma_rd_bytes"],
        "constant_bytes_floor_cycles": round(floor),
        "cycles_over_constant_floor": round(st["cycles"] / floor, 3),
        "cycles_over_bytes_read_floor": round(st["cycles"] * bpc / st["dma_rd_bytes"], 3),
    }


def model_row(name: str, tokens: int) -> dict:
    """The performance model's figures for a run too long to simulate in `make bench`,
    through its command line (nothing imports perf; tests/test_perf.py checks it)."""
    out = Path(tempfile.mkdtemp(prefix="loom-bench-perf-"))
    cmd = [sys.executable, "-m", "perf", "predict", name, "--tokens", str(tokens)]
    subprocess.run([*cmd, "--no-rtl", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    pred = json.loads((out / "figures.json").read_text())["prediction"]
    shutil.rmtree(out, ignore_errors=True)
    total = pred["total"]
    return {
        "model": name,
        "tokens": tokens,
        "cycles": total["cycles"],
        "macs": total["macs"],
        "mxu_utilization_overall": round(total["mxu_utilization"], 4),
        "mxu_utilization_by_kind": {
            k: round(f["mxu_utilization"], 4) for k, f in sorted(pred["kinds"].items()) if f["macs"]
        },
        "unit_busy_cycles": {u: total[f"{u}_busy"] for u in ("dma", "mxu", "vpu")},
        "overlap_cycles": total["overlap"],
    }


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def main() -> None:
    rows = []
    compiled = {}
    for name, tokens in MODELS:
        spec = build(name, tokens=tokens)
        t0 = time.perf_counter()
        program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
        compile_s = time.perf_counter() - t0
        compiled[name, tokens] = spec, program
        runs = []
        for _ in range(REPEATS):
            result = sim.run(program, spec.inputs, backend="ref", check=False)
            runs.append(result.stats["wall_s"])
        rep = program.meta["report"]
        rows.append(
            {
                "model": name,
                "tokens": tokens,
                "compile_s": round(compile_s, 2),
                "ref_run_s_best": round(min(runs), 3),
                "ref_run_s_all": [round(r, 3) for r in runs],
                "instructions": rep["instructions"],
                "macs": result.stats["macs"],
                "dram_mib": round(rep["dram"]["total_bytes"] / 2**20, 1),
                "activation_kib": round(rep["dram"]["activation_bytes"] / 1024, 1),
                "activation_no_reuse_kib": round(rep["dram"]["activation_no_reuse"] / 1024, 1),
            }
        )
        print(rows[-1], flush=True)
    rtl_rows = []
    for name, tokens in RTL_MODELS:
        rtl_rows.append(rtl_row(name, tokens, *compiled[name, tokens]))
        print(rtl_rows[-1], flush=True)
    model_rows = []
    rtl_cycles = {(r["model"], r["tokens"]): r["cycles"] for r in rtl_rows}
    for name, tokens in MODEL_ONLY:
        model_rows.append(model_row(name, tokens))
        model_rows[-1]["rtl_cycles"] = rtl_cycles.get((name, tokens))
        print(model_rows[-1], flush=True)
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    (OUT / "results.json").write_text(
        json.dumps(
            {"machine": machine, "ref": rows, "rtl": rtl_rows, "model": model_rows}, indent=1
        )
    )
    md = [
        "| model | tokens | compile s | ISA model run s (best of 3) | instructions | MACs |"
        " DRAM MiB | activations KiB (no reuse) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['model']} | {r['tokens']} | {r['compile_s']} | {r['ref_run_s_best']} |"
        f" {r['instructions']} | {r['macs']} | {r['dram_mib']} | {r['activation_kib']}"
        f" ({r['activation_no_reuse_kib']}) |"
        for r in rows
    ]
    md += [
        "",
        "## RTL (Verilator)",
        "",
        "| model | tokens | build s | cycles | wall s | cycles/s | MXU util. |"
        " util. by layer kind |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    md += [
        f"| {r['model']} | {r['tokens']} | {r['build_s']} | {r['cycles']:,} | {r['wall_s']} |"
        f" {r['cycles_per_s']:,} | {r['mxu_utilization_overall']:.1%} |"
        f" {', '.join(f'{k} {v:.1%}' for k, v in r['mxu_utilization_by_kind'].items())} |"
        for r in rtl_rows
    ]
    md += [
        "",
        "| model | tokens | MACs / host s | DMA, MXU, VPU busy | overlap | stalls: fetch, dep,"
        " unit, drain | cycles / constant-bytes floor | cycles / bytes-read floor |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    md += [
        f"| {r['model']} | {r['tokens']} | {r['macs_per_host_s']:,} |"
        f" {', '.join(f'{v:,}' for v in r['unit_busy_cycles'].values())} |"
        f" {r['overlap_cycles']:,} | {', '.join(f'{v:,}' for v in r['stall_cycles'].values())} |"
        f" {r['cycles_over_constant_floor']:.2f}x ({r['constant_bytes_floor_cycles']:,}) |"
        f" {r['cycles_over_bytes_read_floor']:.2f}x |"
        for r in rtl_rows
    ]
    md += [
        "",
        "The constant-bytes floor counts every constant byte in DRAM once at the configured"
        " DRAM bytes per cycle (issue 16's measure). A constant read both in fp32 and as a"
        " matrix operand now has a bf16 copy too (GPT-2's tied wte/lm_head: 73.6 MiB more),"
        " while the gather reads only a few fp32 rows of the original, so that floor"
        " overstates what must be read; the bytes-read floor (DMA_RD_BYTES over the same"
        " rate) is the tighter one.",
    ]
    md += [
        "",
        "## Performance model (docs/perf.md), next to the RTL's cycles for the same run",
        "",
        "| model | tokens | cycles | RTL cycles | MXU util. | util. by layer kind"
        " | DMA, MXU, VPU busy | overlap |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    md += [
        f"| {r['model']} | {r['tokens']} | {r['cycles']:,} | {_count(r.get('rtl_cycles'))} |"
        f" {r['mxu_utilization_overall']:.1%} |"
        f" {', '.join(f'{k} {v:.1%}' for k, v in r['mxu_utilization_by_kind'].items())} |"
        f" {', '.join(f'{v:,}' for v in r['unit_busy_cycles'].values())} |"
        f" {r['overlap_cycles']:,} |"
        for r in model_rows
    ]
    md.append(f"\nMeasured by `make bench` on {machine}.")
    (OUT / "results.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
