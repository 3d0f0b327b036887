"""Windowed waveforms and their ready-made views.

A traced run (`make sim WAVES=1`) writes build/<model>/waves.fst, recording only a
window of the run: the instructions of one layer (LAYER=transformer.h.3.attn, a prefix
of module paths), a cycle range (CYCLES=a:b) or an instruction range (INSN=i:j, numbers
from the program listing). The dump is switched on and off at run time by the lockstep
checker in the simulator (hdl/loom_lockstep.cc), so the rest of the run costs what
an untraced run costs.

After the run, views are generated from the trace's own hierarchy, so they follow the
RTL's signal names instead of going stale:
  waves.gtkw        GTKWave save file: groups per unit, marker and zoom on the focus,
                    enum-typed registers by name, pc and instruction words translated;
  waves.pc.txt      GTKWave translate filter: pc value -> "#n disassembly [layer]";
  waves.insn.txt    GTKWave translate filter: instruction word -> the same text;
  waves.sucl        Surfer command file: the same groups, fp32 lanes shown as floats.
`make waves` (python -m sim.rtl.waves) opens the latest trace with its view.

Enum names come from the enum tables Verilator writes into the FST for every enum-typed
signal (the RTL's own types: loom_pkg's opcode_e, unit_e, fault_e ... are generated from
contract/isa.py, the FSM state types are the modules' own), so no value table is
written here. The translate filters come from the program listing (contract.blob).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from contract.isa import INSN_BITS, INSN_BYTES
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
# A unit's lead signals, in this order: where it is, what it executes, its state.
LEAD_SIGNALS = ("pc_q", "insn_q", "opcode", "state_q", "phase_q", "mode_q", "index_q", "op_q")
PC_BITS = 32


@dataclass
class ViewSignal:
    name: str  # full hierarchical name as in the trace
    bits: int
    # bin | hex | dec | fp32 | bf16; enum: by name from the trace's enum table;
    # pc / insn: a code address / an instruction word, shown through the listing's filter
    fmt: str


@dataclass
class View:
    groups: list[tuple[str, list[ViewSignal]]]
    focus_ps: int | None  # times in the trace's time unit (1 ps for Verilator)
    start_ps: int
    end_ps: int
    clock_edges: int  # rising clock edges recorded: the window's length in cycles
    # Values the trace holds in its pc and instruction-word signals: the filters need
    # lines for these only, so their size follows the window, not the program.
    values: dict[str, set[int]] = field(default_factory=dict)

    def signals(self) -> list[str]:
        return [s.name for _, sigs in self.groups for s in sigs]


def _signal_format(stem: str, bits: int, enum_type) -> str:
    """How the view shows a signal, from its name, width and type in the trace."""
    words = stem.split("_")
    if enum_type is not None:
        return "enum"
    if bits == PC_BITS and ("pc" in words or stem.startswith("fetch_addr")):
        return "pc"
    if bits == INSN_BITS and "insn" in words:
        return "insn"
    return "hex" if bits > 1 else "bin"


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
            out.append(ViewSignal(name, bits, _signal_format(stem, bits, v.enum_type)))

        # The unit's pc, instruction and state machine first, then its other
        # registers, then its ports.
        def rank(s: ViewSignal) -> tuple[int, int, str]:
            stem = s.name[len(prefix) :]
            if stem in LEAD_SIGNALS:
                return (0, LEAD_SIGNALS.index(stem), s.name)
            return (1 if stem.endswith("_q") else 2, 0, s.name)

        out.sort(key=rank)
        return out

    groups = [(title, pick(top + scope + ".")) for title, scope in UNIT_GROUPS]
    events = []
    for n in EVENT_SIGNALS:
        v = variables.get(top + n)
        if v is not None:
            bits = v.bitwidth or 1
            fmt = _signal_format(n.split(".")[-1], bits, v.enum_type)
            events.append(ViewSignal(top + n, bits, fmt))
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
    values: dict[str, set[int]] = {"pc": set(), "insn": set()}
    for _, sigs in groups:
        for s in sigs:
            if s.fmt in values:
                values[s.fmt].update(v for _, v in variables[s.name].signal)
    return View(groups, focus, start, end, len(edges), values)


# ---------------------------------------------------------------------------- filters
def instruction_texts(listing, numbers=None) -> dict[int, str]:
    """Listing number -> "#n disassembly [layer path]", for the numbers given (default:
    every instruction)."""
    # The layer an instruction leads to is the first checkpoint at or after it
    # (Listing.layer_of); bisect finds it without a scan per instruction.
    at = [pc for pc, _ in listing.checkpoints]
    texts = {}
    for n in range(len(listing)) if numbers is None else sorted(numbers):
        line = listing.lines[n]
        i = bisect.bisect_left(at, line.pc)
        layer = ""
        if i < len(at):
            layer_id = listing.checkpoints[i][1]
            layer = f" [{listing.paths.get(layer_id, f'layer {layer_id}')}]"
        texts[n] = f"#{n} {line.text}{layer}"
    return texts


def filter_lines(fmt: str, values: set[int], listing) -> list[str]:
    """GTKWave translate filter lines for the values a pc or instruction-word signal
    takes: "<value> <text>", the value written the way GTKWave shows it in hex (every
    digit of the signal's width, leading zeros kept: GTKWave compares the whole
    displayed string, case-insensitively). Values the listing does not know (the pc
    past the last instruction, the reset word) get no line and stay hex."""
    if fmt == "pc":
        pcs = sorted(v for v in values if v % INSN_BYTES == 0 and v // INSN_BYTES < len(listing))
        texts = instruction_texts(listing, {pc // INSN_BYTES for pc in pcs})
        return [f"{pc:0{PC_BITS // 4}X} {texts[pc // INSN_BYTES]}" for pc in pcs]
    # An instruction word may stand at several pcs (a loop's repeated body): name the
    # first and count the others.
    at: dict[int, list[int]] = {}
    for line in listing.lines:
        word = int.from_bytes(line.word, "little") if line.word else None
        if word in values:
            at.setdefault(word, []).append(line.number)
    texts = instruction_texts(listing, {numbers[0] for numbers in at.values()})
    lines = []
    for word, numbers in sorted(at.items()):
        more = f"  (same word at {len(numbers) - 1} more)" if len(numbers) > 1 else ""
        lines.append(f"{word:0{INSN_BITS // 4}X} {texts[numbers[0]]}{more}")
    return lines


def write_filters(view: View, listing, fst: Path) -> dict[str, Path]:
    """Write the pc and instruction-word translate filters next to the trace; returns
    the ones that have lines (fmt -> path)."""
    out = {}
    for fmt in ("pc", "insn"):
        lines = filter_lines(fmt, view.values.get(fmt, set()), listing)
        path = fst.with_suffix(f".{fmt}.txt")
        if lines:
            what = "pc" if fmt == "pc" else "instruction word"
            header = f"# GTKWave translate filter: {what} -> listing number, disassembly, layer"
            path.write_text("\n".join([header, *lines]) + "\n")
            out[fmt] = path
        else:
            path.unlink(missing_ok=True)
    return out


def _gtkw_name(s: ViewSignal) -> str:
    """The signal's name as GTKWave knows it: with its bit range, and an array element
    as <array scope>.<array>[i] (pywellen drops the element's own array name)."""
    scope, _, base = s.name.rpartition(".")
    if base.startswith("["):
        return f"{scope}.{scope.rpartition('.')[2]}{base}[{s.bits - 1}:0]"
    return s.name if s.bits == 1 or s.name.endswith("]") else f"{s.name}[{s.bits - 1}:0]"


# GTKWave trace flags (gtkwave src/analyzer.h, TraceEntFlagBits).
TR_HEX, TR_DEC, TR_BIN, TR_RJUSTIFY = 0x2, 0x4, 0x8, 0x20
TR_BLANK, TR_FTRANSLATED, TR_GRP_BEGIN, TR_GRP_END = 0x200, 0x2000, 0x800000, 0x1000000
# Shows a signal by the names of the enum table the FST holds for it. GTKWave attaches
# those tables itself, and an enum-typed signal never consults a file filter (its enum
# table takes precedence), so enums need this flag and no file.
TR_ENUM = 1 << 32
GTKW_FLAGS = {
    "bin": TR_BIN | TR_RJUSTIFY,
    "hex": TR_HEX | TR_RJUSTIFY,
    "dec": TR_DEC | TR_RJUSTIFY,
    # GTKWave has no 32- or 16-bit float format: floats show as hex there.
    "fp32": TR_HEX | TR_RJUSTIFY,
    "bf16": TR_HEX | TR_RJUSTIFY,
    "enum": TR_ENUM | TR_BIN | TR_RJUSTIFY,
    "pc": TR_FTRANSLATED | TR_HEX | TR_RJUSTIFY,
    "insn": TR_FTRANSLATED | TR_HEX | TR_RJUSTIFY,
}
# GTKWave's zoom z shows 2**-z time units per frame of 200 pixels (wavewindow.c: calczoom).
GTKW_PIXELS_PER_FRAME = 200
GTKW_SIZE = (1600, 900)
GTKW_SIGNALS_WIDTH = 420
GTKW_WAVE_PIXELS = GTKW_SIZE[0] - GTKW_SIGNALS_WIDTH - 80  # less the tree pane and borders
GTKW_MAX_CYCLES = 1200


def gtkw_zoom(span: int, pixels: int) -> float:
    """The zoom that shows `span` time units across `pixels` pixels."""
    return -math.log2(max(1, span) * GTKW_PIXELS_PER_FRAME / pixels)


def write_gtkw(view: View, fst: Path, path: Path, filters: dict[str, Path] | None = None) -> None:
    """GTKWave save file: one group per unit, marker on the focus, zoomed to the window;
    pc and instruction words through the translate filters given (fmt -> file)."""
    filters = filters or {}
    focus = view.focus_ps if view.focus_ps is not None else view.start_ps
    # The whole window when it is short; else GTKW_MAX_CYCLES from just before the focus,
    # about a pixel per cycle, where values are still readable.
    cycle = (view.end_ps - view.start_ps) / max(1, view.clock_edges - 1)
    span = max(1, min(view.end_ps - view.start_ps, int(GTKW_MAX_CYCLES * cycle)))
    start = max(view.start_ps, min(focus - span // 20, view.end_ps - span))
    lines = [
        "[*] Loom waveform view, generated by sim/rtl/waves.py from the trace's signal names",
        f'[dumpfile] "{fst.resolve()}"',
        f"[timestart] {start}",
        f"[size] {GTKW_SIZE[0]} {GTKW_SIZE[1]}",
        f"[signals_width] {GTKW_SIGNALS_WIDTH}",
        "[sst_expanded] 0",
        f"*{gtkw_zoom(span, GTKW_WAVE_PIXELS):.6f} {focus} " + " ".join(["-1"] * 26),
    ]
    # A filter is attached to the traces that follow a `^<n> <file>` line and carry
    # TR_FTRANSLATED; n numbers the filter files of the save file.
    filter_ids = {fmt: i + 1 for i, fmt in enumerate(f for f in ("pc", "insn") if f in filters)}
    for title, sigs in view.groups:
        lines += [f"@{TR_GRP_BEGIN | TR_BLANK:x}", f"-{title}"]
        current, current_filter = None, None
        for s in sigs:
            fmt = s.fmt if s.fmt not in ("pc", "insn") or s.fmt in filters else "hex"
            if fmt in filters and fmt != current_filter:
                current_filter = fmt
                lines.append(f"^{filter_ids[fmt]} {filters[fmt].resolve()}")
            if GTKW_FLAGS[fmt] != current:
                current = GTKW_FLAGS[fmt]
                lines.append(f"@{current:x}")
            lines.append(_gtkw_name(s))
        lines += [f"@{TR_GRP_END | TR_BLANK:x}", f"-{title}"]
    path.write_text("\n".join(lines) + "\n")


def write_surfer(view: View, fst: Path, path: Path) -> None:
    """Surfer command file (`surfer waves.fst -c waves.sucl`): same groups, fp32 lanes
    as floats, cursor on the focus."""
    fmt = {
        "fp32": "FP: 32-bit IEEE 754",
        "bf16": "FP: bfloat16",
        "hex": "Hexadecimal",
    }
    lines = [
        "# Loom waveform view, generated by sim/rtl/waves.py from the trace's signal names.",
        "# Enum-typed signals keep Surfer's own Enum translator (it reads the FST's enum",
        "# tables). The pc and instruction words stay hex: Surfer maps values to text only",
        "# through translator plugins (WASM), and has no plain mapping file like GTKWave's",
        "# translate filters (waves.pc.txt, waves.insn.txt), so none is generated.",
    ]
    for title, sigs in view.groups:
        lines.append(f"divider_add {title.split(':')[0]}")
        for s in sigs:
            lines.append(f"variable_add {s.name}")
            if s.bits > 1 and s.fmt != "enum":
                lines.append(f"item_set_format {fmt.get(s.fmt, 'Hexadecimal')}")
    focus = view.focus_ps if view.focus_ps is not None else view.start_ps
    lines += ["zoom_fit", f"cursor_set {focus}", "goto_cursor"]
    path.write_text("\n".join(lines) + "\n")


def write_views(fst: Path, focus_pc: int | None = None, listing=None) -> View:
    """Write both views of a trace; with the program's listing (contract.blob.Listing),
    also the translate filters that show pc values and instruction words as listing
    lines."""
    view = build_view(fst, focus_pc)
    filters = write_filters(view, listing, fst) if listing is not None else {}
    write_gtkw(view, fst, fst.with_suffix(".gtkw"), filters)
    write_surfer(view, fst, fst.with_suffix(".sucl"))
    return view


# ---------------------------------------------------------------------------- GTKWave, headless
# Opening a view for real: GTKWave on a virtual X server (Xvfb), driven by a Tcl script
# (`gtkwave -S`) that reports what the window shows and takes screenshots (xwd).
HEADLESS_TOOLS = {"gtkwave": "gtkwave", "Xvfb": "xvfb", "xwd": "x11-apps"}  # exe -> Debian package
# Colours pinned by the rc file, so that a user's ~/.gtkwaverc cannot move them: the
# primary marker (GTKWave's "umark") and the waveform background (its defaults).
MARKER_RGB = (0xFF, 0x80, 0x80)
BACKGROUND_RGB = (0, 0, 0)
GTKWAVE_RC = "color_umark ff8080\ncolor_back 000000\nsplash_disable on\n"


def headless_gtkwave_missing() -> str | None:
    """Why GTKWave cannot be opened headless here (None: it can)."""
    missing = [f"{exe} (Debian package {pkg})" for exe, pkg in HEADLESS_TOOLS.items()]
    missing = [m for m, exe in zip(missing, HEADLESS_TOOLS, strict=True) if not shutil.which(exe)]
    return f"not installed: {', '.join(missing)}" if missing else None


@dataclass
class GtkwaveTrace:
    index: int
    flags: int  # GTKWave's trace flags (TR_*)
    name: str  # as the signal pane shows it (a group's title for a group)
    value: str  # the value shown at the marker, after translation


@dataclass
class GtkwaveShot:
    marker: int  # marker time as GTKWave reports it (trace time units)
    window: tuple[int, int]  # times at the wave pane's left and right edges
    pixels_per_unit: float  # wave pane pixels per trace time unit
    traces: list[GtkwaveTrace]
    images: list  # RGB screenshots (numpy): at the marker, then with it moved to moved_marker
    moved_marker: int
    log: str  # GTKWave's output

    def groups(self) -> list[str]:
        return [t.name for t in self.traces if t.flags & TR_GRP_BEGIN]


def read_xwd(path: Path):
    """An X window dump (xwd, ZPixmap, 24/32-bit TrueColor) as an RGB numpy array."""
    import struct

    import numpy as np

    data = path.read_bytes()
    header = struct.unpack(">25I", data[:100])
    header_size, _, _, depth, width, height = header[:6]
    byte_order, bytes_per_line, ncolors = header[7], header[12], header[19]
    if depth not in (24, 32) or bytes_per_line < 4 * width:
        raise ValueError(f"{path}: not a 24/32-bit screenshot (depth {depth})")
    offset = header_size + 12 * ncolors  # the window name and colour map precede the pixels
    px = np.frombuffer(data, np.uint8, bytes_per_line * height, offset)
    px = px.reshape(height, bytes_per_line)[:, : 4 * width].reshape(height, width, 4)
    # Pixels are 32-bit words of 0x00RRGGBB in the dump's byte order.
    return np.ascontiguousarray(px[:, :, [2, 1, 0]] if byte_order == 0 else px[:, :, [1, 2, 3]])


def write_png(rgb, path: Path, colours: int = 64) -> None:
    """A screenshot as a palette PNG (GTKWave draws with few colours: small and exact)."""
    from PIL import Image

    Image.fromarray(rgb).quantize(colours, method=Image.Quantize.MEDIANCUT).save(
        path, optimize=True
    )


def _start_xvfb(size: tuple[int, int], timeout: float) -> tuple[subprocess.Popen, str]:
    """Xvfb on a free display: it picks the number itself and writes it to -displayfd
    once it accepts clients."""
    read_fd, write_fd = os.pipe()
    try:
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24"]
            + ["-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    number = b""
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], timeout)
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:
                _stop(xvfb)
                raise RuntimeError("Xvfb did not start (no display number)")
            number += chunk
    finally:
        os.close(read_fd)
    return xvfb, f":{int(number)}"


def _stop(proc: subprocess.Popen) -> None:
    """End a process we started and whatever it started (it leads its own session):
    SIGTERM, then SIGKILL if it is still there after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def open_in_gtkwave(
    fst: Path, gtkw: Path, move_marker_to: int, timeout: float = 60.0
) -> GtkwaveShot:
    """Open a trace with its view in GTKWave on a private Xvfb display; report every
    trace (flags, name, value at the marker), the marker and the visible time span, and
    take two screenshots: as opened, and with the marker moved to move_marker_to (the
    marker is the line that moves). GTKWave and Xvfb are ended on every path."""
    with tempfile.TemporaryDirectory(prefix="loom-gtkwave-") as tmp:
        work = Path(tmp)
        shots = [work / "marker.xwd", work / "moved.xwd"]
        (work / "gtkwaverc").write_text(GTKWAVE_RC)
        (work / "report.tcl").write_text(
            f"""# Let GTKWave lay out and draw the window before anything is read or captured.
proc settle {{n}} {{ for {{set i 0}} {{$i < $n}} {{incr i}} {{ gtkwave::nop; after 20 }} }}
settle 40
puts "LOOM\tmarker\t[gtkwave::getMarker]"
puts "LOOM\twindow\t[gtkwave::getWindowStartTime]\t[gtkwave::getWindowEndTime]"
puts "LOOM\tscale\t[gtkwave::getPixelsUnitTime]"
for {{set i 0}} {{$i < [gtkwave::getTotalNumTraces]}} {{incr i}} {{
    set flags [gtkwave::getTraceFlagsFromIndex $i]
    set name [gtkwave::getTraceNameFromIndex $i]
    set value [gtkwave::getTraceValueAtMarkerFromIndex $i]
    puts "LOOM\ttrace\t$i\t$flags\t$name\t$value"
}}
exec xwd -root -silent -out {{{shots[0]}}}
gtkwave::setMarker {move_marker_to}
settle 10
puts "LOOM\tmoved\t[gtkwave::getMarker]"
exec xwd -root -silent -out {{{shots[1]}}}
flush stdout
exit 0
"""
        )
        xvfb, display = _start_xvfb(GTKW_SIZE, timeout=10)
        gtkwave = None
        try:
            # HOME and XDG dirs in the scratch directory: no user rc file, nothing written
            # to the user's home.
            env = {**os.environ, "DISPLAY": display, "HOME": tmp, "XDG_CONFIG_HOME": tmp}
            env |= {"XDG_DATA_HOME": tmp, "XDG_CACHE_HOME": tmp, "NO_AT_BRIDGE": "1"}
            env.pop("WAYLAND_DISPLAY", None)
            gtkwave = subprocess.Popen(
                ["gtkwave", "-S", str(work / "report.tcl"), str(fst), str(gtkw)]
                + [str(work / "gtkwaverc")],
                env=env,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            try:
                log, _ = gtkwave.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop(gtkwave)
                log = gtkwave.stdout.read() if gtkwave.stdout else ""
                raise RuntimeError(f"GTKWave did not finish in {timeout:.0f} s:\n{log}") from None
        finally:
            if gtkwave is not None:
                _stop(gtkwave)
            _stop(xvfb)
        if not all(p.exists() for p in shots):
            raise RuntimeError(
                f"GTKWave exited ({gtkwave.returncode}) before its screenshots:\n{log}"
            )
        return _parse_report(log, [read_xwd(p) for p in shots])


def _parse_report(log: str, images: list) -> GtkwaveShot:
    fields: dict[str, list[str]] = {}
    traces = []
    for line in log.splitlines():
        if not line.startswith("LOOM\t"):
            continue
        kind, *rest = line.split("\t")[1:]
        if kind == "trace":
            index, flags, name, value = (rest + ["", "", "", ""])[:4]
            traces.append(GtkwaveTrace(int(index), int(flags), name, value))
        else:
            fields[kind] = rest
    missing = {"marker", "window", "scale", "moved"} - set(fields)
    if missing:
        raise RuntimeError(f"GTKWave's report lacks {sorted(missing)}:\n{log}")
    return GtkwaveShot(
        marker=int(fields["marker"][0]),
        window=(int(fields["window"][0]), int(fields["window"][1])),
        pixels_per_unit=float(fields["scale"][0]),
        traces=traces,
        images=images,
        moved_marker=int(fields["moved"][0]),
        log=log,
    )


# ---------------------------------------------------------------------------- make waves
def latest_trace(root: Path = Path("build")) -> Path | None:
    traces = sorted(root.glob("*/waves.fst"), key=lambda p: p.stat().st_mtime)
    return traces[-1] if traces else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.waves", description="open a Loom trace")
    ap.add_argument("trace", nargs="?", help="FST file (default: the newest build/*/waves.fst)")
    ap.add_argument("--viewer", choices=["gtkwave", "surfer"], default=None)
    ap.add_argument(
        "--screenshot",
        metavar="PNG",
        help="open the view in GTKWave on a virtual display (Xvfb) and save what it shows",
    )
    args = ap.parse_args(argv)
    fst = Path(args.trace) if args.trace else latest_trace()
    if fst is None or not fst.exists():
        print("no trace: run `make sim MODEL=... WAVES=1` first", file=sys.stderr)
        return 1
    gtkw, sucl = fst.with_suffix(".gtkw"), fst.with_suffix(".sucl")
    if not gtkw.exists():
        write_views(fst)
    if args.screenshot:
        reason = headless_gtkwave_missing()
        if reason:
            print(f"cannot open GTKWave headless: {reason}", file=sys.stderr)
            return 1
        shot = open_in_gtkwave(fst, gtkw, move_marker_to=-1)
        write_png(shot.images[0], Path(args.screenshot))
        print(f"{args.screenshot}: GTKWave's window on {fst}, marker at {shot.marker}")
        return 0
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
