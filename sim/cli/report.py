"""Every report a run writes or prints, rendered in one place: the compile report
(ATen ops, instructions per unit, DRAM footprint), the per-layer table on the console
and in report.md, report.json, the summary line, and the instruction log."""

from __future__ import annotations

import json
from pathlib import Path

from contract.blob import Listing


# ---------------------------------------------------------------- compile report
def format_compile_report(report: dict) -> str:
    lines = ["| ATen op | count | device | view | cpu |", "|---|---:|---:|---:|---:|"]
    for op, row in report["ops"].items():
        why = f" ({'; '.join(row['reasons'])})" if row.get("cpu") and row["reasons"] else ""
        lines.append(
            f"| {op}{why} | {row['count']} | {row.get('device', 0)} |"
            f" {row.get('view', 0)} | {row.get('cpu', 0)} |"
        )
    d = report["dram"]
    lines.append("")
    lines.append(f"instructions: {report['instructions']}  per unit: {report['per_unit']}")
    lines.append(
        f"DRAM: {d['total_bytes'] / 2**20:.1f} MiB total, constants"
        f" {d['constant_bytes'] / 2**20:.1f} MiB, activations"
        f" {d['activation_bytes'] / 2**10:.1f} KiB (peak live"
        f" {d['activation_peak_live'] / 2**10:.1f} KiB, no reuse"
        f" {d['activation_no_reuse'] / 2**10:.1f} KiB)"
    )
    return "\n".join(lines)


def compile_line(model: str, seconds: float, report: dict, checkpoints: int) -> str:
    return (
        f"compiled {model} in {seconds:.2f} s: {report['instructions']} instructions,"
        f" {checkpoints} checkpoints, DRAM {report['dram']['total_bytes'] / 2**20:.1f}"
        f" MiB, CPU-fallback ops: {report['cpu_fallback'] or 'none'}"
    )


# ---------------------------------------------------------------- per-layer table
TABLE_HEADER = (
    f"{'id':>4}  {'layer':<40} {'shape':<14} {'e2e relL2':>10} {'e2e cos':>10}"
    f" {'fa relL2':>10} {'fa far':>8} {'cycles':>10}  status"
)


def format_row(row: dict) -> str:
    """One layer on the console."""
    e, f = row.get("e2e", {}), row.get("follow", {})
    shape = "x".join(map(str, row["shape"]))
    cycles = f"{row['cycles']:>10,}" if "cycles" in row else f"{'-':>10}"
    if "rel_l2" not in e or "rel_l2" not in f:
        return f"{row['id']:>4}  {row['path']:<40} {shape:<14} {row['status'].upper()}"
    line = (
        f"{row['id']:>4}  {row['path']:<40} {shape:<14} {e['rel_l2']:>10.3e}"
        f" {e['cosine']:>10.7f} {f['rel_l2']:>10.3e} {f['far_fraction']:>8.3%} {cycles}  "
        f"{row['status'].upper()}"
    )
    if row.get("reason"):
        line += f"  ({row['reason']})"
    return line


def _markdown_row(r: dict) -> str:
    e, f = r.get("e2e", {}), r.get("follow", {})
    nan = float("nan")
    return (
        f"| {r['id']} | {r['path']} | {r['kind']} | {r['shape']} |"
        f" {e.get('rel_l2', nan):.3e} | {e.get('norm_max_abs', nan):.3e} |"
        f" {f.get('rel_l2', nan):.3e} | {f.get('far_fraction', nan):.3%} | {r.get('isa', '-')} |"
        f" {r.get('cycles', '-')} | {r['status']} |"
    )


def write_reports(
    out_dir: Path, summary: dict, rows: list[dict], report: dict, debug: list[str] | None = None
) -> None:
    """report.json (everything) and report.md (the table, debug links, summary, compile
    report)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(
        json.dumps({"summary": summary, "layers": rows, "compile": report}, indent=1, default=str)
    )
    md = [
        f"# Loom run: {summary['model']} on backend `{summary['backend']}`",
        "",
        *(debug or []),
        "| id | layer | kind | shape | e2e rel L2 | e2e max err / max ref | follow rel L2 |"
        " follow far | vs ISA model | cycles | status |",
        "|---:|---|---|---|---:|---:|---:|---:|---|---:|---|",
        *(_markdown_row(r) for r in rows),
        "",
        "## Summary",
        "",
        "```",
        json.dumps(summary, indent=1),
        "```",
        "",
        "## Compile report",
        "",
        format_compile_report(report),
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(md))


def summary_line(status: str, summary: dict, stats: dict, out_dir: Path) -> str:
    cycles = (
        f" {stats['cycles']:,} cycles ({summary['cycles_per_s']:,} cycles/s),"
        if "cycles" in stats
        else ""
    )
    return (
        f"\n{status}: {summary['layers_checked']} checkpoints on backend {summary['backend']};"
        f" compile {summary['compile_s']:.2f} s, run {stats['wall_s']:.2f} s,{cycles}"
        f" output max|err| vs eager {summary['output_max_abs_vs_eager']:.3e};"
        f" report {out_dir}/report.md"
    )


# ---------------------------------------------------------------- instruction log
def write_instruction_log(path: Path, trace, listing: Listing) -> None:
    """One line per retired instruction: the cycles it issued and retired in, pc, listing
    number, unit, disassembly (cycles: RTL traces only). The core overlaps its units, so
    an instruction may issue before the one above it retires."""
    with open(path, "w") as f:
        f.write(
            f"# {'issued':>12} {'retired':>14} {'pc':>10} {'insn':>7}  {'unit':<5} instruction\n"
        )
        for r in trace:
            issued = f"{r.issued:>14}" if r.issued is not None else f"{'-':>14}"
            cycle = f"{r.cycle:>14}" if r.cycle is not None else f"{'-':>14}"
            line = listing.at(r.pc)
            f.write(f"{issued} {cycle} {r.pc:#10x} {line.number:>7}  {line.unit:<5} {line.text}\n")
