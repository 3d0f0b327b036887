"""Compile report: every ATen op with its count and lowered/CPU status, instructions
per unit, DRAM footprint."""

from __future__ import annotations

from collections import Counter

from compiler.isa import FORMATS, decode_program


def compile_report(program, lowered, graph_stats: dict, times: dict) -> dict:
    per_unit, per_opcode = Counter(), Counter()
    for insn in decode_program(program.code):
        per_unit[FORMATS[insn.opcode].unit] += 1
        per_opcode[insn.opcode.name] += 1
    mem = program.meta["memory"]
    return {
        "ops": lowered.op_table(),
        "cpu_fallback": sorted({r.op for r in lowered.records.values() if r.status == "cpu"}),
        "instructions": len(program.code) // 32,
        "per_unit": dict(per_unit),
        "per_opcode": dict(per_opcode),
        "graph": graph_stats,
        "dram": {
            "total_bytes": mem["total"],
            "constant_bytes": mem["constants"][1] - mem["constants"][0],
            "activation_bytes": mem["activations"][1] - mem["activations"][0],
            "activation_peak_live": mem["activation_peak_live"],
            "activation_no_reuse": mem["activation_no_reuse"],
        },
        "layers": len(program.meta["layers"]),
        "times": times,
    }


def format_report(report: dict) -> str:
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
