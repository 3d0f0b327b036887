"""Text assembler for the Loom ISA.

Syntax, one instruction per line:

    mnemonic field=value field=value ...     # comment

Values: integers (decimal or 0x hex), enum names (acc, spad, fp32, bf16, row, ...),
floats for fp32 fields (1.5, -inf, nan) or their exact bits as `bits:0x7fc00000`.
Omitted fields are 0. `python -m contract.asm prog.s -o prog.bin` writes raw code.
"""

from __future__ import annotations

import argparse
import math
import re
import struct
import sys
from pathlib import Path

from contract.isa import FORMATS, MNEMONICS, IllegalInstruction, Insn, Role, encode_program, make

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^\s,]+)")


class AsmError(ValueError):
    pass


def _parse_value(fmt_field, text: str, where: str) -> int | float:
    if fmt_field.enum is not None:
        try:
            return int(fmt_field.enum[text.upper()])
        except KeyError:
            pass
    if fmt_field.kind == "f32":
        if text.startswith("bits:"):
            return struct.unpack("<f", struct.pack("<I", int(text[5:], 0)))[0]
        try:
            return float(text)
        except ValueError:
            raise AsmError(f"{where}: bad fp32 value {text!r}") from None
    try:
        return int(text, 0)
    except ValueError:
        choices = f" (one of {[e.name.lower() for e in fmt_field.enum]})" if fmt_field.enum else ""
        raise AsmError(f"{where}: bad value {text!r} for {fmt_field.name}{choices}") from None


def parse_line(line: str, where: str = "<asm>") -> Insn | None:
    text = re.split(r"[#;]", line, maxsplit=1)[0].strip()
    if not text:
        return None
    mnemonic, _, rest = text.partition(" ")
    mnemonic = mnemonic.lower()
    if mnemonic not in MNEMONICS:
        raise AsmError(f"{where}: unknown mnemonic {mnemonic!r}")
    opcode, _fixed = MNEMONICS[mnemonic]
    fields = {f.name: f for f in FORMATS[opcode].fields}
    args: dict[str, int | float] = {}
    consumed = _TOKEN.sub("", rest).replace(",", "").strip()
    if consumed:
        raise AsmError(f"{where}: cannot parse {consumed!r}")
    for name, value in _TOKEN.findall(rest):
        if name not in fields:
            raise AsmError(f"{where}: {mnemonic} has no field {name!r} (has {list(fields)})")
        if name in args:
            raise AsmError(f"{where}: field {name!r} given twice")
        args[name] = _parse_value(fields[name], value, where)
    try:
        return make(mnemonic, **args)
    except IllegalInstruction as e:
        raise AsmError(f"{where}: {e}") from None


def assemble(source: str, name: str = "<asm>") -> list[Insn]:
    insns = []
    for lineno, line in enumerate(source.splitlines(), 1):
        insn = parse_line(line, f"{name}:{lineno}")
        if insn is not None:
            insns.append(insn)
    return insns


def format_value(fmt_field, value: int | float) -> str:
    if fmt_field.kind == "f32":
        if math.isnan(value):
            return f"bits:{struct.unpack('<I', struct.pack('<f', value))[0]:#010x}"
        return repr(float(value))
    if fmt_field.enum is not None:
        return fmt_field.enum(value).name.lower()
    if fmt_field.role == Role.DRAM_ADDR:
        return f"{value:#x}"
    return str(value)


def format_insn(insn: Insn) -> str:
    """Canonical text: the mnemonic, then every field not fixed by it."""
    mnemonic = insn.mnemonic
    fixed = MNEMONICS[mnemonic][1]
    parts = [
        f"{f.name}={format_value(f, insn.args[f.name])}"
        for f in insn.fmt.fields
        if f.name not in fixed
    ]
    return " ".join([mnemonic, *parts])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contract.asm", description=__doc__)
    ap.add_argument("source", help="assembly file ('-' for stdin)")
    ap.add_argument("-o", "--output", required=True, help="raw code output")
    args = ap.parse_args(argv)
    src = sys.stdin.read() if args.source == "-" else Path(args.source).read_text()
    try:
        code = encode_program(assemble(src, args.source))
    except AsmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Path(args.output).write_bytes(code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
