"""ISA v5 of the Loom core: the one machine-readable definition.

Every instruction is INSN_BITS wide, little-endian, opcode in bits [7:0]; the other
fields follow from bit 8 upward in the order listed. The encoder, decoder, assembler,
disassembler, the SystemVerilog package (rtl/loom_pkg.sv) and the encoding tables in
docs/isa.md are all generated from the tables below.

Every field has a *role*: what its value means to everyone who reads instructions
(the operand regions of contract/regions.py, the assembler's number format, the
compiler's address resolution, the torch backend's loop analysis). A new field says
its role here once.

Address units: DRAM addresses are bytes; DRAM strides are elements of the DRAM dtype;
SRAM addresses and strides are elements of that SRAM (bf16 in SPAD, fp32 in ACC).

Versions: v1 applied integer arithmetic to regions with zero rows or columns (an
empty region could be "out of range" or "overlap" another); v2 defines them
(docs/isa.md, "Empty regions"). v3 (found by the random programs of verif/, where the
v2 ISA model and the RTL disagreed; both rules are what the RTL did): a GATHER with an
empty destination reads and checks no index, and a start pc that is not a multiple of
INSN_BYTES is a FETCH_RANGE fault. v4 adds the VUNARY function ERF (funct 5, an illegal
instruction to a v3 core), for exact GELU on the device. v5 widens VBIN's funct to 4 bits
(the fields after it move up one bit) and adds the comparisons EQ NE LT LE GT GE (fp32
masks 1.0 / +0.0, IEEE: false with a NaN operand except NE; -0 == +0) and the selects
KEEP (b != 0 ? a : imm) and FILL (b != 0 ? imm : a), which take the immediate as a third,
scalar operand when b is a region: where, masked_fill and comparisons on the device.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum, IntEnum

ISA_VERSION = 5
INSN_BITS = 256
INSN_BYTES = INSN_BITS // 8
OPCODE_BITS = 8


class Opcode(IntEnum):
    NOP = 0
    HALT = 1
    FENCE = 2
    CHECKPOINT = 3
    DMA_LD = 4
    DMA_ST = 5
    GATHER = 6
    MATMUL = 7
    MOVE = 8
    VBIN = 9
    VUNARY = 10
    VREDUCE = 11
    VMASK = 12


class Mem(IntEnum):
    """On-chip memory selector."""

    SPAD = 0  # bf16 matrix operands
    ACC = 1  # fp32 accumulator / vector memory


class DType(IntEnum):
    """Element type of a tensor in DRAM, as an instruction names it."""

    FP32 = 0
    BF16 = 1

    @property
    def size(self) -> int:
        """Bytes per element in DRAM."""
        return 2 if self is DType.BF16 else 4


# Bytes of one GATHER index (int32) in DRAM.
INDEX_BYTES = 4


class VBinFunct(IntEnum):
    ADD = 0
    SUB = 1
    MUL = 2
    MAX = 3
    MIN = 4
    # v5. Comparisons: dst = 1.0 if (a op b) else +0.0 (IEEE: with a NaN operand every
    # comparison is false except NE; -0 == +0).
    EQ = 5
    NE = 6
    LT = 7
    LE = 8
    GT = 9
    GE = 10
    # v5. Selects with the immediate as a third operand (b a region, or imm itself):
    KEEP = 11  # dst = a if b != 0 else imm
    FILL = 12  # dst = imm if b != 0 else a  (masked_fill)


class BMode(IntEnum):
    """How VBIN's second operand b is indexed for element (r, c)."""

    FULL = 0  # b[r, c] at b + r*b_stride + c
    ROW = 1  # b[c]    at b + c           (one row broadcast over all rows)
    COL = 2  # b[r]    at b + r*b_stride  (one value per row, lane 0 of its line)
    IMM = 3  # the fp32 immediate


class VUnaryFunct(IntEnum):
    COPY = 0
    EXP = 1
    RECIP = 2
    RSQRT = 3
    TANH = 4
    ERF = 5


class VReduceFunct(IntEnum):
    SUM = 0
    MAX = 1


class Unit(IntEnum):
    """The unit that executes an instruction. CTRL instructions retire in the control
    unit itself (no execution unit is busy)."""

    CTRL = 0
    DMA = 1
    MXU = 2
    VPU = 3


class Role(Enum):
    """What a field's value means (its encoding is Field.kind)."""

    DRAM_ADDR = "DRAM byte address"
    SRAM_ADDR = "SRAM element address"
    STRIDE = "stride in elements"
    COUNT = "element or row count"
    SELECT = "selector (memory, dtype, function, mode)"
    FLAG = "flag"
    IMMEDIATE = "fp32 immediate"
    # A signed row offset relative to the region (VMASK's diagonal): like an address, it
    # advances with the tile a loop iteration covers.
    OFFSET = "row offset"
    ID = "identifier"


# Fields that hold a region's address (contract.regions gives each region its field).
ADDRESS_ROLES = frozenset({Role.DRAM_ADDR, Role.SRAM_ADDR})
# Roles whose value moves with the data an instruction covers: addresses and offsets.
# Tiled loops repeat instructions in which only these change.
POSITION_ROLES = ADDRESS_ROLES | {Role.OFFSET}


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    role: Role
    kind: str = "uint"  # encoding: uint | sint | enum | f32 | bool
    enum: type[IntEnum] | None = None
    doc: str = ""


@dataclass(frozen=True)
class InsnFormat:
    opcode: Opcode
    fields: tuple[Field, ...]
    doc: str
    unit: Unit
    # Assembly mnemonics that fix one field (funct) to a value: mnemonic -> (field, value).
    mnemonics: dict[str, tuple[str, int]] = field(default_factory=dict)

    def layout(self) -> list[tuple[Field, int]]:
        """(field, lsb) for every field, opcode excluded."""
        out, lsb = [], OPCODE_BITS
        for f in self.fields:
            out.append((f, lsb))
            lsb += f.bits
        assert lsb <= INSN_BITS, f"{self.opcode.name} needs {lsb} bits"
        return out

    def by_role(self, *roles: Role) -> list[Field]:
        return [f for f in self.fields if f.role in roles]


def _sram(prefix: str, doc: str) -> tuple[Field, Field]:
    return (
        Field(prefix, 20, Role.SRAM_ADDR, doc=f"{doc}: SRAM element address (line aligned)"),
        Field(
            f"{prefix}_stride",
            20,
            Role.STRIDE,
            doc=f"{doc}: SRAM row stride in elements (line aligned)",
        ),
    )


def _dram() -> tuple[Field, Field, Field]:
    return (
        Field("dram", 32, Role.DRAM_ADDR, doc="DRAM byte address of element [0, 0]"),
        Field("dram_rs", 24, Role.STRIDE, doc="DRAM row stride (elements)"),
        Field("dram_cs", 16, Role.STRIDE, doc="DRAM column stride (elements)"),
    )


ROWS = Field("rows", 16, Role.COUNT, doc="rows of the region")
COLS = Field("cols", 16, Role.COUNT, doc="columns of the region")
SPACE = Field("space", 1, Role.SELECT, "enum", Mem, "on-chip memory")
DTYPE = Field("dtype", 1, Role.SELECT, "enum", DType, "DRAM element type")
IMM = Field("imm", 32, Role.IMMEDIATE, "f32", doc="fp32 immediate")

FORMATS: dict[Opcode, InsnFormat] = {
    f.opcode: f
    for f in [
        InsnFormat(Opcode.NOP, (), "no operation", Unit.CTRL),
        InsnFormat(Opcode.HALT, (), "stop; the host sees status=done", Unit.CTRL),
        InsnFormat(Opcode.FENCE, (), "wait until every unit is idle", Unit.CTRL),
        InsnFormat(
            Opcode.CHECKPOINT,
            (Field("layer", 16, Role.ID, doc="layer-table id"),),
            "fence, then signal that the tensors of layer `layer` are complete in DRAM",
            Unit.CTRL,
        ),
        InsnFormat(
            Opcode.DMA_LD,
            (SPACE, DTYPE, *_sram("sram", "destination"), *_dram(), ROWS, COLS),
            "load a 2-D strided DRAM region into SRAM; fp32->SPAD rounds to bf16 (RNE),"
            " bf16->ACC widens exactly",
            Unit.DMA,
        ),
        InsnFormat(
            Opcode.DMA_ST,
            (SPACE, DTYPE, *_sram("sram", "source"), *_dram(), ROWS, COLS),
            "store an SRAM region to a 2-D strided DRAM region; ACC->bf16 rounds (RNE)",
            Unit.DMA,
        ),
        InsnFormat(
            Opcode.GATHER,
            (
                SPACE,
                DTYPE,
                *_sram("sram", "destination"),
                Field("table_addr", 32, Role.DRAM_ADDR, doc="DRAM byte address of table row 0"),
                Field("table_rs", 24, Role.STRIDE, doc="table row stride (elements)"),
                Field(
                    "table_rows",
                    24,
                    Role.COUNT,
                    doc="rows in the table (indices are bounds-checked)",
                ),
                Field("idx", 32, Role.DRAM_ADDR, doc="DRAM byte address of `rows` int32 indices"),
                ROWS,
                COLS,
            ),
            "sram row r <- table row idx[r] (embedding lookup); an index outside"
            " [0, table_rows) is an error",
            Unit.DMA,
        ),
        InsnFormat(
            Opcode.MATMUL,
            (
                *_sram("dst", "C in ACC"),
                *_sram("a", "A[m, k] in SPAD"),
                *_sram("b", "B[k, n] in SPAD (B^T[n, k] if trans_b)"),
                Field("bias", 20, Role.SRAM_ADDR, doc="fp32 bias row in ACC (line aligned)"),
                Field("m", 16, Role.COUNT, doc="rows of A and C"),
                Field("n", 16, Role.COUNT, doc="columns of B and C"),
                Field("k", 16, Role.COUNT, doc="reduction length"),
                Field("acc", 1, Role.FLAG, "bool", doc="start from C's current value"),
                Field("trans_b", 1, Role.FLAG, "bool", doc="B is stored transposed"),
                Field("use_bias", 1, Role.FLAG, "bool", doc="start from bias[n]"),
            ),
            "C[m, n] = init + sum_k A[m, k] * B[k, n], bf16 x bf16 -> fp32, accumulated in k order",
            Unit.MXU,
        ),
        InsnFormat(
            Opcode.MOVE,
            (
                Field("dst_space", 1, Role.SELECT, "enum", Mem, "destination memory"),
                Field("src_space", 1, Role.SELECT, "enum", Mem, "source memory"),
                *_sram("dst", "destination"),
                *_sram("src", "source"),
                ROWS,
                COLS,
            ),
            "copy between on-chip memories; ACC->SPAD rounds to bf16 (RNE)",
            Unit.VPU,
        ),
        InsnFormat(
            Opcode.VBIN,
            (
                Field("funct", 4, Role.SELECT, "enum", VBinFunct, "operation"),
                Field("bmode", 2, Role.SELECT, "enum", BMode, "indexing of b"),
                *_sram("dst", "result in ACC"),
                *_sram("a", "a in ACC"),
                *_sram("b", "b in ACC"),
                ROWS,
                COLS,
                IMM,
            ),
            "dst[r, c] = a[r, c] op b (fp32); comparisons give 1.0 / +0.0; keep and fill"
            " select between a and imm by b != 0",
            Unit.VPU,
            {f"v{f.name.lower()}": ("funct", f.value) for f in VBinFunct},
        ),
        InsnFormat(
            Opcode.VUNARY,
            (
                Field("funct", 4, Role.SELECT, "enum", VUnaryFunct, "function"),
                *_sram("dst", "result in ACC"),
                *_sram("a", "a in ACC"),
                ROWS,
                COLS,
            ),
            "dst[r, c] = f(a[r, c]) (fp32, special functions per the numerics contract)",
            Unit.VPU,
            {f"v{f.name.lower()}": ("funct", f.value) for f in VUnaryFunct},
        ),
        InsnFormat(
            Opcode.VREDUCE,
            (
                Field("funct", 2, Role.SELECT, "enum", VReduceFunct, "reduction"),
                *_sram("dst", "dst[r] in ACC (lane 0 of line)"),
                *_sram("a", "a in ACC"),
                ROWS,
                COLS,
            ),
            "dst[r] = reduce_c a[r, c] (lane partials, then a fixed pairwise tree)",
            Unit.VPU,
            {"vrsum": ("funct", VReduceFunct.SUM), "vrmax": ("funct", VReduceFunct.MAX)},
        ),
        InsnFormat(
            Opcode.VMASK,
            (
                *_sram("dst", "result in ACC"),
                *_sram("a", "a in ACC"),
                ROWS,
                COLS,
                Field("offset", 20, Role.OFFSET, "sint", doc="row r sees columns c <= r + offset"),
                IMM,
            ),
            "causal mask: dst[r, c] = imm if c > r + offset else a[r, c]",
            Unit.VPU,
        ),
    ]
}

# Assembly mnemonic -> (opcode, fixed fields)
MNEMONICS: dict[str, tuple[Opcode, dict[str, int]]] = {}
for _fmt in FORMATS.values():
    if _fmt.mnemonics:
        for _mn, (_fname, _val) in _fmt.mnemonics.items():
            MNEMONICS[_mn] = (_fmt.opcode, {_fname: int(_val)})
    else:
        MNEMONICS[_fmt.opcode.name.lower()] = (_fmt.opcode, {})


class Fault(IntEnum):
    """Why the core stopped with an error: the code in the STATUS/FAULT register, also
    carried by the ISA model's ExecError. When one instruction has several faults the
    first in the order the ISA model checks them is reported."""

    NONE = 0
    ILLEGAL_INSN = 1  # unknown opcode, illegal enum value or reserved bits set
    FETCH_RANGE = 2  # pc outside [0, code_end) or not a multiple of INSN_BYTES
    SRAM_ALIGN = 3  # SRAM address or stride not line aligned
    SRAM_LAYOUT = 4  # more columns than the row stride (rows would overlap)
    SRAM_RANGE = 5  # SRAM region runs past the end of the memory
    ALIAS = 6  # destination partially overlaps a source
    DRAM_ALIGN = 7  # DRAM address not aligned to the element size
    DRAM_RANGE = 8  # DRAM region outside [0, dram_limit)
    GATHER_INDEX = 9  # a gather index outside [0, table_rows)
    BAD_OPERANDS = 10  # acc with use_bias, a zero store stride, an fp32 store from SPAD
    BUS_ERROR = 11  # DRAM answered SLVERR/DECERR


FAULT_BITS = 8


class IllegalInstruction(ValueError):
    """An instruction word that does not decode or violates a field constraint."""


@dataclass(frozen=True)
class Insn:
    """One decoded instruction: opcode plus its fields (enum and bool fields as ints)."""

    opcode: Opcode
    args: dict[str, int | float]

    def __getattr__(self, name: str):
        try:
            return self.args[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def fmt(self) -> InsnFormat:
        return FORMATS[self.opcode]

    @property
    def unit(self) -> str:
        """The executing unit's name: ctrl | dma | mxu | vpu."""
        return FORMATS[self.opcode].unit.name.lower()

    @property
    def mnemonic(self) -> str:
        for mn, (op, fixed) in MNEMONICS.items():
            if op == self.opcode and all(self.args.get(k) == v for k, v in fixed.items()):
                return mn
        raise IllegalInstruction(f"no mnemonic for {self.opcode.name} {self.args}")


def make(opcode: Opcode | str, **args: int | float) -> Insn:
    """Build an instruction from a mnemonic, an opcode or its name; omitted fields are 0."""
    fixed: dict[str, int] = {}
    if isinstance(opcode, str):
        if opcode in MNEMONICS:
            opcode, fixed = MNEMONICS[opcode]
        elif opcode.upper() in Opcode.__members__:  # opcode name, funct given explicitly
            opcode = Opcode[opcode.upper()]
        else:
            raise IllegalInstruction(f"unknown mnemonic {opcode!r}")
    fmt = FORMATS[opcode]
    names = {f.name for f in fmt.fields}
    unknown = set(args) - names
    if unknown:
        raise IllegalInstruction(f"{opcode.name} has no field(s) {sorted(unknown)}")
    full: dict[str, int | float] = {}
    for f in fmt.fields:
        v = args.get(f.name, fixed.get(f.name, 0))
        full[f.name] = to_f32(v) if f.kind == "f32" else int(v)
    insn = Insn(opcode, full)
    encode(insn)  # range-check every field now rather than at emit time
    return insn


def to_f32(x: float) -> float:
    """x rounded to the nearest fp32 value (NaN payloads kept)."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b))[0]


def encode(insn: Insn) -> bytes:
    word = int(insn.opcode)
    for f, lsb in insn.fmt.layout():
        v = insn.args[f.name]
        if f.kind == "f32":
            raw = f32_bits(float(v))
        elif f.kind == "sint":
            lo, hi = -(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1
            if not lo <= v <= hi:
                raise IllegalInstruction(f"{insn.opcode.name}.{f.name}={v} outside [{lo}, {hi}]")
            raw = int(v) & ((1 << f.bits) - 1)
        else:
            if not 0 <= v < (1 << f.bits):
                raise IllegalInstruction(
                    f"{insn.opcode.name}.{f.name}={v} does not fit in {f.bits} bits"
                )
            if f.enum is not None and int(v) not in {e.value for e in f.enum}:
                raise IllegalInstruction(f"{insn.opcode.name}.{f.name}={v} is not a {f.enum}")
            raw = int(v)
        word |= raw << lsb
    return word.to_bytes(INSN_BYTES, "little")


def decode(data: bytes, pc: int | None = None) -> Insn:
    where = f" at pc {pc:#x}" if pc is not None else ""
    if len(data) != INSN_BYTES:
        raise IllegalInstruction(f"instruction word must be {INSN_BYTES} bytes{where}")
    word = int.from_bytes(data, "little")
    op = word & ((1 << OPCODE_BITS) - 1)
    if op not in Opcode._value2member_map_:
        raise IllegalInstruction(f"illegal opcode {op:#04x}{where}")
    fmt = FORMATS[Opcode(op)]
    args: dict[str, int | float] = {}
    used = OPCODE_BITS
    for f, lsb in fmt.layout():
        raw = (word >> lsb) & ((1 << f.bits) - 1)
        used = lsb + f.bits
        if f.kind == "f32":
            args[f.name] = bits_f32(raw)
        elif f.kind == "sint":
            args[f.name] = raw - (1 << f.bits) if raw >> (f.bits - 1) else raw
        else:
            if f.enum is not None and raw not in {e.value for e in f.enum}:
                raise IllegalInstruction(f"{fmt.opcode.name}.{f.name}={raw} is illegal{where}")
            args[f.name] = raw
    if word >> used:
        raise IllegalInstruction(f"{fmt.opcode.name}: reserved bits set{where}")
    return Insn(Opcode(op), args)


def encode_program(insns: list[Insn]) -> bytes:
    return b"".join(encode(i) for i in insns)


def decode_program(code: bytes) -> list[Insn]:
    if len(code) % INSN_BYTES:
        raise IllegalInstruction(f"code size {len(code)} is not a multiple of {INSN_BYTES}")
    return [decode(code[i : i + INSN_BYTES], pc=i) for i in range(0, len(code), INSN_BYTES)]
