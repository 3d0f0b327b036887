"""Windowed waveforms and their ready-made views.

A traced run (`make sim WAVES=1`) writes build/<model>/waves.fst, recording only a
window of the run: the instructions of one layer (LAYER=transformer.h.3.attn, a prefix
of module paths), a cycle range (CYCLES=a:b) or an instruction range (INSN=i:j, numbers
from the program listing). The dump is switched on and off at run time by the lockstep
checker in the simulator (hdl/loom_lockstep.cc), so the rest of the run costs what
an untraced run costs.

After the run, views are generated from the trace's own hierarchy, so they follow the
RTL's signal names instead of going stale:
  waves.gtkw  GTKWave save file: groups per unit, marker and zoom on the focus;
  waves.sucl  Surfer command file: the same groups, fp32 lanes shown as floats.
`make waves` (python -m sim.rtl.waves) opens the latest trace with its view.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from contract.isa import INSN_BYTES
from contract.lockstep import WindowMode


@dataclass(frozen=True)
class Window:
    """What a traced run records: everything, instructions [lo, hi] (listing numbers)
    or cycles [lo, hi] since reset."""

    kind: str  # all | insn | cycles
    lo: int = 0
    hi: int = 0
    label: str = "whole run"

    def checker_args(self) -> tuple[int, int, int]:
        if self.kind == "insn":
            return (WindowMode.PC, self.lo * INSN_BYTES, self.hi * INSN_BYTES)
        if self.kind == "cycles":
            return (WindowMode.CYCLES, self.lo, self.hi)
        return (WindowMode.ALL, 0, 0)


def parse_span(text: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(x, 0) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"{what} must be 'first:last' (integers), got {text!r}") from None
    if a < 0 or b < a:
        raise ValueError(f"{what} {text!r}: need 0 <= first <= last")
    return a, b


def window_for(program, layer: str | None, cycles: str | None, insns: str | None) -> Window:
    """Resolve the user's window options (at most one) against the program."""
    given = [x for x in (layer, cycles, insns) if x]
    if len(given) > 1:
        raise ValueError("give at most one of LAYER, CYCLES and INSN for a waveform window")
    if cycles:
        lo, hi = parse_span(cycles, "CYCLES")
        return Window("cycles", lo, hi, f"cycles {lo}:{hi}")
    if insns:
        lo, hi = parse_span(insns, "INSN")
        n = len(program.code) // INSN_BYTES
        if lo >= n:
            raise ValueError(f"INSN {insns}: the program has {n} instructions")
        return Window("insn", lo, min(hi, n - 1), f"instructions {lo}:{min(hi, n - 1)}")
    if layer:
        spans = program.listing.layer_spans()
        hits = [
            la for la in program.layers if la["path"] == layer or la["path"].startswith(layer + ".")
        ]
        hits = [la for la in hits if la["id"] in spans]
        if not hits:
            known = sorted({la["path"] for la in program.layers})
            raise ValueError(
                f"LAYER {layer!r} matches no layer of this program; layers are, e.g.:"
                f" {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}"
            )
        lo = min(spans[la["id"]][0] for la in hits)
        hi = max(spans[la["id"]][1] for la in hits)
        return Window("insn", lo, hi, f"layer {layer} (instructions {lo}:{hi})")
    return Window("all")


# ---------------------------------------------------------------------------- views
# Groups of the saved view: (title, scope under the core, rule). Signals are taken from
# the trace: a unit's registers (*_q) and ports (*_i, *_o), up to one SRAM line wide.
UNIT_GROUPS = [
    ("control: pc, decoded instruction, state", "u_core.u_ctrl"),
    ("DMA", "u_core.u_dma"),
    ("matrix unit", "u_core.u_mxu"),
    ("vector unit", "u_core.u_vpu"),
]
EVENT_SIGNALS = [
    "irq",
    "ckpt_valid",
    "ckpt_layer",
    "retire_valid",
    "retire_index",
    "retire_pc",
    "diverge",
    "u_core.u_ctrl.fault_q",
    "u_core.u_ctrl.fault_pc_q",
]
# Per-lane trace-only arrays of the simulation top (traced builds only) and their format.
LANE_ARRAYS = {
    "spad_wr_lane": "fp32",
    "acc_wr_lane": "fp32",
    "mxu_a_edge": "bf16",
    "mxu_b_edge": "bf16",
}
MAX_VIEW_BITS = 512
LEAD_SIGNALS = {"state_q", "phase_q", "mode_q", "pc_q", "index_q", "insn_q", "op_q", "mm_q"}


@dataclass
class ViewSignal:
    name: str  # full hierarchical name as in the trace
    bits: int
    fmt: str  # bin | hex | dec | fp32 | bf16


@dataclass
class View:
    groups: list[tuple[str, list[ViewSignal]]]
    focus_ps: int | None  # times in the trace's time unit (1 ps for Verilator)
    start_ps: int
    end_ps: int
    clock_edges: int  # rising clock edges recorded: the window's length in cycles

    def signals(self) -> list[str]:
        return [s.name for _, sigs in self.groups for s in sigs]


def _top_prefix(names: list[str]) -> str:
    for n in names:
        i = n.find("loom_tb_top.")
        if i >= 0:
            return n[: i + len("loom_tb_top.")]
    raise ValueError("the trace has no loom_tb_top scope")


def build_view(fst: Path, focus_pc: int | None = None) -> View:
    """Pick the view's signals from the trace and find the focus time: the first time
    the control unit holds focus_pc (the diverging instruction), else the trace start."""
    import pywellen

    w = pywellen.Waveform(str(fst))
    variables = {v.full_name: v for v in w.all_vars()}
    top = _top_prefix(list(variables))

    def pick(prefix: str) -> list[ViewSignal]:
        out = []
        for name, v in variables.items():
            if not name.startswith(prefix) or "." in name[len(prefix) :]:
                continue
            base = name[len(prefix) :]
            stem = base.split("[")[0]
            if not stem.endswith(("_q", "_i", "_o")) and stem not in ("opcode", "active", "state"):
                continue
            bits = v.bitwidth or 1
            if bits > MAX_VIEW_BITS:
                continue
            out.append(ViewSignal(name, bits, "hex" if bits > 1 else "bin"))

        # The unit's state machine and current operation first, then its other
        # registers, then its ports.
        def rank(s: ViewSignal) -> tuple[int, str]:
            stem = s.name[len(prefix) :]
            lead = stem in LEAD_SIGNALS
            return (0 if lead else 1 if stem.endswith("_q") else 2, s.name)

        out.sort(key=rank)
        return out

    groups = [(title, pick(top + scope + ".")) for title, scope in UNIT_GROUPS]
    events = [
        ViewSignal(top + n, variables[top + n].bitwidth or 1, "hex")
        for n in EVENT_SIGNALS
        if top + n in variables
    ]
    groups.append(("checkpoints, retirement and errors", events))
    for arr, fmt in LANE_ARRAYS.items():
        # Verilator's FST names array elements <array>.[i] (some readers: <array>[i]).
        lanes = sorted(
            (n for n in variables if n.startswith((top + arr + ".[", top + arr + "["))),
            key=lambda n: int("".join(ch for ch in n[len(top + arr) :] if ch.isdigit()) or 0),
        )
        bits = 32 if fmt == "fp32" else 16
        groups.append((f"{arr} ({fmt} per lane)", [ViewSignal(n, bits, fmt) for n in lanes]))
    groups = [(t, s) for t, s in groups if s]

    clk = variables.get(top + "clk")
    edges = [t for t, v in clk.signal if v == 1] if clk is not None else []
    start, end = (edges[0], edges[-1]) if edges else (0, 0)
    focus = None
    pc = variables.get(top + "u_core.u_ctrl.pc_q")
    if focus_pc is not None and pc is not None:
        focus = next((t for t, v in pc.signal if v == focus_pc), None)
    return View(groups, focus, start, end, len(edges))


def _gtkw_name(s: ViewSignal) -> str:
    return s.name if s.bits == 1 or s.name.endswith("]") else f"{s.name}[{s.bits - 1}:0]"


def write_gtkw(view: View, fst: Path, path: Path) -> None:
    """GTKWave save file: one group per unit, marker on the focus, zoomed to the window."""
    span = max(1, view.end_ps - view.start_ps)
    zoom = -math.log2(span / 1600)  # about 1600 pixels across the window
    focus = view.focus_ps if view.focus_ps is not None else view.start_ps
    lines = [
        "[*] Loom waveform view, generated by sim/waves.py from the trace's signal names",
        f'[dumpfile] "{fst.resolve()}"',
        f"[timestart] {max(0, focus - span // 20)}",
        "[size] 1800 1000",
        "[signals_width] 360",
        "[sst_expanded] 1",
        f"*{zoom:.6f} {focus} " + " ".join(["-1"] * 26),
    ]
    # GTKWave has no 32- or 16-bit float format: floats show as hex there.
    flags = {"bin": 0x28, "hex": 0x22, "dec": 0x24, "fp32": 0x22, "bf16": 0x22}
    for title, sigs in view.groups:
        lines += ["@800200", f"-{title}"]
        current = None
        for s in sigs:
            if flags[s.fmt] != current:
                current = flags[s.fmt]
                lines.append(f"@{current:x}")
            lines.append(_gtkw_name(s))
        lines += ["@1000200", f"-{title}"]
    path.write_text("\n".join(lines) + "\n")


def write_surfer(view: View, fst: Path, path: Path) -> None:
    """Surfer command file (`surfer waves.fst -c waves.sucl`): same groups, fp32 lanes
    as floats, cursor on the focus."""
    fmt = {
        "fp32": "FP: 32-bit IEEE 754",
        "bf16": "FP: bfloat16",
        "hex": "Hexadecimal",
    }
    lines = []
    for title, sigs in view.groups:
        lines.append(f"divider_add {title.split(':')[0]}")
        for s in sigs:
            lines.append(f"variable_add {s.name}")
            if s.bits > 1:
                lines.append(f"item_set_format {fmt.get(s.fmt, 'Hexadecimal')}")
    focus = view.focus_ps if view.focus_ps is not None else view.start_ps
    lines += ["zoom_fit", f"cursor_set {focus}", "goto_cursor"]
    path.write_text("\n".join(lines) + "\n")


def write_views(fst: Path, focus_pc: int | None = None) -> View:
    view = build_view(fst, focus_pc)
    write_gtkw(view, fst, fst.with_suffix(".gtkw"))
    write_surfer(view, fst, fst.with_suffix(".sucl"))
    return view


# ---------------------------------------------------------------------------- make waves
def latest_trace(root: Path = Path("build")) -> Path | None:
    traces = sorted(root.glob("*/waves.fst"), key=lambda p: p.stat().st_mtime)
    return traces[-1] if traces else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.waves", description="open a Loom trace")
    ap.add_argument("trace", nargs="?", help="FST file (default: the newest build/*/waves.fst)")
    ap.add_argument("--viewer", choices=["gtkwave", "surfer"], default=None)
    args = ap.parse_args(argv)
    fst = Path(args.trace) if args.trace else latest_trace()
    if fst is None or not fst.exists():
        print("no trace: run `make sim MODEL=... WAVES=1` first", file=sys.stderr)
        return 1
    gtkw, sucl = fst.with_suffix(".gtkw"), fst.with_suffix(".sucl")
    if not gtkw.exists():
        write_views(fst)
    viewers = [args.viewer] if args.viewer else ["surfer", "gtkwave"]
    for viewer in viewers:
        exe = shutil.which(viewer)
        if exe is None:
            continue
        cmd = [exe, str(fst), "-c", str(sucl)] if viewer == "surfer" else [exe, str(fst), str(gtkw)]
        print(" ".join(cmd))
        return subprocess.call(cmd)
    print(
        f"no waveform viewer found (looked for {', '.join(viewers)}). Open it yourself:\n"
        f"  gtkwave {fst} {gtkw}\n  surfer {fst} -c {sucl}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
