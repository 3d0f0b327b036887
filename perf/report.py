"""`make perf` output: the tables printed, and under build/perf/<model>/ the figures as
JSON, a roofline chart, a per-layer matrix-unit utilization plot and report.md."""

from __future__ import annotations

import json
from pathlib import Path

from perf.predict import Figures, Prediction
from perf.timing import CoreTiming
from perf.validate import COUNTERS, Comparison


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.2f}%"


def _num(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def kind_rows(pred: Prediction, cmp: Comparison | None) -> list[list[str]]:
    rows = []
    for kind, f in sorted(pred.by_kind().items(), key=lambda kv: -kv[1].cycles):
        k = cmp.kinds.get(kind) if cmp else None
        rows.append(
            [
                kind,
                str(sum(1 for la in pred.layers if la.kind == kind)),
                _num(f.cycles),
                _num(k["measured"]) if k else "-",
                _pct(k["error"]) if k else "-",
                f"{100 * f.mxu_utilization(pred.timing):.2f}%",
                f"{f.intensity():.2f}" if f.dram_bytes else "-",
            ]
        )
    return rows


KIND_HEADER = ["kind", "layers", "predicted", "RTL", "error", "MXU util", "MACs/byte"]
LAYER_HEADER = ["id", "layer", "kind", "predicted", "RTL", "error", "MXU util (pred / RTL)"]
COUNTER_HEADER = ["counter", "predicted", "RTL", "error"]


def layer_rows(pred: Prediction, cmp: Comparison | None) -> list[list[str]]:
    by_id = {row["id"]: row for row in cmp.layers} if cmp else {}
    rows = []
    for la in pred.layers:
        row = by_id.get(la.id)
        util = f"{100 * la.figures.mxu_utilization(pred.timing):.2f}%"
        if row and row["mxu_utilization_measured"] is not None:
            util += f" / {100 * row['mxu_utilization_measured']:.2f}%"
        rows.append(
            [
                str(la.id),
                la.path,
                la.kind,
                _num(la.figures.cycles),
                _num(row["measured"]) if row else "-",
                _pct(row["error"]) if row else "-",
                util,
            ]
        )
    return rows


def counter_rows(pred: Prediction, cmp: Comparison | None) -> list[list[str]]:
    total = pred.total.to_dict(pred.timing)
    rows = []
    for name in COUNTERS:
        if name not in total:
            continue
        c = cmp.counters.get(name) if cmp else None
        rows.append(
            [
                name,
                _num(total[name]),
                _num(c["measured"]) if c else "-",
                _pct(c["error"]) if c else "-",
            ]
        )
    return rows


# Columns of names, left-aligned in text tables (the others are figures).
TEXT_COLUMNS = {"kind", "layer", "counter"}


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = [h in TEXT_COLUMNS for h in header]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if is_text else c.rjust(w)
            for c, w, is_text in zip(cells, widths, left, strict=True)
        )

    return "\n".join([line(header), *(line(r) for r in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def roofline_png(path: Path, pred: Prediction, cmp: Comparison | None, title: str) -> None:
    """Attainable MACs/cycle against MACs per DRAM byte: the array's and the bus's roofs,
    the roof of a core that overlaps nothing (today's: MAC time plus transfer time), each
    layer kind that does matrix work (model o, RTL x) and each such layer (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t: CoreTiming = pred.timing
    peak, bw = t.peak_macs_per_cycle, t.read_bytes_per_cycle
    kinds = {k: f for k, f in pred.by_kind().items() if f.macs and f.dram_bytes}
    layers = [la for la in pred.layers if la.figures.macs and la.figures.dram_bytes]
    xs = [la.figures.intensity() for la in layers] + [peak / bw]
    lo, hi = min(xs) / 8, max(xs) * 8
    fig, ax = plt.subplots(figsize=(7.5, 5))
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, x * bw) for x in grid], "k-", lw=2, label="roof (overlapped)")
    ax.plot(
        grid,
        [1 / (1 / peak + 1 / (x * bw)) for x in grid],
        "k--",
        lw=1,
        label="roof without overlap (today's core)",
    )
    ax.text(lo * 1.1, peak * 1.08, f"array: {peak} MACs/cycle ({t.array_dim}x{t.array_dim})")
    ax.text(lo * 1.1, lo * bw * 2.2, f"bus: {bw:g} B/cycle read", rotation=0)
    for kind, f in kinds.items():
        x = f.intensity()
        (pt,) = ax.plot([x], [f.macs / f.cycles], "o", ms=8, label=f"{kind} (model o, RTL x)")
        own = [la.figures for la in layers if la.kind == kind]
        ax.plot(
            [g.intensity() for g in own],
            [g.macs / g.cycles for g in own],
            ".",
            ms=3,
            alpha=0.5,
            color=pt.get_color(),
        )
        k = cmp.kinds.get(kind) if cmp else None
        if k and k["measured"]:
            ax.plot([x], [f.macs / k["measured"]], "x", ms=10, color=pt.get_color())
        ax.annotate(kind, (x, f.macs / f.cycles), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per DRAM data byte)")
    ax.set_ylabel("MACs per cycle")
    ax.set_title(title + "\n(dots: layers; kinds without MATMULs are not shown)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def utilization_png(path: Path, pred: Prediction, cmp: Comparison | None, title: str) -> None:
    """Matrix-unit utilization of every layer that does matrix work, predicted and
    measured (the others are 0 both ways and left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {row["id"]: row["mxu_utilization_measured"] for row in cmp.layers} if cmp else {}
    layers = [la for la in pred.layers if la.figures.macs]
    xs = list(range(len(layers)))
    fig, ax = plt.subplots(figsize=(max(7.5, len(layers) * 0.22), 5))
    width = 0.42
    ax.bar(
        [x - width / 2 for x in xs],
        [100 * la.figures.mxu_utilization(pred.timing) for la in layers],
        width,
        label="model",
    )
    if measured:
        ax.bar(
            [x + width / 2 for x in xs],
            [100 * (measured.get(la.id) or 0.0) for la in layers],
            width,
            label="RTL",
        )
    ax.set_xticks(xs)
    ax.set_xticklabels([la.path for la in layers], rotation=90, fontsize=6)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the legend above the bars
    ax.set_ylabel("matrix-unit utilization (%)")
    ax.set_title(title + " (layers with MATMULs)", fontsize=10)
    ax.legend(loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out: Path,
    model: str,
    pred: Prediction,
    cmp: Comparison | None,
    meta: dict,
) -> dict:
    """Write figures.json, roofline.png, utilization.png and report.md into out."""
    out.mkdir(parents=True, exist_ok=True)
    title = f"{model} on {pred.hw_name} ({pred.mode})"
    roofline_png(out / "roofline.png", pred, cmp, title)
    utilization_png(out / "utilization.png", pred, cmp, title)
    figures = {"model": model, **meta, "prediction": pred.to_dict()}
    if cmp:
        figures["rtl"] = cmp.to_dict()
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    total: Figures = pred.total
    lines = [
        f"# Performance model: {model} on {pred.hw_name}",
        "",
        f"Schedule: {pred.mode}. {meta.get('note', '')}".rstrip(),
        "",
        f"Predicted: {total.cycles:,} cycles, {total.insns:,} instructions, "
        f"{pred.fetch_requests:,} fetch requests, {total.macs:,} MACs, "
        f"{total.dram_bytes:,} DRAM data bytes + {pred.fetch_bytes:,} instruction bytes.",
    ]
    if cmp:
        c = cmp.counters["cycles"]
        lines.append(
            f"RTL: {c['measured']:,} cycles ({_pct(c['error'])}), run in {cmp.wall_s:.1f} s."
        )
    lines += [
        "",
        "## Per layer kind",
        "",
        markdown_table(KIND_HEADER, kind_rows(pred, cmp)),
        "",
        "## Counters",
        "",
        markdown_table(COUNTER_HEADER, counter_rows(pred, cmp)),
        "",
        "## Charts",
        "",
        "![roofline](roofline.png)",
        "",
        "![matrix-unit utilization per layer](utilization.png)",
        "",
        "## Per layer",
        "",
        markdown_table(LAYER_HEADER, layer_rows(pred, cmp)),
        "",
        "The figures: [figures.json](figures.json). The model: docs/perf.md.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return figures
