"""`make bench`: compile and run models on the ISA model; record figures in
bench/results.json and bench/results.md (figures, not timed assertions)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

import compiler
import sim
from sim.models import build

OUT = Path(__file__).resolve().parent
MODELS = [("gpt2-tiny", 8), ("mlp", 8), ("gpt2", 8)]
REPEATS = 3


def main() -> None:
    rows = []
    for name, tokens in MODELS:
        spec = build(name, tokens=tokens)
        t0 = time.perf_counter()
        program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
        compile_s = time.perf_counter() - t0
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
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    (OUT / "results.json").write_text(json.dumps({"machine": machine, "ref": rows}, indent=1))
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
    md.append(f"\nMeasured by `make bench` on {machine}.")
    (OUT / "results.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
