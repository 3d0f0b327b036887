"""Compile report: every ATen op with its count and lowered/CPU status, instructions
per unit, DRAM footprint, and notes: what the compiler changed about the model as given
(outputs switched off or dropped by the front end, integer tensors kept host-only), which
`python -m sim` prints (rendered by sim/cli/report.py)."""

from __future__ import annotations

from collections import Counter


def compile_report(program, lowered, graph_stats: dict, times: dict) -> dict:
    per_unit, per_opcode = Counter(), Counter()
    for line in program.listing.lines:  # decoded once, kept for every later reader
        per_unit[line.unit] += 1
        per_opcode[line.insn.opcode.name] += 1
    mem = program.meta["memory"]
    notes = [*graph_stats.get("notes", []), *getattr(lowered, "notes", [])]
    return {
        "notes": notes,
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
