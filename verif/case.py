"""A fuzz case: a program (encoded words, so illegal encodings survive), its start pc,
and the recipe of its DRAM image; saved and read back as an assembly file.

The DRAM image depends only on the case's seed, never on the program, so a program
shrunk to a few instructions still runs on the data it failed on. Layout (bytes):

    [0, CODE_BYTES)            code
    [INDEX_BASE, DATA_BASE)    GATHER index pools (never stored to: see generate.py)
    [DATA_BASE, DRAM_BYTES)    fp32 words of every floating-point class

File format: assembly (contract.asm) plus directives, one per line:

    .seed RUN CASE     the image's recipe
    .pc ADDR           start pc (default 0)
    .intent NAME       "legal" or the Fault the case was built to raise
    .word 0xHEX        one raw 256-bit instruction word (illegal encodings)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import numerics as nx
from contract.asm import AsmError, format_insn, parse_line
from contract.isa import INSN_BYTES, IllegalInstruction, decode, encode

DRAM_BYTES = 0x40000
CODE_BYTES = 0x2000  # at most 256 instructions
INDEX_BASE = 0x2000
# GATHER index pools: pool p holds POOL_LEN int32 indices uniform in [0, POOL_ROWS[p]).
POOL_ROWS = (1, 2, 3, 7, 16, 33, 64, 300)
POOL_LEN = 64
DATA_BASE = 0x3000
# Layers a CHECKPOINT may name: each compares 64 fp32 words of data bit for bit.
CHECKPOINT_LAYERS = {k: DATA_BASE + 0x1000 * k for k in range(4)}
CHECKPOINT_ELEMS = 64


def pool_addr(pool: int) -> int:
    return INDEX_BASE + pool * POOL_LEN * 4


def _specials() -> np.ndarray:
    """fp32 bit patterns of every class the numerics contract distinguishes."""
    points = np.array(
        [nx.EXP_HI, nx.EXP_LO, nx.MIN_NORMAL, nx.BIG, nx.TANH_SMALL, nx.ERF_SMALL, nx.ERF_SAT],
        np.float32,
    )
    near = (points.view(np.uint32).astype(np.int64)[:, None] + np.arange(-1, 2)).ravel()
    fixed = [
        0x00000000, 0x80000000,  # zeros of both signs
        0x7F800000, 0xFF800000,  # infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFFC12345,  # NaNs: sign, payload, sNaN
        0x00000001, 0x007FFFFF, 0x80000001, 0x807FFFFF,  # subnormals
        0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,  # min normal, max finite
        0x3F800000, 0xBF800000,  # +-1
        0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,  # bf16 ties (even/odd) and neighbours
        0x4CBEBC20, 0xCCBEBC20,  # +-1e8: cancels in a sum, absorbs small terms
        0x7F7F8000,  # rounds to bf16 infinity
    ]  # fmt: skip
    return np.concatenate([np.array(fixed, np.int64), near, -near % 2**32]).astype(np.uint32)


SPECIALS = _specials()


def special_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """n fp32 values, a third of them special patterns, the rest Gaussians at scales from
    subnormal to huge."""
    scale = rng.choice(np.array([1.0, 4.0, 1e-3, 1e3, 2.0**-140, 1e30], np.float32), n)
    out = (rng.standard_normal(n).astype(np.float32) * scale).astype(np.float32)
    pick = rng.random(n) < 1 / 3
    out.view(np.uint32)[pick] = rng.choice(SPECIALS, int(pick.sum()))
    return out


def data_image(seed: tuple[int, int]) -> np.ndarray:
    """The DRAM image of a case, code area left zero."""
    rng = np.random.default_rng([*seed, 0xDA7A])
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    for p, rows in enumerate(POOL_ROWS):
        idx = rng.integers(0, rows, POOL_LEN, dtype=np.int32)
        dram[pool_addr(p) : pool_addr(p) + idx.nbytes] = idx.view(np.uint8)
    n = (DRAM_BYTES - DATA_BASE) // 4
    dram[DATA_BASE:] = special_values(rng, n).view(np.uint8)
    return dram


def checkpoint_layers() -> dict[int, dict]:
    """The layer table the RTL scoreboard compares at each CHECKPOINT."""
    return {
        k: {
            "output": {
                "dtype": "float32",
                "addr": addr,
                "offset": 0,
                "shape": [CHECKPOINT_ELEMS],
                "strides": [1],
            }
        }
        for k, addr in CHECKPOINT_LAYERS.items()
    }


@dataclass
class Case:
    seed: tuple[int, int]  # (run seed, case index): the DRAM image's recipe
    words: list[bytes]  # encoded instructions, HALT included when the program has one
    pc: int = 0
    intent: str = "legal"  # "legal", or the name of the Fault it was built to raise
    notes: list[str] = field(default_factory=list)

    @property
    def code(self) -> bytes:
        return b"".join(self.words)

    def image(self) -> np.ndarray:
        code = self.code
        if len(code) > CODE_BYTES:
            raise ValueError(f"{len(code)} bytes of code do not fit in {CODE_BYTES}")
        dram = data_image(self.seed)
        dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
        return dram

    def with_words(self, words: list[bytes]) -> Case:
        return Case(self.seed, list(words), self.pc, self.intent, list(self.notes))

    # ------------------------------------------------------------ assembly file
    def to_text(self) -> str:
        lines = [f"# {n}" for n in self.notes]
        lines += [
            f".seed {self.seed[0]} {self.seed[1]}",
            f".pc {self.pc:#x}",
            f".intent {self.intent}",
        ]
        for at, w in enumerate(self.words):
            try:
                text = format_insn(decode(w))
            except IllegalInstruction as e:
                text = f".word {int.from_bytes(w, 'little'):#066x}  # {e}"
            lines.append(f"{text:<100}  # [{at}] pc {at * INSN_BYTES:#x}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, name: str = "<case>") -> Case:
        seed, pc, intent, words = None, 0, "legal", []
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{name}:{lineno}"
            body = line.split("#", 1)[0].strip()
            if not body.startswith("."):
                insn = parse_line(line, where)
                if insn is not None:
                    words.append(encode(insn))
                continue
            key, *args = body.split()
            try:
                if key == ".seed":
                    seed = (int(args[0], 0), int(args[1], 0))
                elif key == ".pc":
                    pc = int(args[0], 0)
                elif key == ".intent":
                    intent = args[0]
                elif key == ".word":
                    words.append(int(args[0], 0).to_bytes(INSN_BYTES, "little"))
                else:
                    raise AsmError(f"{where}: unknown directive {key}")
            except (IndexError, ValueError, OverflowError):
                raise AsmError(f"{where}: cannot parse {body!r}") from None
        if seed is None:
            raise AsmError(f"{name}: no .seed directive (the DRAM image's recipe)")
        return cls(seed, words, pc, intent)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_text())
        return path

    @classmethod
    def load(cls, path: Path) -> Case:
        return cls.from_text(Path(path).read_text(), str(path))
