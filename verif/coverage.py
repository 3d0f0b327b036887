"""Functional coverage of the programs the ISA model runs, with cocotb-coverage.

The coverage model (covergroups "loom.<group>") is sampled through the ISA model's
observer hook (sim.ref.OBSERVERS) on every instruction of every run, before it takes
effect, and on every fault:

- loom.insn       every opcode, every value of every selector and flag
- loom.dma        DMA_LD / DMA_ST / GATHER: dtype x space x DRAM layout (rows,
                  transposed, strided, broadcast, one element), partial lines x 4 KiB
                  page crossings, empty regions
- loom.mxu        mode (plain, acc, bias) x trans_b x k class; m class x n class
- loom.vpu        function x operand mode, shape classes, in place or not
- loom.values     floating-point classes of the values each unit reads
- loom.fault      fault class x the unit of the faulting instruction
- loom.dependency what an instruction reads that a recent one wrote: producer unit x
                  consumer unit x memory, and the distance x memory

Bins no legal program can hit are not bins: the crosses list only possible
combinations, derived from the ISA (which units write and read which memory, which
fault a unit can raise); BUS_ERROR is left out because the ISA model cannot raise it
(its DRAM ends at the limit; tests/test_faults.py covers it on the RTL).

enable(directory) registers the sampler and writes the hits of this process to
DIRECTORY/coverage-<pid>.json at exit; `python -m verif.coverage report DIR` merges
every file there, prints the percentage per group and lists the holes (`make coverage`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from contract import numerics as nx
from contract.hw import HwConfig
from contract.isa import (
    FORMATS,
    BMode,
    DType,
    Fault,
    Insn,
    Mem,
    Opcode,
    Role,
    VBinFunct,
    VReduceFunct,
    VUnaryFunct,
)
from contract.regions import Dram, OperandError, overlap, resolve
from sim.ref import OBSERVERS, ExecError, RefMachine

PAGE = 4096
UNITS = ("dma", "mxu", "vpu")
LAYOUTS = ("rows", "transposed", "strided", "broadcast", "single")
SIZES = ("one", "part", "line", "lines", "lines+part", "many")
KS = (*SIZES, "empty")
VALUE_CLASSES = ("+0", "-0", "subnormal", "normal", "+inf", "-inf", "nan")
DISTANCES = ("1", "2", "3-4", "5-8")
MEMS = ("SPAD", "ACC", "DRAM")
# Who writes and who reads each memory (the ISA: DMA loads and gathers into SRAM, MOVE
# between them, MATMUL into ACC from SPAD, the vector unit in ACC, only DMA in DRAM).
WRITERS = {"SPAD": ("dma", "vpu"), "ACC": ("dma", "mxu", "vpu"), "DRAM": ("dma",)}
READERS = {"SPAD": ("dma", "mxu", "vpu"), "ACC": ("dma", "mxu", "vpu"), "DRAM": ("dma",)}
DEPENDENCY_BINS = [(p, c, m) for m in MEMS for p in WRITERS[m] for c in READERS[m]]
UNIT_PAIRS = [(p, c) for p in UNITS for c in UNITS]


def _fault_units() -> list[tuple[str, str]]:
    """(fault, unit) pairs that can happen: operand faults in the units whose formats
    have that kind of operand; decoding and fetching in their own stages."""
    units_with = defaultdict(set)
    for fmt in FORMATS.values():
        unit = fmt.unit.name.lower()
        for f in fmt.fields:
            units_with[f.role].add(unit)
    sram = sorted(units_with[Role.SRAM_ADDR])
    dram = sorted(units_with[Role.DRAM_ADDR])
    pairs = [("ILLEGAL_INSN", "decode"), ("FETCH_RANGE", "fetch")]
    pairs += [(f, u) for f in ("SRAM_ALIGN", "SRAM_LAYOUT", "SRAM_RANGE") for u in sram]
    pairs += [("ALIAS", u) for u in ("mxu", "vpu")]  # element-wise, reduction, C/bias
    pairs += [(f, u) for f in ("DRAM_ALIGN", "DRAM_RANGE") for u in dram]
    pairs += [("GATHER_INDEX", "dma"), ("BAD_OPERANDS", "dma"), ("BAD_OPERANDS", "mxu")]
    return pairs


FAULT_BINS = _fault_units()
SELECT_BINS = [
    (fmt.opcode.name, f.name, v)
    for fmt in FORMATS.values()
    for f in fmt.fields
    if f.role in (Role.SELECT, Role.FLAG)
    for v in ([int(e) for e in f.enum] if f.enum is not None else [0, 1])
]
VPU_FUNCTS = (
    [("VBIN", f.name, m.name) for f in VBinFunct for m in BMode]
    + [("VUNARY", f.name, "-") for f in VUnaryFunct]
    + [("VREDUCE", f.name, "-") for f in VReduceFunct]
    + [("VMASK", "-", "-"), ("MOVE", "ACC->SPAD", "-"), ("MOVE", "SPAD->ACC", "-")]
    + [("MOVE", "ACC->ACC", "-"), ("MOVE", "SPAD->SPAD", "-")]
)
# The vector unit's arithmetic per input class (special functions at their edges).
VPU_VALUE_BINS = [
    (f"{op}.{f.name}", c)
    for op, functs in (("VBIN", VBinFunct), ("VUNARY", VUnaryFunct), ("VREDUCE", VReduceFunct))
    for f in functs
    for c in VALUE_CLASSES
]


class Sample:
    """One instruction, classified (None: the point does not apply to it)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, name):
        return None


def _contains(result, b) -> bool:
    return result is not None and b in result


def _size(n: int, line: int) -> str:
    if n >= 8 * line:
        return "many"  # eight lines or more: long transfers and reductions, big tiles
    if n == 1:
        return "one"
    if n < line:
        return "part"
    if n == line:
        return "line"
    return "lines" if n % line == 0 else "lines+part"


def _layout(r: Dram) -> str:
    if r.rows * r.cols == 1:
        return "single"
    if r.rows > 1 and r.rs == 0:
        return "broadcast"
    if r.rs == 1 and r.cs > 1 and r.rows > 1:
        return "transposed"
    return "strided" if r.cs > 1 else "rows"


def _value_classes(x: np.ndarray) -> set[str]:
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return set()
    bits = x.view(np.uint32)
    mag = bits & 0x7FFFFFFF
    neg = bits >> 31 == 1
    out = set()
    if np.any(bits == 0):
        out.add("+0")
    if np.any(bits == 0x80000000):
        out.add("-0")
    if np.any((mag > 0) & (mag < 0x00800000)):
        out.add("subnormal")
    if np.any((mag >= 0x00800000) & (mag < 0x7F800000)):
        out.add("normal")
    if np.any((mag == 0x7F800000) & ~neg):
        out.add("+inf")
    if np.any((mag == 0x7F800000) & neg):
        out.add("-inf")
    if np.any(mag > 0x7F800000):
        out.add("nan")
    return out


def _read_classes(machine: RefMachine, ops) -> set[str]:
    """The value classes of everything the instruction reads."""
    out: set[str] = set()
    for r in ops.reads.values():
        if not r.empty:
            out |= _value_classes(machine.view(r))
    return out


# ------------------------------------------------------------------ the coverage model
def _point(name, attr, bins, multi=False):
    if multi:
        return CoverPoint(name, xf=lambda s: getattr(s, attr), bins=list(bins), rel=_contains,
                          inj=False)  # fmt: skip
    return CoverPoint(name, xf=lambda s: getattr(s, attr), bins=list(bins))


def _dma_ignored() -> list[tuple]:
    """Impossible DMA combinations: an fp32 store from SPAD, a store or a gather that
    broadcasts, a gather's table is rows of whole elements."""
    out = [("DMA_ST", "FP32", "SPAD", lay) for lay in LAYOUTS]
    out += [("DMA_ST", d, s, "broadcast") for d in ("FP32", "BF16") for s in ("SPAD", "ACC")]
    out += [
        ("GATHER", d, s, lay)
        for d in ("FP32", "BF16")
        for s in ("SPAD", "ACC")
        for lay in ("transposed", "strided", "broadcast")
    ]
    return out


@CoverPoint("loom.insn.opcode", xf=lambda s: s.opcode, bins=[*(o.name for o in Opcode), "ILLEGAL"])
@_point("loom.insn.select", "selects", SELECT_BINS, multi=True)
@_point("loom.dma.op", "dma_op", ("DMA_LD", "DMA_ST", "GATHER"))
@_point("loom.dma.dtype", "dma_dtype", ("FP32", "BF16"))
@_point("loom.dma.space", "dma_space", ("SPAD", "ACC"))
@_point("loom.dma.layout", "dma_layout", LAYOUTS)
@_point("loom.dma.partial", "dma_partial", (False, True))
@_point("loom.dma.page", "dma_page", (False, True))
@_point("loom.dma.empty", "dma_empty", (False, True))
@CoverCross(
    "loom.dma.op_x_dtype_x_space_x_layout",
    items=["loom.dma.op", "loom.dma.dtype", "loom.dma.space", "loom.dma.layout"],
    ign_bins=_dma_ignored(),
)
@CoverCross(
    "loom.dma.op_x_partial_x_page",
    items=["loom.dma.op", "loom.dma.partial", "loom.dma.page"],
)
@CoverCross(
    "loom.dma.dtype_x_layout_x_partial_x_page",
    items=["loom.dma.dtype", "loom.dma.layout", "loom.dma.partial", "loom.dma.page"],
    # One element is never a whole line, and an aligned element never crosses a page.
    ign_bins=[(d, "single", False, p) for d in ("FP32", "BF16") for p in (False, True)]
    + [(d, "single", True, True) for d in ("FP32", "BF16")],
)
@_point("loom.mxu.mode", "mxu_mode", ("plain", "acc", "bias"))
@_point("loom.mxu.trans_b", "mxu_trans", (False, True))
@_point("loom.mxu.k", "mxu_k", KS)
@_point("loom.mxu.m", "mxu_m", SIZES)
@_point("loom.mxu.n", "mxu_n", SIZES)
@CoverCross("loom.mxu.mode_x_trans_x_k", items=["loom.mxu.mode", "loom.mxu.trans_b", "loom.mxu.k"])
@CoverCross("loom.mxu.m_x_n", items=["loom.mxu.m", "loom.mxu.n"])
@_point("loom.vpu.funct", "vpu_funct", VPU_FUNCTS)
@_point("loom.vpu.rows", "vpu_rows", SIZES)
@_point("loom.vpu.cols", "vpu_cols", SIZES)
@_point("loom.vpu.in_place", "vpu_in_place", (False, True))
@CoverCross("loom.vpu.rows_x_cols", items=["loom.vpu.rows", "loom.vpu.cols"])
@_point("loom.values.mxu", "mxu_values", VALUE_CLASSES, multi=True)
@_point("loom.values.vpu", "vpu_values", VALUE_CLASSES, multi=True)
@_point("loom.values.dma", "dma_values", VALUE_CLASSES, multi=True)
@_point("loom.values.vpu_funct", "vpu_funct_values", VPU_VALUE_BINS, multi=True)
@_point("loom.dependency.units_x_mem", "deps", DEPENDENCY_BINS, multi=True)
@_point("loom.dependency.distance", "dep_distance", DISTANCES)
@_point("loom.dependency.nearest", "dep_pair", UNIT_PAIRS)
@CoverCross(
    "loom.dependency.distance_x_units",
    items=["loom.dependency.distance", "loom.dependency.nearest"],
)
@_point("loom.fault.class_x_unit", "fault", FAULT_BINS)
def _sample(s: Sample) -> None:
    """Every cover point above samples s."""


class Sampler:
    """The ISA-model observer that classifies each instruction and samples it."""

    def __init__(self):
        self.writes: list[tuple[int, str, list]] = []  # (index, unit, regions) recently

    def start(self, machine: RefMachine, pc: int) -> None:
        self.writes = []

    def fault(self, machine: RefMachine, err: ExecError) -> None:
        if err.fault == Fault.ILLEGAL_INSN:
            unit = "decode"
        elif err.fault == Fault.FETCH_RANGE:
            unit = "fetch"
        else:
            unit = err.insn.unit if err.insn is not None else "?"
        opcode = "ILLEGAL" if err.fault == Fault.ILLEGAL_INSN else None  # never issued
        _sample(Sample(opcode=opcode, fault=(err.fault.name, unit)))

    def issue(self, machine: RefMachine, index: int, pc: int, insn: Insn) -> None:
        hw: HwConfig = machine.hw
        s = Sample(
            opcode=insn.opcode.name,
            selects={
                (insn.opcode.name, f.name, int(insn.args[f.name]))
                for f in insn.fmt.fields
                if f.role in (Role.SELECT, Role.FLAG)
            },
        )
        try:
            ops = resolve(insn, hw, machine.dram.size)
        except OperandError:
            _sample(s)  # it faults; fault() samples the class
            return
        self._classify(machine, insn, ops, s)
        self._dependencies(index, insn, ops, s)
        _sample(s)

    def _classify(self, machine, insn: Insn, ops, s: Sample) -> None:
        line = machine.hw.line_elems
        op = insn.opcode
        if op in (Opcode.DMA_LD, Opcode.DMA_ST, Opcode.GATHER):
            dram = {
                Opcode.DMA_LD: ops.reads.get("src"),
                Opcode.GATHER: ops.reads.get("table"),
                Opcode.DMA_ST: ops.writes.get("dst"),
            }[op]
            s.dma_op, s.dma_dtype = op.name, DType(insn.dtype).name
            s.dma_space = Mem(insn.space).name
            s.dma_empty = dram.empty
            if not dram.empty:
                s.dma_layout = _layout(dram)
                s.dma_partial = insn.cols % line != 0
                s.dma_page = any(
                    r.addr // PAGE != (r.end - 1) // PAGE
                    for r in ops.regions()
                    if isinstance(r, Dram) and not r.empty
                )
                if op == Opcode.DMA_ST:  # what the store reads: SRAM values
                    s.dma_values = _value_classes(machine.view(ops.reads["src"]))
                else:  # what the load reads: DRAM elements as fp32
                    raw = machine.view(dram)
                    s.dma_values = _value_classes(
                        nx.load_values(raw, dram.dtype == DType.BF16, False)
                    )
        elif op == Opcode.MATMUL:
            s.mxu_mode = "acc" if insn.acc else "bias" if insn.use_bias else "plain"
            s.mxu_trans = bool(insn.trans_b)
            s.mxu_k = "empty" if insn.k == 0 else _size(insn.k, line)
            if insn.m and insn.n:
                s.mxu_m, s.mxu_n = _size(insn.m, line), _size(insn.n, line)
            s.mxu_values = _read_classes(machine, ops)
        elif insn.unit == "vpu":
            if op == Opcode.VBIN:
                s.vpu_funct = ("VBIN", VBinFunct(insn.funct).name, BMode(insn.bmode).name)
            elif op == Opcode.VUNARY:
                s.vpu_funct = ("VUNARY", VUnaryFunct(insn.funct).name, "-")
            elif op == Opcode.VREDUCE:
                s.vpu_funct = ("VREDUCE", VReduceFunct(insn.funct).name, "-")
            elif op == Opcode.MOVE:
                s.vpu_funct = (
                    "MOVE",
                    f"{Mem(insn.src_space).name}->{Mem(insn.dst_space).name}",
                    "-",
                )
            else:
                s.vpu_funct = ("VMASK", "-", "-")
            if insn.rows and insn.cols:
                s.vpu_rows, s.vpu_cols = _size(insn.rows, line), _size(insn.cols, line)
            (dst,) = ops.writes.values()
            s.vpu_in_place = any(r == dst for r in ops.reads.values())
            vals = s.vpu_values = _read_classes(machine, ops)
            if op in (Opcode.VBIN, Opcode.VUNARY, Opcode.VREDUCE):
                name = f"{op.name}.{s.vpu_funct[1]}"
                s.vpu_funct_values = {(name, c) for c in vals}

    def _dependencies(self, index: int, insn: Insn, ops, s: Sample) -> None:
        deps, nearest, pair = set(), None, None
        for r in ops.reads.values():
            if r.empty:
                continue
            for at, unit, written in reversed(self.writes):
                if any(overlap(r, w) for w in written):
                    mem = "DRAM" if isinstance(r, Dram) else Mem(r.space).name
                    deps.add((unit, insn.unit, mem))
                    if nearest is None or index - at < nearest:
                        nearest, pair = index - at, (unit, insn.unit)
                    break
        s.deps = deps
        if nearest is not None and nearest <= 8:
            s.dep_pair = pair
            s.dep_distance = "1" if nearest == 1 else "2" if nearest == 2 else (
                "3-4" if nearest <= 4 else "5-8")  # fmt: skip
        written = [w for w in ops.writes.values() if not w.empty]
        if written:
            self.writes.append((index, insn.unit, written))
            del self.writes[:-8]


# ------------------------------------------------------------------ files and report
GROUPS = ("insn", "dma", "mxu", "vpu", "values", "fault", "dependency")


def _items() -> dict[str, object]:
    """Every cover point and cross of the model, by name (groups excluded)."""
    return {
        name: item
        for name, item in coverage_db.items()
        if name.startswith("loom.") and name.count(".") == 2
    }


def hits() -> dict[str, dict[str, int]]:
    return {
        name: {repr(b): int(n) for b, n in item.detailed_coverage.items()}
        for name, item in _items().items()
    }


def enable(directory: str | Path) -> Sampler:
    """Sample every ISA-model run of this process; write the hits at exit."""
    sampler = Sampler()
    OBSERVERS.append(sampler)
    out = Path(directory)

    def dump() -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"coverage-{os.getpid()}.json").write_text(json.dumps(hits()))

    atexit.register(dump)
    return sampler


def merge(directory: Path) -> dict[str, dict[str, int]]:
    """Hits of every file in directory, summed, over the bins of this model."""
    total = {name: dict.fromkeys(bins, 0) for name, bins in hits().items()}
    for path in sorted(Path(directory).glob("coverage-*.json")):
        for name, bins in json.loads(path.read_text()).items():
            for b, n in bins.items():
                if name in total and b in total[name]:
                    total[name][b] += n
    return total


def report(total: dict[str, dict[str, int]]) -> dict:
    """Per group: bins covered / bins; the holes by cover item."""
    out = {}
    for group in GROUPS:
        items = {k: v for k, v in total.items() if k.startswith(f"loom.{group}.")}
        size = sum(len(v) for v in items.values())
        covered = sum(1 for v in items.values() for n in v.values() if n)
        holes = {k: [b for b, n in v.items() if not n] for k, v in items.items()}
        out[group] = {
            "bins": size,
            "covered": covered,
            "percent": round(100 * covered / size, 1) if size else 100.0,
            "holes": {k: v for k, v in holes.items() if v},
        }
    size = sum(g["bins"] for g in out.values())
    covered = sum(g["covered"] for g in out.values())
    out["total"] = {"bins": size, "covered": covered, "percent": round(100 * covered / size, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m verif.coverage", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("cmd", choices=["report"])
    ap.add_argument("directory")
    ap.add_argument("--json", help="write the report here too")
    ap.add_argument("--min", type=float, default=0.0, help="fail below this total percent")
    args = ap.parse_args(argv)
    files = list(Path(args.directory).glob("coverage-*.json"))
    if not files:
        print(f"error: no coverage-*.json in {args.directory}", file=sys.stderr)
        return 2
    rep = report(merge(Path(args.directory)))
    print(f"functional coverage over {len(files)} processes:")
    for group in GROUPS:
        g = rep[group]
        print(f"  {group:<11} {g['covered']:>4}/{g['bins']:<4} {g['percent']:5.1f}%")
        for item, holes in g["holes"].items():
            shown = ", ".join(holes[:12]) + (
                f", ... ({len(holes)} in all)" if len(holes) > 12 else ""
            )
            print(f"      hole {item}: {shown}")
    t = rep["total"]
    print(f"  {'total':<11} {t['covered']:>4}/{t['bins']:<4} {t['percent']:5.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1) + "\n")
    return 1 if t["percent"] < args.min else 0


if __name__ == "__main__":
    sys.exit(main())
