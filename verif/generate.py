"""Constrained-random Loom programs, seeded and reproducible.

A legal program is drawn instruction by instruction. Every field is picked from
classes that matter to the hardware (shapes: empty, 1, a line, a line +- 1, many
lines; SRAM strides with and without padding; DRAM rows, transposed columns, strided
and broadcast (zero-stride) loads, regions across a 4 KiB page; both dtypes; every
function, mode and flag), and the candidate is kept only when contract.regions
accepts it (the one definition of legal operands), so the generator never restates
the ISA's rules. Sources are drawn from what recent instructions wrote, in SPAD, ACC
and DRAM, so instructions of different units depend on each other.

A faulting program is a legal prefix, one instruction mutated until contract.regions
(or the decoder, or the index data) gives exactly the intended fault, and a legal
suffix that must not run. BUS_ERROR is the one fault class left out: the ISA model's
DRAM ends at the limit, so only tests/test_faults.py can provoke it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from contract.hw import HwConfig
from contract.isa import (
    FORMATS,
    INSN_BYTES,
    OPCODE_BITS,
    BMode,
    DType,
    Fault,
    IllegalInstruction,
    Insn,
    Mem,
    Opcode,
    Role,
    VBinFunct,
    VReduceFunct,
    VUnaryFunct,
    decode,
    encode,
    make,
)
from contract.regions import Dram, OperandError, Sram, resolve
from verif.case import (
    CHECKPOINT_LAYERS,
    CODE_BYTES,
    DATA_BASE,
    DRAM_BYTES,
    INDEX_BASE,
    POOL_LEN,
    POOL_ROWS,
    Case,
    data_image,
    pool_addr,
    special_values,
)

PAGE = 4096
# SRAM addresses are drawn mostly from a window at the bottom of each memory, so that
# unrelated instructions still meet; some regions end exactly at the end of memory.
WINDOW_LINES = 96
# Relative weights of the opcodes in a legal program.
MIX = {
    Opcode.DMA_LD: 20,
    Opcode.DMA_ST: 10,
    Opcode.GATHER: 6,
    Opcode.MATMUL: 14,
    Opcode.MOVE: 8,
    Opcode.VBIN: 14,
    Opcode.VUNARY: 8,
    Opcode.VREDUCE: 6,
    Opcode.VMASK: 5,
    Opcode.NOP: 2,
    Opcode.FENCE: 3,
    Opcode.CHECKPOINT: 4,
}
# The fault classes a program can be built to raise (BUS_ERROR: see the module doc).
FAULTS = tuple(f for f in Fault if f not in (Fault.NONE, Fault.BUS_ERROR))
TRIES = 400
# Legal programs use SRAM only in [0, SCRUB_ELEMS) and the last SCRUB_ELEMS elements of
# each memory: the zones scrub_program() zeroes before every case.
SCRUB_ELEMS = 8192


class GenerationError(RuntimeError):
    """The constraints could not be met (a generator bug, not a property of the RTL)."""


class Generator:
    """Draws instructions for one case; remembers what recent instructions wrote."""

    def __init__(self, hw: HwConfig, seed: tuple[int, int]):
        self.hw = hw
        self.seed = seed
        self.line = hw.line_elems
        self.rng = np.random.default_rng([*seed, 0x6E4])
        self.recent: list[Sram | Dram] = []
        self.image = data_image(seed)  # what GATHERs will read as indices

    # ------------------------------------------------------------ small draws
    def _p(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def _pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def _count(self, big: int, empty: float = 0.03) -> int:
        """A row, column or reduction count from the classes that matter."""
        if self._p(empty):
            return 0
        line = self.line
        cls = self._pick(["one", "line", "line+1", "line-1", "lines", "few", "any"] * 3 + ["big"])
        return {
            "big": int(self.rng.integers(8 * line, 8 * line + 4 * big)),  # fills the zone
            "one": 1,
            "line": line,
            "line+1": line + 1,
            "line-1": line - 1,
            "lines": line * int(self.rng.integers(2, 4)),
            "few": int(self.rng.integers(2, 6)),
            "any": int(self.rng.integers(1, big + 1)),
        }[cls]

    def _stride(self, rows: int, cols: int) -> int:
        """A line-aligned SRAM row stride that holds `cols` (any when rows <= 1)."""
        line = self.line
        if rows <= 1 and self._p(0.3):
            return line * int(self.rng.integers(0, 3))
        return -(-cols // line) * line + line * self._pick([0, 0, 0, 1, 2])

    def _sram_addr(self, space: Mem, rows: int, stride: int, cols: int) -> int:
        line = self.line
        size = self.hw.acc_elems if space == Mem.ACC else self.hw.spad_elems
        mine = [r for r in self.recent if isinstance(r, Sram) and r.space == space]
        if mine and self._p(0.5):
            base = self._pick(mine[-6:]).addr  # read (or overwrite) what was written
            return max(0, base + line * self._pick([0, 0, 0, 1, -1, 2]))
        span = (rows - 1) * stride + cols if rows and cols else 0
        if self._p(0.08) and 0 < span <= size:
            return (size - span) // line * line  # the region ends at the end of memory
        return line * int(self.rng.integers(0, WINDOW_LINES))

    def _sram(self, space: Mem, rows: int, cols: int) -> tuple[int, int]:
        stride = self._stride(rows, cols)
        return self._sram_addr(space, rows, stride, cols), stride

    def _dram(self, dtype: DType, rows: int, cols: int, store: bool) -> tuple[int, int, int]:
        """(address, row stride, column stride) of a DRAM region in the data area."""
        size = dtype.size
        mode = self._pick(
            ["rows", "rows", "rows", "transposed", "strided"] + ["broadcast"] * (not store)
        )
        pad = int(self.rng.integers(0, 9)) if self._p(0.5) else 0
        if mode == "rows":
            cs, rs = 1, cols + pad
        elif mode == "transposed":
            rs, cs = 1, max(rows, 1) + pad
        elif mode == "strided":
            cs = int(self.rng.integers(2, 5))
            rs = cols * cs + pad
        else:  # every row reads the same elements
            cs, rs = 1, 0
        span = ((max(rows, 1) - 1) * rs + (max(cols, 1) - 1) * cs + 1) * size
        low = INDEX_BASE if not store and self._p(0.05) else DATA_BASE
        high = DRAM_BYTES - span
        mine = [r for r in self.recent if isinstance(r, Dram)]
        if mine and self._p(0.4):
            addr = self._pick(mine[-6:]).addr + size * self._pick([0, 0, 1, -1, cols])
        elif self._p(0.3):  # a row or column that crosses a page boundary
            boundary = PAGE * int(self.rng.integers(DATA_BASE // PAGE + 1, DRAM_BYTES // PAGE))
            addr = boundary - size * int(self.rng.integers(1, max(2, min(cols * cs, 64))))
        else:
            addr = int(self.rng.integers(low, max(low + 1, high)))
        addr = max(low, min(addr, high)) // size * size
        return addr, rs, cs

    def _imm(self) -> float:
        return float(special_values(self.rng, 1)[0])

    # ------------------------------------------------------------ one instruction
    def _draw(self, op: Opcode) -> Insn:
        """A candidate (maybe illegal) instruction of opcode op."""
        line = self.line
        if op == Opcode.NOP or op == Opcode.FENCE:
            return make(op)
        if op == Opcode.CHECKPOINT:
            return make(op, layer=self._pick(list(CHECKPOINT_LAYERS)))
        if op in (Opcode.DMA_LD, Opcode.DMA_ST):
            space, dtype = Mem(self._pick([0, 1])), DType(self._pick([0, 1]))
            if op == Opcode.DMA_ST and space == Mem.SPAD:
                dtype = DType.BF16
            rows, cols = self._count(40), self._count(80)
            sram, stride = self._sram(space, rows, cols)
            dram, rs, cs = self._dram(dtype, rows, cols, store=op == Opcode.DMA_ST)
            return make(
                op, space=space, dtype=dtype, sram=sram, sram_stride=stride, dram=dram,
                dram_rs=rs, dram_cs=cs, rows=rows, cols=cols,
            )  # fmt: skip
        if op == Opcode.GATHER:
            space, dtype = Mem(self._pick([0, 1])), DType(self._pick([0, 1]))
            pool = int(self.rng.integers(len(POOL_ROWS)))
            rows = min(self._count(POOL_LEN), POOL_LEN)
            start = int(self.rng.integers(0, POOL_LEN - rows + 1))
            cols = self._count(64)
            table_rows = POOL_ROWS[pool] + self._pick([0, 0, 1, 5])
            table_rs = cols + self._pick([0, 0, 3])
            span = ((table_rows - 1) * table_rs + max(cols, 1)) * dtype.size
            table = (
                int(self.rng.integers(DATA_BASE, max(DATA_BASE + 1, DRAM_BYTES - span))) // 4 * 4
            )
            sram, stride = self._sram(space, rows, cols)
            return make(
                op, space=space, dtype=dtype, sram=sram, sram_stride=stride, table_addr=table,
                table_rs=table_rs, table_rows=table_rows, idx=pool_addr(pool) + 4 * start,
                rows=rows, cols=cols,
            )  # fmt: skip
        if op == Opcode.MATMUL:
            m, n, k = self._count(40), self._count(48), self._count(70)
            trans_b = self._p(0.5)
            mode = self._pick(["plain", "acc", "bias"])
            a, a_stride = self._sram(Mem.SPAD, m, k)
            b, b_stride = self._sram(Mem.SPAD, *((n, k) if trans_b else (k, n)))
            dst, dst_stride = self._sram(Mem.ACC, m, n)
            bias = self._sram_addr(Mem.ACC, 1, 0, n) if mode == "bias" else 0
            return make(
                op, dst=dst, dst_stride=dst_stride, a=a, a_stride=a_stride, b=b,
                b_stride=b_stride, bias=bias, m=m, n=n, k=k, acc=mode == "acc",
                trans_b=trans_b, use_bias=mode == "bias",
            )  # fmt: skip
        rows, cols = self._count(40), self._count(3 * line + 5)
        if op == Opcode.MOVE:
            dst_space, src_space = Mem(self._pick([0, 1])), Mem(self._pick([0, 1]))
            src, src_stride = self._sram(src_space, rows, cols)
            if dst_space == src_space and self._p(0.15):
                dst, dst_stride = src, src_stride  # in place (ACC -> ACC: a copy)
            else:
                dst, dst_stride = self._sram(dst_space, rows, cols)
            return make(
                op, dst_space=dst_space, src_space=src_space, dst=dst, dst_stride=dst_stride,
                src=src, src_stride=src_stride, rows=rows, cols=cols,
            )  # fmt: skip
        a, a_stride = self._sram(Mem.ACC, rows, cols)
        if op == Opcode.VREDUCE:
            dst, dst_stride = self._sram(Mem.ACC, rows, 1)
            funct = self._pick(list(VReduceFunct))
            return make(
                op, funct=funct, dst=dst, dst_stride=dst_stride, a=a, a_stride=a_stride,
                rows=rows, cols=cols,
            )  # fmt: skip
        in_place = self._p(0.2)
        dst, dst_stride = (a, a_stride) if in_place else self._sram(Mem.ACC, rows, cols)
        if op == Opcode.VUNARY:
            return make(
                op, funct=self._pick(list(VUnaryFunct)), dst=dst, dst_stride=dst_stride, a=a,
                a_stride=a_stride, rows=rows, cols=cols,
            )  # fmt: skip
        if op == Opcode.VMASK:
            return make(
                op, dst=dst, dst_stride=dst_stride, a=a, a_stride=a_stride, rows=rows,
                cols=cols, offset=int(self.rng.integers(-cols - 2, rows + 3)), imm=self._imm(),
            )  # fmt: skip
        assert op == Opcode.VBIN
        bmode = BMode(self._pick(list(BMode)))
        b_rows = {BMode.FULL: rows, BMode.ROW: 1, BMode.COL: rows, BMode.IMM: 0}[bmode]
        b_cols = {BMode.FULL: cols, BMode.ROW: cols, BMode.COL: 1, BMode.IMM: 0}[bmode]
        b, b_stride = self._sram(Mem.ACC, b_rows, b_cols) if bmode != BMode.IMM else (0, 0)
        if bmode == BMode.FULL and self._p(0.15):
            b, b_stride = a, a_stride  # a op a
        return make(
            op, funct=self._pick(list(VBinFunct)), bmode=bmode, dst=dst, dst_stride=dst_stride,
            a=a, a_stride=a_stride, b=b, b_stride=b_stride, rows=rows, cols=cols,
            imm=self._imm(),
        )  # fmt: skip

    def legal(self, insn: Insn) -> bool:
        """Accepted by the ISA, SRAM only in the zones scrub_program() clears (so a case
        does not depend on what the one before it left), stores only into the data area,
        gathers in bounds."""
        try:
            ops = resolve(insn, self.hw, DRAM_BYTES)
        except OperandError:
            return False
        for region in ops.regions():
            if isinstance(region, Sram) and not region.empty:
                size = self.hw.acc_elems if region.space == Mem.ACC else self.hw.spad_elems
                if region.end > SCRUB_ELEMS and region.addr < size - SCRUB_ELEMS:
                    return False
        for region in ops.writes.values():
            if isinstance(region, Dram) and not region.empty and region.addr < DATA_BASE:
                return False
        for region in ops.reads.values():
            if isinstance(region, Dram) and not region.empty and region.addr < INDEX_BASE:
                return False  # the code area changes as a program is shrunk
        return insn.opcode != Opcode.GATHER or self._gather_in_bounds(insn)

    def _gather_slice(self, insn: Insn) -> np.ndarray:
        """The indices the gather reads from the case's image (none when its
        destination is empty)."""
        n = insn.rows if insn.cols else 0
        if n == 0 or insn.idx % 4 or insn.idx + 4 * n > DRAM_BYTES:
            return np.zeros(0, dtype=np.int32)
        return self.image[insn.idx : insn.idx + 4 * n].view(np.int32)

    def _gather_in_bounds(self, insn: Insn) -> bool:
        return bool(np.all(self._gather_slice(insn) < insn.table_rows))

    def insn(self, op: Opcode) -> Insn:
        for _ in range(TRIES):
            try:
                candidate = self._draw(op)
            except IllegalInstruction:  # a field does not fit its bits: draw again
                continue
            if self.legal(candidate):
                self._remember(candidate)
                return candidate
        raise GenerationError(f"no legal {op.name} in {TRIES} draws (seed {self.seed})")

    def _remember(self, insn: Insn) -> None:
        for region in resolve(insn, self.hw, DRAM_BYTES).writes.values():
            if not region.empty:
                self.recent.append(region)
        del self.recent[:-24]

    def body(self, n: int) -> list[Insn]:
        """n legal instructions: a load into each memory first, then the mix."""
        ops, weights = list(MIX), np.array(list(MIX.values()), dtype=float)
        out = [self.insn(Opcode.DMA_LD) for _ in range(min(n, 2))]
        while len(out) < n:
            out.append(self.insn(Opcode(self.rng.choice(ops, p=weights / weights.sum()))))
        return out

    # ------------------------------------------------------------ faults
    def faulting_word(self, fault: Fault) -> bytes:
        """One instruction word whose first fault is `fault` (not FETCH_RANGE)."""
        if fault == Fault.ILLEGAL_INSN:
            return self._illegal_word()
        edits = _EDITS[fault]
        for _ in range(TRIES):
            op, edit = self._pick(edits)
            try:
                base = self._draw(op)
            except IllegalInstruction:
                continue
            if not self.legal(base):
                continue
            try:
                candidate = make(op, **{**base.args, **edit(self, base)})
            except IllegalInstruction:
                continue
            if self.first_fault(candidate) == fault:
                return encode(candidate)
        raise GenerationError(f"no instruction raising {fault.name} in {TRIES} draws")

    def first_fault(self, insn: Insn) -> Fault:
        try:
            resolve(insn, self.hw, DRAM_BYTES)
        except OperandError as e:
            return e.fault
        if insn.opcode == Opcode.GATHER and not self._gather_in_bounds(insn):
            return Fault.GATHER_INDEX
        return Fault.NONE

    def _illegal_word(self) -> bytes:
        kind = self._pick(["opcode", "enum", "reserved"])
        for _ in range(TRIES):
            if kind == "opcode":
                op = int(self.rng.integers(len(Opcode), 1 << OPCODE_BITS))
                word = op | int(self.rng.integers(0, 1 << 62)) << OPCODE_BITS
            else:
                op = self._pick([o for o in MIX if o not in (Opcode.NOP, Opcode.FENCE)])
                word = int.from_bytes(encode(self.insn(op)), "little")
                layout = FORMATS[op].layout()
                if kind == "enum":
                    enums = [(f, lsb) for f, lsb in layout if f.enum is not None]
                    bad = [
                        (f, lsb, v)
                        for f, lsb in enums
                        for v in range(1 << f.bits)
                        if v not in {e.value for e in f.enum}
                    ]
                    if not bad:
                        kind = "reserved"
                        continue
                    f, lsb, v = self._pick(bad)
                    word = word & ~(((1 << f.bits) - 1) << lsb) | v << lsb
                else:
                    used = layout[-1][1] + layout[-1][0].bits if layout else OPCODE_BITS
                    word |= 1 << int(self.rng.integers(used, INSN_BYTES * 8))
            raw = word.to_bytes(INSN_BYTES, "little")
            try:
                decode(raw)
            except IllegalInstruction:
                return raw
        raise GenerationError("no illegal word")


def _sram_fields(insn: Insn) -> list[str]:
    return [f.name for f in insn.fmt.by_role(Role.SRAM_ADDR)]


def _stride_of(name: str) -> str:
    return f"{name}_stride"


def _misalign(g: Generator, insn: Insn) -> dict:
    name = g._pick(_sram_fields(insn))
    if name != "bias" and g._p(0.5):
        name = _stride_of(name)
    return {name: insn.args[name] + int(g.rng.integers(1, g.line))}


def _layout(g: Generator, insn: Insn) -> dict:
    name = g._pick([n for n in _sram_fields(insn) if n != "bias"])
    counts = {
        c: max(int(insn.args[c]), g.line + 1)
        for c in ("rows", "cols", "m", "n", "k")
        if c in insn.args
    }
    return {**counts, _stride_of(name): g.line * int(g.rng.integers(0, 2))}


def _overflow(g: Generator, insn: Insn) -> dict:
    name = g._pick(_sram_fields(insn))
    size = g._pick([g.hw.acc_elems, g.hw.spad_elems])
    return {name: size - g.line * int(g.rng.integers(0, 2))}


def _alias(g: Generator, insn: Insn) -> dict:
    """Move the destination onto one of the instruction's SRAM sources, partly (an
    identical one is legal for element-wise operations; a reduction's never is)."""
    if insn.opcode == Opcode.MATMUL:
        return {"use_bias": 1, "acc": 0, "bias": insn.dst + g.line * int(g.rng.integers(0, 2))}
    ops = resolve(insn, g.hw, DRAM_BYTES)
    sources = [r for r in ops.reads.values() if isinstance(r, Sram) and not r.empty]
    if not sources:
        return {}
    src = g._pick(sources)
    shift = 0 if insn.opcode == Opcode.VREDUCE else g.line * int(g.rng.integers(1, 3))
    out = {"dst": src.addr + shift}
    if insn.opcode == Opcode.MOVE:
        out["dst_space"] = src.space
    return out


def _dram_misalign(g: Generator, insn: Insn) -> dict:
    name = g._pick([f.name for f in insn.fmt.by_role(Role.DRAM_ADDR)])
    return {name: insn.args[name] + int(g.rng.integers(1, 4))}


def _dram_outside(g: Generator, insn: Insn) -> dict:
    name = g._pick([f.name for f in insn.fmt.by_role(Role.DRAM_ADDR)])
    return {name: g._pick([DRAM_BYTES - 4 * int(g.rng.integers(0, 8)), 0xFFFFFF00])}


def _short_table(g: Generator, insn: Insn) -> dict:
    read = g._gather_slice(insn)
    return {"table_rows": int(g.rng.integers(0, int(read.max()) + 1))} if read.size else {}


def _bad_operands(g: Generator, insn: Insn) -> dict:
    if insn.opcode == Opcode.MATMUL:
        return {"acc": 1, "use_bias": 1}
    return g._pick(
        [
            {"dram_rs": 0, "rows": max(2, insn.rows)},
            {"dram_cs": 0, "cols": max(2, insn.cols)},
            {"space": Mem.SPAD, "dtype": DType.FP32},
        ]
    )


_SRAM_OPS = [Opcode.DMA_LD, Opcode.DMA_ST, Opcode.GATHER, Opcode.MATMUL, Opcode.MOVE,
             Opcode.VBIN, Opcode.VUNARY, Opcode.VREDUCE, Opcode.VMASK]  # fmt: skip
_DRAM_OPS = [Opcode.DMA_LD, Opcode.DMA_ST, Opcode.GATHER]
Edit = Callable[[Generator, Insn], dict]
_EDITS: dict[Fault, list[tuple[Opcode, Edit]]] = {
    Fault.SRAM_ALIGN: [(op, _misalign) for op in _SRAM_OPS],
    Fault.SRAM_LAYOUT: [(op, _layout) for op in _SRAM_OPS],
    Fault.SRAM_RANGE: [(op, _overflow) for op in _SRAM_OPS],
    Fault.ALIAS: [
        (op, _alias)
        for op in (
            Opcode.MATMUL,
            Opcode.MOVE,
            Opcode.VBIN,
            Opcode.VUNARY,
            Opcode.VREDUCE,
            Opcode.VMASK,
        )
    ],  # fmt: skip
    Fault.DRAM_ALIGN: [(op, _dram_misalign) for op in _DRAM_OPS],
    Fault.DRAM_RANGE: [(op, _dram_outside) for op in _DRAM_OPS],
    Fault.GATHER_INDEX: [(Opcode.GATHER, _short_table)],
    Fault.BAD_OPERANDS: [(Opcode.MATMUL, _bad_operands), (Opcode.DMA_ST, _bad_operands)],
}


# ------------------------------------------------------------------ cases
def legal_case(hw: HwConfig, seed: tuple[int, int], max_insns: int = 24) -> Case:
    g = Generator(hw, seed)
    n = int(g.rng.integers(1, max_insns + 1))
    words = [encode(i) for i in g.body(n)] + [encode(make(Opcode.HALT))]
    return Case(seed, words, notes=[f"legal program, {n} instructions and HALT"])


def fault_case(hw: HwConfig, seed: tuple[int, int], fault: Fault, max_insns: int = 12) -> Case:
    """A legal prefix, an instruction whose first fault is `fault`, a suffix that must
    not run. FETCH_RANGE: the program has no HALT, or starts at a misaligned pc."""
    g = Generator(hw, seed)
    prefix = [encode(i) for i in g.body(int(g.rng.integers(0, max_insns + 1)))]
    suffix = [encode(i) for i in g.body(int(g.rng.integers(0, 4)))]
    halt = encode(make(Opcode.HALT))
    if fault == Fault.FETCH_RANGE:
        if prefix and g._p(0.5):
            pc = INSN_BYTES * int(g.rng.integers(len(prefix))) + 4 * int(g.rng.integers(1, 8))
            return Case(seed, prefix + [halt], pc, fault.name, ["starts at a misaligned pc"])
        return Case(seed, prefix, 0, fault.name, [f"{len(prefix)} instructions, no HALT"])
    word = g.faulting_word(fault)
    where = f"faults at instruction {len(prefix)} (pc {len(prefix) * INSN_BYTES:#x})"
    return Case(seed, prefix + [word] + suffix + [halt], 0, fault.name, [f"{fault.name}: {where}"])


def case(hw: HwConfig, run_seed: int, index: int, fault_share: float = 0.25) -> Case:
    """Case `index` of the run with seed `run_seed`: legal, or (a fault_share of them)
    built to raise a fault class, the classes in turn."""
    seed = (run_seed, index)
    rng = np.random.default_rng([*seed, 0xFA])
    if rng.random() < fault_share:
        fault = FAULTS[int(rng.integers(len(FAULTS)))]
        out = fault_case(hw, seed, fault)
    else:
        out = legal_case(hw, seed)
    assert len(out.code) <= CODE_BYTES
    return out


def scrub_program(hw: HwConfig) -> list[Insn]:
    """Zero both SRAM zones a legal program may use (and HALT): ACC by a causal mask that
    masks every element (offset far below any row), SPAD by moves of the zeroed ACC."""
    line, zone = hw.line_elems, SCRUB_ELEMS
    rows = zone // line
    out = []
    for base in (0, hw.acc_elems - zone):
        out.append(
            make(
                Opcode.VMASK,
                dst=base,
                dst_stride=line,
                a=base,
                a_stride=line,
                rows=rows,
                cols=line,
                offset=-(1 << 19),
                imm=0.0,
            )  # fmt: skip
        )
    for base in (0, hw.spad_elems - zone):
        out.append(
            make(
                Opcode.MOVE,
                dst_space=Mem.SPAD,
                src_space=Mem.ACC,
                dst=base,
                dst_stride=line,
                src=0,
                src_stride=line,
                rows=rows,
                cols=line,
            )  # fmt: skip
        )
    return [*out, make(Opcode.HALT)]
