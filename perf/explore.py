"""Design-space sweeps with the model: the model compiled for each hardware point and
predicted for prefill, one CSV row per (point, token count), plots per parameter, and a
few points checked against the RTL on a small model.

Points vary one parameter at a time around the base config (or, with grid=True, every
combination). The compiler's output depends only on the array, the SRAM sizes and the
DRAM size (compiler/ reads no other HwConfig field), so points that differ only in bus
width, DRAM latency or bandwidth share one compile and differ in the model's timing.

Decode is not explored: the compiler has no KV-cache programs yet, so every point is a
prefill of the whole sequence.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import time
from pathlib import Path

from contract.blob import BlobError, hw_config_of
from contract.hw import HwConfig
from perf.dma import StoreDeadlock
from perf.predict import Prediction, predict
from perf.timing import CoreTiming

DEFAULT_SWEEP: dict[str, list[int]] = {
    "array_dim": [8, 16, 32],
    "spad_kib": [128, 256, 512, 1024],
    "acc_kib": [64, 128, 256, 512],
    "dram_bus_bits": [128, 256, 512],
    "dram_latency_cycles": [50, 100, 200, 400],
    "dram_bytes_per_cycle": [8, 16, 32],
}
DEFAULT_TOKENS = (8, 64)
# Points run through the RTL with the validation model when asked (each is a Verilator
# build of its own, ~1 min on 2 cores, then a few seconds of simulation): one per
# timing path the model has (array size, bus width, latency, read bandwidth).
DEFAULT_VALIDATE = (
    {},
    {"array_dim": 8},
    {"dram_bus_bits": 128},
    {"dram_latency_cycles": 200},
    {"dram_bytes_per_cycle": 16},
)
# HwConfig fields the compiler reads (compiler/: array_dim, line_elems, spad_elems,
# acc_elems, dram_bytes / dram_mib).
COMPILE_FIELDS = ("array_dim", "spad_kib", "acc_kib", "dram_mib")
NOTE_DECODE = (
    "decode: not modelled - the compiler emits no KV-cache programs yet, so there is no "
    "decode step to predict; every figure is a prefill of the whole sequence"
)


def parse_sweep(text: str | None) -> dict[str, list[int]]:
    """'array_dim=8,16 dram_bus_bits=128,256' (spaces or ';' between parameters)."""
    if not text:
        return dict(DEFAULT_SWEEP)
    known = {f.name for f in dataclasses.fields(HwConfig)} - {"name"}
    out: dict[str, list[int]] = {}
    for part in text.replace(";", " ").split():
        name, sep, values = part.partition("=")
        if not sep or name not in known:
            raise ValueError(
                f"sweep item {part!r}: expected FIELD=v1,v2 with FIELD in {sorted(known)}"
            )
        out[name] = [int(v) for v in values.split(",") if v]
    return out


def points(base: HwConfig, sweep: dict[str, list[int]], grid: bool) -> list[dict[str, int]]:
    """Changes to the base config, the base ({}) first, without repeats."""
    if grid:
        names = list(sweep)
        combos = [dict(zip(names, vs, strict=True)) for vs in itertools.product(*sweep.values())]
    else:
        combos = [{name: v} for name, vs in sweep.items() for v in vs]
    out: list[dict[str, int]] = [{}]
    for c in combos:
        c = {k: v for k, v in c.items() if getattr(base, k) != v}
        if c not in out:
            out.append(c)
    return out


def point_name(base: HwConfig, change: dict[str, int]) -> str:
    return "-".join([base.name] + [f"{k}{v}" for k, v in change.items()])[:64]


def config_of(base: HwConfig, change: dict[str, int]) -> HwConfig:
    """The point's config, checked as a blob's would be (contract.blob.hw_config_of: the
    bounds the RTL can be built for, a power-of-two bus)."""
    values = {**base.to_dict(), **change, "name": point_name(base, change)}
    return hw_config_of(values)


def _changed(change: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in change.items()) or "(base)"


def _failed(point: str, change: dict[str, int], tokens: int | None, error: str) -> dict:
    """A point without figures, and why."""
    return {
        "point": point,
        "changed": _changed(change),
        "change": change,
        "tokens": tokens,
        "error": error[:300],
    }


def _row(change: dict[str, int], hw: HwConfig, n_tokens: int, pred: Prediction, program) -> dict:
    total = pred.total
    seconds = total.cycles / (hw.clock_mhz * 1e6)
    return {
        "point": hw.name,
        "changed": _changed(change),
        "change": change,
        **{f: getattr(hw, f) for f in DEFAULT_SWEEP},
        "clock_mhz": hw.clock_mhz,
        "tokens": n_tokens,
        "cycles": total.cycles,
        "tokens_per_s": n_tokens / seconds if seconds else 0.0,
        "mxu_utilization": total.mxu_utilization(pred.timing),
        "spad_needed_kib": pred.spad_used_bytes / 1024,
        "acc_needed_kib": pred.acc_used_bytes / 1024,
        "dram_bytes_per_token": total.dram_bytes / n_tokens,
        "fetch_bytes_per_token": pred.fetch_bytes / n_tokens,
        "insns": total.insns,
        "host_ops": len(program.meta["host_ops"]),
        "fetch_cycles_share": total.fetch / total.cycles if total.cycles else 0.0,
        "dma_busy_share": total.busy["dma"] / total.cycles if total.cycles else 0.0,
        "rtl_check": "",
        "error": "",
    }


def sweep(
    model: str,
    base: HwConfig,
    sweep_spec: dict[str, list[int]],
    tokens: tuple[int, ...] = DEFAULT_TOKENS,
    grid: bool = False,
    seed: int = 0,
    layers: int | None = None,
    log=print,
) -> list[dict]:
    """Predict every point for every token count; one row each. Points are grouped by
    what the compiler reads, compiled once per group, and the program dropped after its
    group (a GPT-2 program with its graph is ~1 GB)."""
    import compiler
    from sim.cli.models import build

    rows: list[dict] = []
    groups: dict[tuple, list[tuple[dict[str, int], HwConfig]]] = {}
    for change in points(base, sweep_spec, grid):
        try:
            hw = config_of(base, change)
        except (BlobError, ValueError) as e:
            log(f"  {change}: not a buildable config: {e}")
            rows.append(_failed(point_name(base, change), change, None, str(e)))
            continue
        groups.setdefault(tuple(getattr(hw, f) for f in COMPILE_FIELDS), []).append((change, hw))
    for n in tokens:
        spec = build(model, tokens=n, seed=seed, layers=layers)
        for members in groups.values():
            t0 = time.perf_counter()
            try:
                program = compiler.compile(
                    spec.model, spec.inputs, kwargs=spec.kwargs, hw=members[0][1]
                )
                program.graph = None  # only the code is needed
            except Exception as e:  # a point the compiler cannot place is a result too
                for change, hw in members:
                    log(f"  {hw.name} tokens={n}: {type(e).__name__}: {e}"[:300])
                    rows.append(_failed(hw.name, change, n, str(e)))
                continue
            t_compile = time.perf_counter() - t0
            for change, hw in members:
                t0 = time.perf_counter()
                try:
                    pred = predict(program, timing=CoreTiming.of(hw))
                except StoreDeadlock as e:  # the RTL would hang on this program
                    log(f"  {hw.name} tokens={n}: the RTL would hang: {e}"[:300])
                    rows.append(_failed(hw.name, change, n, f"RTL store path deadlocks: {e}"))
                    continue
                row = _row(change, hw, n, pred, program)
                rows.append(row)
                log(
                    f"  {row['changed']:<28} tokens={n:<3} {row['cycles']:>13,} cycles"
                    f"  {row['tokens_per_s']:>10,.1f} tok/s"
                    f"  MXU {100 * row['mxu_utilization']:5.2f}%"
                    f"  (compile {t_compile:.1f} s, model {time.perf_counter() - t0:.1f} s)"
                )
                t_compile = 0.0
            del program
    return rows


def validate_points(
    model: str,
    base: HwConfig,
    changes: list[dict[str, int]],
    tokens: int = 8,
    log=print,
) -> dict[str, dict]:
    """Run `model` through the RTL on each point: point name -> errors of the model."""
    import compiler
    from perf.validate import compare, measure
    from sim.cli.models import build

    out: dict[str, dict] = {}
    for change in changes:
        hw = config_of(base, change)
        spec = build(model, tokens=tokens)
        program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=hw)
        t0 = time.perf_counter()
        meas = measure(program, spec.inputs)
        cmp = compare(predict(program), meas)
        c = cmp.counters["cycles"]
        out[hw.name] = {
            "model": model,
            "tokens": tokens,
            "predicted": c["predicted"],
            "measured": c["measured"],
            "error": c["error"],
            "worst_kind_error": cmp.worst_kind_error(),
            "wall_s": time.perf_counter() - t0,
        }
        log(
            f"  RTL {hw.name}: {model} {c['measured']:,} cycles, model {c['error']:+.3%},"
            f" worst kind {cmp.worst_kind_error():.3%} ({time.perf_counter() - t0:.0f} s)"
        )
    return out


CSV_FIELDS = [
    "point",
    "changed",
    *DEFAULT_SWEEP,
    "clock_mhz",
    "tokens",
    "cycles",
    "tokens_per_s",
    "mxu_utilization",
    "spad_needed_kib",
    "acc_needed_kib",
    "dram_bytes_per_token",
    "fetch_bytes_per_token",
    "insns",
    "host_ops",
    "fetch_cycles_share",
    "dma_busy_share",
    "rtl_check",
    "error",
]


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def plot(out: Path, model: str, base: HwConfig, sweep_spec: dict, rows: list[dict]) -> list[Path]:
    """Per swept parameter: tokens/s and MXU utilization against its value (the other
    parameters at the base), one line per token count; validated points ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if not r.get("error")]
    paths = []
    for name, values in sweep_spec.items():
        fig, (ax_t, ax_u) = plt.subplots(1, 2, figsize=(10, 4))
        for n in sorted({r["tokens"] for r in good}):
            pts = [
                r
                for r in good
                if r["tokens"] == n
                and all(r[f] == getattr(base, f) for f in DEFAULT_SWEEP if f != name)
                and r[name] in values + [getattr(base, name)]
            ]
            pts.sort(key=lambda r: r[name])
            xs = [r[name] for r in pts]
            ax_t.plot(xs, [r["tokens_per_s"] for r in pts], "o-", label=f"{n} tokens")
            ax_u.plot(xs, [100 * r["mxu_utilization"] for r in pts], "o-", label=f"{n} tokens")
            checked = [r for r in pts if r.get("rtl_check")]
            ax_t.plot(
                [r[name] for r in checked],
                [r["tokens_per_s"] for r in checked],
                "o",
                ms=12,
                mfc="none",
                color="k",
            )
        failed = sorted(
            {r["change"][name] for r in rows if r.get("error") and set(r["change"]) == {name}}
        )
        for v in failed:  # points with no figure: the RTL would hang, or no compile
            ax_t.annotate(
                "no figure\n(see error)",
                (v, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 12),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color="r",
            )
        ticks = sorted(set(values) | {getattr(base, name)})
        for ax in (ax_t, ax_u):
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [str(v) for v in ticks])
            ax.minorticks_off()
            ax.set_xlabel(name)
            ax.axvline(getattr(base, name), color="0.7", ls=":")
            ax.legend(fontsize=8)
        ax_t.set_ylabel(f"prefill tokens/s at {base.clock_mhz:g} MHz")
        ax_u.set_ylabel("MXU utilization (%)")
        fig.suptitle(
            f"{model}: {name} (others at {base.name}; ringed: configs checked on the RTL,"
            " see rtl_check)"
        )
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
