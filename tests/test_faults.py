"""One test per fault class the ISA defines, on the ISA model, the torch backend and the
RTL: each program does work first, faults at instruction 3 (pc 0x60), and has work
after the fault that must not happen. Checked: the fault code, the faulting
instruction's index and pc (the RTL's FAULT and FAULT_PC), and the DRAM image the fault
leaves (what was written before it, nothing after), against the ISA model and against
what the program says by hand."""

from __future__ import annotations

import numpy as np
import pytest

from contract.asm import assemble
from contract.hw import DEFAULT_HW
from contract.isa import FORMATS, INSN_BYTES, Fault, Opcode, VBinFunct, encode, encode_program
from sim.ref import ExecError, RefMachine
from sim.torch_backend import TorchBackend

DRAM_BYTES = 0x20000
DATA, OUT = 0x8000, 0xC000
AT = 3  # the faulting instruction
BEFORE = f"""
dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram={DATA} dram_rs=16 dram_cs=1 rows=2 cols=16
vadd dst=32 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=2 cols=16
dma_st space=acc dtype=fp32 sram=32 sram_stride=16 dram={OUT} dram_rs=16 dram_cs=1 rows=2 cols=16
"""
AFTER = f"""
dma_st space=acc dtype=fp32 sram=0 sram_stride=16 dram={OUT + 0x100} dram_rs=16 dram_cs=1 rows=2 cols=16
halt
"""


def _word(source: str, flip_bits: int = 0) -> bytes:
    """One instruction's encoding with extra bits set (illegal enums, reserved bits)."""
    (insn,) = assemble(source)
    return (int.from_bytes(encode(insn), "little") | flip_bits).to_bytes(INSN_BYTES, "little")


# An encodable funct that names no operation (the field must have room for one).
_NO_SUCH_VBIN_FUNCT = max(VBinFunct) + 1
assert 1 << FORMATS[Opcode.VBIN].fields[0].bits > _NO_SUCH_VBIN_FUNCT

# name -> (faulting instruction: assembly, or raw word bytes; fault)
CASES = {
    "illegal opcode": (bytes([0xEE]) + bytes(INSN_BYTES - 1), Fault.ILLEGAL_INSN),
    # VBIN funct (from bit 8) one past the last operation: no such operation.
    "illegal enum": (_word("vadd rows=1 cols=16", _NO_SUCH_VBIN_FUNCT << 8), Fault.ILLEGAL_INSN),
    "reserved bits": (_word("nop", 1 << 255), Fault.ILLEGAL_INSN),
    "sram align": ("vadd dst=8 dst_stride=16 a=512 a_stride=16 b=512 b_stride=16 rows=1 cols=16", Fault.SRAM_ALIGN),
    "sram layout": ("vexp dst=64 dst_stride=16 a=0 a_stride=16 rows=2 cols=32", Fault.SRAM_LAYOUT),
    "sram range": ("vexp dst=65520 dst_stride=16 a=0 a_stride=16 rows=2 cols=16", Fault.SRAM_RANGE),
    "alias": ("vadd dst=16 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=2 cols=16", Fault.ALIAS),
    "reduction onto its source": ("vrsum dst=16 dst_stride=16 a=0 a_stride=16 rows=2 cols=16", Fault.ALIAS),
    "matmul C over its bias": (
        "matmul dst=1024 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 bias=1040 m=2 n=16 k=4 use_bias=1",
        Fault.ALIAS,
    ),
    "dram align": (
        f"dma_ld space=acc dtype=fp32 sram=64 sram_stride=16 dram={DATA + 2} dram_rs=16 dram_cs=1 rows=1 cols=16",
        Fault.DRAM_ALIGN,
    ),
    "dram range": (
        f"dma_ld space=acc dtype=fp32 sram=64 sram_stride=16 dram={DRAM_BYTES - 32} dram_rs=16 dram_cs=1 rows=2 cols=16",
        Fault.DRAM_RANGE,
    ),
    "gather index": (
        f"gather space=acc dtype=fp32 sram=64 sram_stride=16 table_addr={DATA} table_rs=16 table_rows=2 idx={DATA + 0x100} rows=2 cols=16",
        Fault.GATHER_INDEX,
    ),
    # Checked after another operand faulted or was checked: the first fault stands.
    "matmul A out of range, with a bias": (
        "matmul dst=1024 dst_stride=16 a=262128 a_stride=16 b=0 b_stride=16 bias=2048 m=2 n=16 k=16 use_bias=1",
        Fault.SRAM_RANGE,
    ),
    "destination partly over the second operand": (
        "vadd dst=16 dst_stride=16 a=512 a_stride=16 b=0 b_stride=16 rows=2 cols=16",
        Fault.ALIAS,
    ),
    "column operand out of range": (
        "vadd bmode=col dst=64 dst_stride=16 a=0 a_stride=16 b=65520 b_stride=16 rows=2 cols=16",
        Fault.SRAM_RANGE,
    ),
    "acc with use_bias": ("matmul dst=1024 dst_stride=16 m=1 n=1 k=1 acc=1 use_bias=1", Fault.BAD_OPERANDS),
    "store with a zero stride": (
        f"dma_st space=acc dtype=fp32 sram=0 sram_stride=16 dram={OUT + 0x200} dram_rs=0 dram_cs=1 rows=2 cols=16",
        Fault.BAD_OPERANDS,
    ),
    "fp32 store from SPAD": (
        f"dma_st space=spad dtype=fp32 sram=0 sram_stride=16 dram={OUT + 0x200} dram_rs=16 dram_cs=1 rows=1 cols=16",
        Fault.BAD_OPERANDS,
    ),
}  # fmt: skip


def image(case: str) -> tuple[np.ndarray, bytes]:
    faulting, _ = CASES[case]
    before = encode_program(assemble(BEFORE))
    word = faulting if isinstance(faulting, bytes) else encode_program(assemble(faulting))
    code = before + word + encode_program(assemble(AFTER))
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    values = np.arange(1, 33, dtype=np.float32) / 8
    dram[DATA : DATA + values.nbytes] = values.view(np.uint8)
    idx = np.array([1, 5], dtype=np.int32)  # row 1 of the gather's index array is out of range
    dram[DATA + 0x100 : DATA + 0x108] = idx.view(np.uint8)
    return dram, code


def expected_image(dram: np.ndarray) -> np.ndarray:
    """By hand: the vadd's result (2 x the loaded values) at OUT, nothing at OUT + 0x100."""
    out = dram.copy()
    doubled = (np.arange(1, 33, dtype=np.float32) / 8) * 2
    out[OUT : OUT + doubled.nbytes] = doubled.view(np.uint8)
    return out


def ref_fault(case: str) -> tuple[ExecError, np.ndarray]:
    dram, code = image(case)
    with pytest.raises(ExecError) as err:
        RefMachine(DEFAULT_HW, dram).run(code, 0)
    return err.value, dram


@pytest.mark.parametrize("case", list(CASES))
def test_isa_model(case):
    dram, _ = image(case)
    err, after = ref_fault(case)
    assert err.fault == CASES[case][1], str(err)
    assert (err.index, err.pc) == (AT, AT * INSN_BYTES), str(err)
    assert np.array_equal(after, expected_image(dram))


@pytest.mark.parametrize("case", list(CASES))
def test_torch_backend(case):
    want, ref_after = ref_fault(case)
    dram, code = image(case)
    with pytest.raises(ExecError) as err:
        TorchBackend(DEFAULT_HW).run_segment(dram, code, 0, lambda layer: None)
    assert (err.value.fault, err.value.index, err.value.pc) == (want.fault, want.index, want.pc)
    assert np.array_equal(dram, ref_after), "the state the fault leaves"


def test_fetch_range_after_the_last_instruction():
    """A program without HALT runs off the code: the fault is at the pc past its end."""
    code = encode_program(assemble(BEFORE))
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    dram[DATA : DATA + 128] = (np.arange(1, 33, dtype=np.float32) / 8).view(np.uint8)
    ref, torch_image = dram.copy(), dram.copy()
    with pytest.raises(ExecError) as on_ref:
        RefMachine(DEFAULT_HW, ref).run(code, 0)
    with pytest.raises(ExecError) as on_torch:
        TorchBackend(DEFAULT_HW).run_segment(torch_image, code, 0, lambda layer: None)
    for err, after in ((on_ref.value, ref), (on_torch.value, torch_image)):
        assert err.fault == Fault.FETCH_RANGE
        assert (err.index, err.pc) == (AT, len(code))
        assert np.array_equal(after, expected_image(dram))


MISALIGNED_PC = INSN_BYTES + 16  # inside instruction 1 of any program below


def test_misaligned_start_pc():
    """A start pc inside an instruction is FETCH_RANGE at that pc before anything runs
    (docs/isa.md; the RTL always did this, the ISA model ran the misaligned words)."""
    for machine in ("ref", "torch"):
        dram, code = image("illegal opcode")
        before = dram.copy()
        with pytest.raises(ExecError) as err:
            if machine == "ref":
                RefMachine(DEFAULT_HW, dram).run(code, MISALIGNED_PC)
            else:
                TorchBackend(DEFAULT_HW).run_segment(dram, code, MISALIGNED_PC, lambda layer: None)
        assert (err.value.fault, err.value.index, err.value.pc) == (
            Fault.FETCH_RANGE,
            0,
            MISALIGNED_PC,
        ), machine
        assert np.array_equal(dram, before), machine


def test_gather_fault_in_a_late_iteration_of_a_loop():
    """Eight gather + store tiles, as a tiled embedding lookup emits them; the sixth
    gather's index is out of range. The torch backend, which runs the whole segment
    before it learns of the index, names the sixth gather as the ISA model does and
    leaves what the ISA model leaves: the first five tiles stored, nothing after."""
    tiles = []
    for t in range(8):
        tiles.append(
            f"gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={DATA} table_rs=16"
            f" table_rows=2 idx={DATA + 0x200 + 8 * t} rows=2 cols=16\n"
            f"dma_st space=acc dtype=fp32 sram=0 sram_stride=16 dram={OUT + 128 * t} dram_rs=16"
            " dram_cs=1 rows=2 cols=16"
        )
    code = encode_program(assemble("\n".join(tiles) + "\nhalt"))
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    dram[DATA : DATA + 128] = (np.arange(32, dtype=np.float32) + 1).view(np.uint8)
    idx = np.array([[t % 2, 1 - t % 2] for t in range(8)], dtype=np.int32)
    idx[5, 1] = 2
    dram[DATA + 0x200 : DATA + 0x200 + idx.nbytes] = idx.view(np.uint8).reshape(-1)
    ref = dram.copy()
    with pytest.raises(ExecError) as want:
        RefMachine(DEFAULT_HW, ref).run(code, 0)
    assert (want.value.fault, want.value.index) == (Fault.GATHER_INDEX, 10)
    got = dram.copy()
    with pytest.raises(ExecError) as err:
        TorchBackend(DEFAULT_HW).run_segment(got, code, 0, lambda layer: None)
    assert (err.value.fault, err.value.index, err.value.pc) == (Fault.GATHER_INDEX, 10, 10 * 32)
    assert np.array_equal(got, ref)
    assert got[OUT + 4 * 128 : OUT + 5 * 128].any() and not got[OUT + 5 * 128 :].any()


def test_run_time_fault_before_a_static_one():
    """A gather whose index is out of range, then an instruction with a static fault: the
    gather's fault is the one (the core never reaches the later instruction)."""
    source = (
        f"gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={DATA} table_rs=16"
        f" table_rows=2 idx={DATA + 0x100} rows=2 cols=16\n"
        "vadd dst=8 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=1 cols=16\nhalt"
    )
    code = encode_program(assemble(source))
    dram, _ = image("gather index")
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    for machine in ("ref", "torch"):
        with pytest.raises(ExecError) as err:
            if machine == "ref":
                RefMachine(DEFAULT_HW, dram.copy()).run(code, 0)
            else:
                TorchBackend(DEFAULT_HW).run_segment(dram.copy(), code, 0, lambda layer: None)
        assert (err.value.fault, err.value.index) == (Fault.GATHER_INDEX, 0), machine


# ------------------------------------------------------------------ RTL
@pytest.fixture(scope="module")
def rtl():
    from sim.rtl.backend import VerilatorBackend

    backend = VerilatorBackend(DEFAULT_HW)
    yield backend
    backend.close()


@pytest.mark.rtl
@pytest.mark.parametrize("case", list(CASES))
def test_rtl(rtl, case):
    from sim.rtl.backend import RtlError

    want, ref_after = ref_fault(case)
    dram, code = image(case)
    with pytest.raises(RtlError) as err:
        rtl.run_segment(dram, code, 0, lambda layer: None)
    assert err.value.fault == want.fault, str(err.value)
    assert (err.value.index, err.value.pc) == (AT, AT * INSN_BYTES), str(err.value)
    assert "the ISA model reports the same fault" in str(err.value)
    assert np.array_equal(dram, ref_after), "the state the fault leaves"


@pytest.mark.rtl
def test_rtl_bus_error():
    """DRAM_LIMIT past the simulated DRAM: the load reaches the DRAM, which answers
    SLVERR, and the core stops with BUS_ERROR at the load (the ISA model, whose DRAM ends
    at the limit, reports DRAM_RANGE there instead)."""
    dram, code = image("dram range")
    _expect_bus_error(dram, code, dram_limit=2 * DRAM_BYTES)
    assert np.array_equal(dram, expected_image(image("dram range")[0]))


def _expect_bus_error(dram: np.ndarray, code: bytes, dram_limit: int) -> None:
    """Run on a fresh RTL simulator with DRAM_LIMIT past the simulated DRAM: BUS_ERROR at
    instruction AT."""
    from sim.rtl.backend import RtlError, VerilatorBackend

    backend = VerilatorBackend(DEFAULT_HW, dram_limit=dram_limit)
    try:
        with pytest.raises(RtlError) as err:
            backend.run_segment(dram, code, 0, lambda layer: None)
    finally:
        backend.close()
    assert err.value.fault == Fault.BUS_ERROR, str(err.value)
    assert (err.value.index, err.value.pc) == (AT, AT * INSN_BYTES)


@pytest.mark.rtl
def test_rtl_bus_error_under_overlap_stops_at_the_load():
    """A bus error on a long load while a younger, independent vector instruction runs
    under it (docs/rtl.md, "Faults": the one imprecise fault): the core still stops with
    BUS_ERROR at the load's pc and index, and nothing after the load retires."""
    from sim.rtl.backend import RtlError, VerilatorBackend

    source = f"""{BEFORE}
    dma_ld space=spad dtype=fp32 sram=4096 sram_stride=16 dram=0x80000040 dram_rs=16 dram_cs=1 rows=64 cols=16
    vadd dst=64 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=2 cols=16
    {AFTER}"""
    code = encode_program(assemble(source))
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    backend = VerilatorBackend(DEFAULT_HW, dram_limit=0xFFFF_FFE0)
    try:
        with pytest.raises(RtlError) as err:
            backend.run_segment(dram, code, 0, lambda layer: None)
        stats = backend.stats
    finally:
        backend.close()
    assert err.value.fault == Fault.BUS_ERROR, str(err.value)
    assert (err.value.index, err.value.pc) == (AT, AT * INSN_BYTES)
    assert stats["retired"] == AT
    assert stats["overlap"] > 0, "the vadd ran under the load"


@pytest.mark.rtl
@pytest.mark.parametrize("op", ["dma_ld", "dma_st"])
def test_rtl_bus_error_in_the_upper_half_of_the_address_space(op):
    """A load (SLVERR on R) or a store (SLVERR on B) at 0x8000_0040 with DRAM_LIMIT at
    the top of the 32-bit space: the DRAM answers SLVERR there, so every address bit
    reaches the port (a core that dropped bit 31 would use low DRAM and halt)."""
    source = f"""{BEFORE}
    {op} space=acc dtype=fp32 sram=32 sram_stride=16 dram=0x80000040 dram_rs=16 dram_cs=1 rows=1 cols=16
    {AFTER}"""
    code = encode_program(assemble(source))
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    _expect_bus_error(dram, code, dram_limit=0xFFFF_FFE0)


@pytest.mark.rtl
def test_rtl_misaligned_start_pc(rtl):
    from sim.rtl.backend import RtlError

    dram, code = image("illegal opcode")
    before = dram.copy()
    with pytest.raises(RtlError) as err:
        rtl.run_segment(dram, code, MISALIGNED_PC, lambda layer: None)
    assert (err.value.fault, err.value.index, err.value.pc) == (Fault.FETCH_RANGE, 0, MISALIGNED_PC)
    assert "the ISA model reports the same fault" in str(err.value)
    assert np.array_equal(dram, before)
