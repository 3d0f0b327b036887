"""`make bench-torch`: GPT-2 small on the Loom torch backend next to PyTorch eager and
torch.compile on the same device, in one run; figures into bench/torch_results.json and
bench/torch_results.md (figures, not timed assertions).

Per workload (prefill; batch x tokens) and device: tokens per second of
- Loom: the compiled program on backend "torch" (hw config `server`: the default core
  with 4 GiB of DRAM, which 8 x 512 needs), with its tile loops batched (the default)
  and, for comparison, one step per instruction (batching=False). `first` includes
  planning (operand checks, loop analysis, one closure per step) and converting the
  weights once; `steady` is a later run. Steps per run are the tensor-operation groups
  the backend issues: on a GPU each is at least one kernel launch (or graph node), so
  they bound what per-launch overhead costs there. Checkpoint snapshots are taken but
  not read back (no golden checks in the timing).
- eager: the PyTorch model in fp32, torch.no_grad().
- torch.compile: default mode; its compile time is reported separately.
Decode is not measured: the compiler has no KV-cache lowering yet.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import compiler
import sim
from sim.cli.models import build
from sim.torch_backend import TorchBackend

OUT = Path(__file__).resolve().parent
WORKLOADS = [(1, 128), (8, 512)]
HW = "server"


def _timed(fn, repeats: int) -> tuple[float, list[float]]:
    """(first call seconds, later calls seconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    later = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        later.append(time.perf_counter() - t0)
    return first, later


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_workload(batch: int, tokens: int, device: str, repeats: int) -> dict:
    spec = build("gpt2", tokens=tokens, batch=batch)
    n_tokens = batch * tokens
    t0 = time.perf_counter()
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=HW)
    compile_s = time.perf_counter() - t0
    result = {}
    loom = {}
    for batching in (True, False):
        backend = TorchBackend(program.hw, device=device, batching=batching)

        def run(backend=backend):
            result["run"] = sim.execute(program, spec.inputs, backend, read_checkpoints=False)

        first, later = _timed(run, repeats)
        loom[batching] = (first, later, backend.stats["steps"] // (repeats + 1))
        if batching:
            loom_out = result["run"].outputs[0].clone()
        result.clear()
        del backend, run  # one DRAM image (and weight cache) at a time
        gc.collect()

    model = spec.model.to(device)
    ids = spec.inputs[0].to(device)

    def eager():
        with torch.no_grad():
            result["eager"] = model(ids, **spec.kwargs).logits
        _sync(device)

    eager_first, eager_later = _timed(eager, repeats)
    compiled = torch.compile(model)

    def compiled_run():
        with torch.no_grad():
            result["compiled"] = compiled(ids, **spec.kwargs).logits
        _sync(device)

    comp_first, comp_later = _timed(compiled_run, repeats)
    ref = result["eager"].float().cpu()
    (loom_first, loom_later, steps), (flat_first, flat_later, flat_steps) = loom[True], loom[False]
    return {
        "workload": f"prefill {batch} x {tokens}",
        "device": device,
        "tokens": n_tokens,
        "instructions": len(program.code) // 32,
        "program_compile_s": round(compile_s, 2),
        "loom_steps": steps,
        "loom_first_s": round(loom_first, 3),
        "loom_steady_s": round(statistics.median(loom_later), 3),
        "unbatched_steps": flat_steps,
        "unbatched_first_s": round(flat_first, 3),
        "unbatched_steady_s": round(statistics.median(flat_later), 3),
        "eager_s": round(statistics.median(eager_later), 3),
        "torch_compile_s": round(statistics.median(comp_later), 3),
        "torch_compile_warmup_s": round(comp_first, 2),
        "loom_tok_s": round(n_tokens / statistics.median(loom_later), 1),
        "unbatched_tok_s": round(n_tokens / statistics.median(flat_later), 1),
        "eager_tok_s": round(n_tokens / statistics.median(eager_later), 1),
        "torch_compile_tok_s": round(n_tokens / statistics.median(comp_later), 1),
        "loom_vs_eager_max_abs": float((loom_out - ref).abs().max()),
        "eager_first_s": round(eager_first, 3),
    }


def write(rows: list[dict], host: dict) -> None:
    (OUT / "torch_results.json").write_text(json.dumps({"host": host, "rows": rows}, indent=1))
    md = [
        "# Loom torch backend: GPT-2 small throughput",
        "",
        "Measured by `make bench-torch` (bench/torch_bench.py) on "
        f"{host['machine']} ({host['cpus']} CPUs, torch {host['torch']}"
        f"{', GPU ' + host['gpu'] if host.get('gpu') else ', no GPU'}), {host['date']}.",
        "Tokens per second of prefill (batch x tokens per forward pass). Loom columns are",
        "steady-state runs of the compiled program on backend `torch` (hw `server`), with",
        "the tile loops batched (the default) and with one step per instruction; steps",
        "are tensor-operation groups issued per run (each at least one kernel on a GPU);",
        "`first` adds planning and the one-time weight conversion.",
        "",
        "| workload | device | instructions | Loom steps | Loom tok/s | unbatched steps"
        " | unbatched tok/s | eager tok/s | torch.compile tok/s | Loom s (first)"
        " | unbatched s (first) | eager s | compile s (warm-up) | Loom vs eager max abs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['workload']} | {r['device']} | {r['instructions']:,} | {r['loom_steps']:,}"
            f" | {r['loom_tok_s']:,.0f} | {r['unbatched_steps']:,} | {r['unbatched_tok_s']:,.0f}"
            f" | {r['eager_tok_s']:,.0f} | {r['torch_compile_tok_s']:,.0f}"
            f" | {r['loom_steady_s']} ({r['loom_first_s']})"
            f" | {r['unbatched_steady_s']} ({r['unbatched_first_s']}) | {r['eager_s']}"
            f" | {r['torch_compile_s']} ({r['torch_compile_warmup_s']})"
            f" | {r['loom_vs_eager_max_abs']:.2e} |"
        )
    md += [
        "",
        "Decode (one token at a time with a KV cache) is not measured: the compiler has no",
        "KV-cache lowering yet.",
        "",
    ]
    (OUT / "torch_results.md").write_text("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", default=None, help="comma-separated (default: cpu[,cuda])")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    devices = (
        args.devices.split(",")
        if args.devices
        else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    )
    host = {
        "machine": platform.processor() or platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = []
    for device in devices:
        for batch, tokens in WORKLOADS:
            row = bench_workload(batch, tokens, device, args.repeats)
            print(json.dumps(row), flush=True)
            rows.append(row)
            write(rows, host)


if __name__ == "__main__":
    main()
