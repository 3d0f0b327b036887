"""Disassembler: `python -m contract.disasm prog.bin` (raw code or a program blob)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contract.asm import format_insn
from contract.blob import MAGIC, Program, printable
from contract.isa import INSN_BYTES, IllegalInstruction, decode_program


def disassemble(code: bytes, with_pc: bool = False) -> str:
    lines = []
    for i, insn in enumerate(decode_program(code)):
        text = format_insn(insn)
        lines.append(f"{i * INSN_BYTES:08x}:  {text}" if with_pc else text)
    return "\n".join(lines) + ("\n" if lines else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m contract.disasm", description=__doc__)
    ap.add_argument("binary", help="raw code or a .loom program blob")
    ap.add_argument("--pc", action="store_true", help="prefix each line with its byte pc")
    args = ap.parse_args(argv)
    data = Path(args.binary).read_bytes()
    try:
        if data.startswith(MAGIC):
            program = Program.from_bytes(data)
            code = program.code
            sys.stdout.write(program.describe_segments())
        else:
            code = data
        sys.stdout.write(disassemble(code, with_pc=args.pc))
    except (IllegalInstruction, ValueError) as e:
        print(f"error: {printable(e)}", file=sys.stderr)  # a blob's strings, escaped
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
