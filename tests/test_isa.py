"""ISA definition, assembler and disassembler."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import isa
from contract.asm import AsmError, assemble, format_insn
from contract.disasm import disassemble
from contract.isa import FORMATS, IllegalInstruction, decode, encode, encode_program

SOURCE = """
# every opcode at least once
nop
fence
checkpoint layer=7
dma_ld space=spad dtype=fp32 sram=32 sram_stride=768 dram=0x1000 dram_rs=768 dram_cs=1 rows=8 cols=768
dma_st space=acc dtype=bf16 sram=0 sram_stride=16 dram=0x40 dram_rs=16 dram_cs=1 rows=2 cols=16
gather space=acc dtype=fp32 sram=0 sram_stride=64 table_addr=0x100 table_rs=64 table_rows=10 idx=0x80 rows=4 cols=64
matmul dst=0 dst_stride=16 a=0 a_stride=16 b=256 b_stride=16 bias=512 m=8 n=16 k=16 use_bias=1
move dst_space=spad src_space=acc dst=0 dst_stride=16 src=32 src_stride=16 rows=3 cols=9
vadd bmode=imm dst=0 dst_stride=16 a=0 a_stride=16 rows=8 cols=16 imm=0.125
vmax bmode=col dst=0 dst_stride=16 a=0 a_stride=16 b=256 b_stride=16 rows=8 cols=16
vexp dst=0 dst_stride=16 a=0 a_stride=16 rows=1 cols=5
vrsum dst=64 dst_stride=16 a=0 a_stride=16 rows=4 cols=16
vmask dst=0 dst_stride=16 a=0 a_stride=16 rows=8 cols=8 offset=-3 imm=-inf
vmul bmode=imm rows=1 cols=1 imm=bits:0x7fc00001
halt
"""


def test_round_trip_text_and_binary():
    code = encode_program(assemble(SOURCE))
    text = disassemble(code)
    assert encode_program(assemble(text)) == code
    assert disassemble(encode_program(assemble(text))) == text
    opcodes = {decode(code[i : i + 32]).opcode for i in range(0, len(code), 32)}
    assert opcodes == set(isa.Opcode)


def test_nan_payload_survives_round_trip():
    (insn,) = assemble("vmul bmode=imm rows=1 cols=1 imm=bits:0x7fc00001")
    again = decode(encode(insn))
    assert struct.pack("<f", again.imm) == struct.pack("<I", 0x7FC00001)
    assert "bits:0x7fc00001" in format_insn(again)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_instructions_round_trip(data):
    fmt = data.draw(st.sampled_from(list(FORMATS.values())))
    args = {}
    for f in fmt.fields:
        if f.enum is not None:
            args[f.name] = data.draw(st.sampled_from([e.value for e in f.enum]))
        elif f.kind == "f32":
            args[f.name] = data.draw(st.floats(width=32, allow_nan=False))
        elif f.kind == "sint":
            args[f.name] = data.draw(st.integers(-(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1))
        else:
            args[f.name] = data.draw(st.integers(0, (1 << f.bits) - 1))
    insn = isa.make(fmt.opcode, **args)
    word = encode(insn)
    assert decode(word) == insn
    assert assemble(format_insn(insn)) == [insn]


def test_field_overflow_is_refused():
    with pytest.raises(IllegalInstruction, match="does not fit"):
        isa.make("matmul", m=1 << 16)


def test_assembler_errors_name_the_line():
    with pytest.raises(AsmError, match=r"<asm>:2: unknown mnemonic 'frob'"):
        assemble("nop\nfrob x=1")
    with pytest.raises(AsmError, match="has no field 'bogus'"):
        assemble("vexp bogus=3")
    with pytest.raises(AsmError, match="bad value 'sram' for space"):
        assemble("dma_ld space=sram")


def test_illegal_words_are_refused():
    with pytest.raises(IllegalInstruction, match="illegal opcode 0xff"):
        decode(b"\xff" + bytes(31), pc=0x40)
    word = bytearray(encode(isa.make("halt")))
    word[31] = 1
    with pytest.raises(IllegalInstruction, match="reserved bits"):
        decode(bytes(word))


def test_cli_round_trip(tmp_path):
    from contract import asm, disasm

    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    out = tmp_path / "p.bin"
    assert asm.main([str(src), "-o", str(out)]) == 0
    assert disasm.main([str(out)]) == 0
