"""Every ISA v5 instruction on the RTL, checked bit for bit against the ISA model.

Each test assembles a program, places data in DRAM, runs it on both the RTL (one
simulator process for the module) and the ISA model, and compares the whole DRAM image.
Data include special values (NaN, inf, subnormals, signed zeros). Faulting programs must
end with the same fault code as the ISA model, never a hang.
"""

from __future__ import annotations

import numpy as np
import pytest
from isa_programs import empty_region_faults, empty_regions, expected_empty_regions

from contract import numerics as nx
from contract.asm import assemble
from contract.hw import DEFAULT_HW
from contract.isa import Fault, encode_program
from contract.regions import Dram, resolve
from sim.ref import ExecError, RefMachine

pytestmark = pytest.mark.rtl

DATA = 0x4000  # code below, data from here
DRAM_BYTES = 0x20000
SPECIALS = np.concatenate(
    [
        np.array(
            [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3.4e38, -3.4e38, 1.0, -1.0, 88.7],
            dtype=np.float32,
        ),
        # NaNs that are not the canonical one: signalling, with a payload, negative.
        np.array([0x7F800001, 0xFFC12345, 0x7FBFFFFF], dtype=np.uint32).view(np.float32),
    ]
)


@pytest.fixture(scope="module")
def rtl():
    from sim.rtl.backend import VerilatorBackend

    backend = VerilatorBackend(DEFAULT_HW)
    yield backend
    backend.close()


def _image(source: str, data: dict[int, np.ndarray]) -> tuple[np.ndarray, bytes]:
    code = encode_program(assemble(source + "\nhalt"))
    assert len(code) <= DATA
    dram = np.zeros(DRAM_BYTES, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    for addr, arr in data.items():
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
        dram[addr : addr + raw.size] = raw
    return dram, code


def run_both(rtl, source: str, data: dict[int, np.ndarray]) -> np.ndarray:
    """Run on the RTL and the ISA model; assert identical DRAM; return the RTL image."""
    dram, code = _image(source, data)
    ref = dram.copy()
    RefMachine(DEFAULT_HW, ref).run(code, 0)
    rtl.run_segment(dram, code, 0, lambda layer: None)
    diff = np.nonzero(dram != ref)[0]
    assert diff.size == 0, f"{diff.size} bytes differ, first at {int(diff[0]):#x}"
    assert not rtl.stats["isa_mismatches"]
    return dram


def expect_fault(rtl, source: str, data: dict[int, np.ndarray], fault: Fault) -> None:
    from sim.rtl.backend import RtlError

    dram, code = _image(source, data)
    with pytest.raises(ExecError) as ref_err:
        RefMachine(DEFAULT_HW, dram.copy()).run(code, 0)
    assert ref_err.value.fault == fault
    with pytest.raises(RtlError) as err:
        rtl.run_segment(dram, code, 0, lambda layer: None)
    assert err.value.fault == fault, str(err.value)
    assert "the ISA model reports the same fault" in str(err.value)


def rand(rng, *shape, specials=True) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32) * 4
    if specials:
        flat = x.reshape(-1)
        idx = rng.choice(flat.size, size=min(flat.size // 4, SPECIALS.size), replace=False)
        flat[idx] = SPECIALS[: idx.size]
    return x


# ------------------------------------------------------------------ control
def test_control_and_checkpoints(rtl):
    seen = []
    dram, code = _image("nop\nfence\ncheckpoint layer=7\nnop\ncheckpoint layer=9", {})
    rtl.layers = {
        7: {
            "output": {"dtype": "float32", "addr": DATA, "offset": 0, "shape": [4], "strides": [1]}
        },
        9: {
            "output": {"dtype": "float32", "addr": DATA, "offset": 0, "shape": [4], "strides": [1]}
        },
    }
    retired_before = rtl.stats["retired"]
    try:
        rtl.run_segment(dram, code, 0, seen.append)
    finally:
        rtl.layers = {}
    assert seen == [7, 9]
    assert rtl.stats["retired"] - retired_before == 6  # five instructions and HALT


# ------------------------------------------------------------------ DMA
@pytest.mark.parametrize("space", ["acc", "spad"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_dma_roundtrip(rtl, space, dtype):
    rng = np.random.default_rng(1)
    x = rand(rng, 5, 37)
    src = x if dtype == "fp32" else (x.view(np.uint32) >> 16).astype(np.uint16)
    st_dtype = "bf16" if space == "spad" else dtype
    run_both(
        rtl,
        f"""dma_ld space={space} dtype={dtype} sram=32 sram_stride=48 dram={DATA} dram_rs=37 dram_cs=1 rows=5 cols=37
        dma_st space={space} dtype={st_dtype} sram=32 sram_stride=48 dram={DATA + 0x4000} dram_rs=40 dram_cs=1 rows=5 cols=37""",
        {DATA: src},
    )


def test_dma_strided_transpose_and_bursts(rtl):
    rng = np.random.default_rng(2)
    x = rand(rng, 24, 40)
    # Transposing load (column stride 40), long rows crossing a 4 KiB page (load and
    # bf16 store), strided store, rows ending on partial lines.
    source = f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={DATA} dram_rs=1 dram_cs=40 rows=40 cols=24
        dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={DATA + 0x5000} dram_rs=1 dram_cs=41 rows=40 cols=24
        dma_ld space=spad dtype=fp32 sram=0 sram_stride=960 dram={DATA + 0x804} dram_rs=960 dram_cs=1 rows=1 cols=960
        dma_st space=spad dtype=bf16 sram=0 sram_stride=960 dram={0x1CC06} dram_rs=960 dram_cs=1 rows=1 cols=960
        dma_ld space=acc dtype=bf16 sram=4096 sram_stride=16 dram={DATA + 2} dram_rs=3 dram_cs=5 rows=9 cols=3
        dma_st space=acc dtype=fp32 sram=4096 sram_stride=16 dram={DATA + 0x9000} dram_rs=3 dram_cs=1 rows=9 cols=3"""
    crossing = [
        r
        for i in assemble(source)
        for r in resolve(i, DEFAULT_HW, DRAM_BYTES).regions()
        if isinstance(r, Dram) and r.addr // 4096 != (r.end - 1) // 4096 and r.rows == 1
    ]
    assert len(crossing) == 2, "a load and a bf16 store whose one row crosses a page"
    run_both(rtl, source, {DATA: x})


def test_gather(rtl):
    rng = np.random.default_rng(3)
    table = rand(rng, 30, 20)
    idx = np.array([3, 0, 29, 3, 7], dtype=np.int32)
    table_bf16 = (table.view(np.uint32) >> 16).astype(np.uint16)
    run_both(
        rtl,
        f"""gather space=acc dtype=fp32 sram=0 sram_stride=32 table_addr={DATA} table_rs=20 table_rows=30 idx={DATA + 0x3000} rows=5 cols=20
        gather space=spad dtype=fp32 sram=0 sram_stride=32 table_addr={DATA} table_rs=20 table_rows=30 idx={DATA + 0x3000} rows=5 cols=17
        dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={DATA + 0x4000} dram_rs=20 dram_cs=1 rows=5 cols=20
        dma_st space=spad dtype=bf16 sram=0 sram_stride=32 dram={DATA + 0x5000} dram_rs=17 dram_cs=1 rows=5 cols=17
        gather space=acc dtype=bf16 sram=512 sram_stride=32 table_addr={DATA + 0x6000} table_rs=20 table_rows=30 idx={DATA + 0x3000} rows=5 cols=20
        gather space=spad dtype=bf16 sram=512 sram_stride=32 table_addr={DATA + 0x6000} table_rs=20 table_rows=30 idx={DATA + 0x3000} rows=5 cols=19
        dma_st space=acc dtype=fp32 sram=512 sram_stride=32 dram={DATA + 0x7000} dram_rs=20 dram_cs=1 rows=5 cols=20
        dma_st space=spad dtype=bf16 sram=512 sram_stride=32 dram={DATA + 0x8000} dram_rs=19 dram_cs=1 rows=5 cols=19""",
        {DATA: table, DATA + 0x3000: idx, DATA + 0x6000: table_bf16},
    )


# ------------------------------------------------------------------ matrix unit
MATMUL_SHAPES = [
    (1, 1, 1),
    (3, 5, 7),
    (16, 16, 16),
    (8, 40, 33),
    (17, 16, 48),
    (33, 20, 5),
    (5, 3, 0),
]


@pytest.mark.parametrize("m,n,k", MATMUL_SHAPES)
@pytest.mark.parametrize("mode", ["plain", "trans_b", "acc", "bias"])
def test_matmul_shapes(rtl, m, n, k, mode):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    kp, np_ = max(16, -(-k // 16) * 16), max(16, -(-n // 16) * 16)
    a = rand(rng, m, max(k, 1), specials=m * k > 64)
    b = rand(rng, max(k, 1), n, specials=False)
    c0 = rand(rng, m, n, specials=False)
    bias = rand(rng, 1, n, specials=False)
    trans = mode == "trans_b"
    b_src = b.T.copy() if trans else b
    b_rows, b_cols = (n, k) if trans else (k, n)
    b_stride = kp if trans else np_
    flags = {"plain": "", "trans_b": "trans_b=1", "acc": "acc=1", "bias": "use_bias=1"}[mode]
    run_both(
        rtl,
        f"""dma_ld space=spad dtype=fp32 sram=0 sram_stride={kp} dram={DATA} dram_rs={max(k, 1)} dram_cs=1 rows={m} cols={k}
        dma_ld space=spad dtype=fp32 sram=16384 sram_stride={b_stride} dram={DATA + 0x3000} dram_rs={b_cols if k else 1} dram_cs=1 rows={b_rows} cols={b_cols}
        dma_ld space=acc dtype=fp32 sram=0 sram_stride={np_} dram={DATA + 0x6000} dram_rs={n} dram_cs=1 rows={m} cols={n}
        dma_ld space=acc dtype=fp32 sram=8192 sram_stride={np_} dram={DATA + 0x8000} dram_rs={n} dram_cs=1 rows=1 cols={n}
        matmul dst=0 dst_stride={np_} a=0 a_stride={kp} b=16384 b_stride={b_stride} bias=8192 m={m} n={n} k={k} {flags}
        dma_st space=acc dtype=fp32 sram=0 sram_stride={np_} dram={DATA + 0xA000} dram_rs={n} dram_cs=1 rows={m} cols={n}""",
        {DATA: a, DATA + 0x3000: b_src, DATA + 0x6000: c0, DATA + 0x8000: bias},
    )


def test_big_tiles_and_regions(rtl):
    """Shapes the random programs' SRAM zones cannot hold: a 128 x 128 product (64 C
    tiles, k = 20 not a multiple of the array) and vector operations over 128 rows x 130
    columns (partial last line, read back from the product and the zeros after it),
    stored back whole."""
    rng = np.random.default_rng(128)
    m = n = 128
    k = 20
    a, b = rand(rng, m, k, specials=True), rand(rng, k, n, specials=False)
    run_both(
        rtl,
        f"""dma_ld space=spad dtype=fp32 sram=0 sram_stride=32 dram={DATA} dram_rs={k} dram_cs=1 rows={m} cols={k}
        dma_ld space=spad dtype=fp32 sram=16384 sram_stride={n} dram={DATA + 0x3000} dram_rs={n} dram_cs=1 rows={k} cols={n}
        matmul dst=0 dst_stride={n} a=0 a_stride=32 b=16384 b_stride={n} bias=0 m={m} n={n} k={k}
        dma_st space=acc dtype=fp32 sram=0 sram_stride={n} dram={DATA + 0x6000} dram_rs={n} dram_cs=1 rows={m} cols={n}
        dma_ld space=acc dtype=fp32 sram=16384 sram_stride=144 dram={DATA + 0x6000} dram_rs=130 dram_cs=1 rows=128 cols=130
        vadd dst=16384 dst_stride=144 a=16384 a_stride=144 b=0 b_stride={n} rows=128 cols=128
        vexp dst=16384 dst_stride=144 a=16384 a_stride=144 rows=128 cols=130
        vrsum dst=40960 dst_stride=16 a=16384 a_stride=144 rows=128 cols=130
        dma_st space=acc dtype=fp32 sram=16384 sram_stride=144 dram={DATA + 0x6000} dram_rs=130 dram_cs=1 rows=128 cols=130
        dma_st space=acc dtype=fp32 sram=40960 sram_stride=16 dram={DATA + 0x17000} dram_rs=1 dram_cs=1 rows=128 cols=1""",
        {DATA: a, DATA + 0x3000: b},
    )


# ------------------------------------------------------------------ vector unit
LOAD_AB = f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA} dram_rs=40 dram_cs=1 rows=6 cols=40
dma_ld space=acc dtype=fp32 sram=512 sram_stride=48 dram={DATA + 0x1000} dram_rs=40 dram_cs=1 rows=6 cols=40"""
STORE_OUT = f"dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x2000} dram_rs=40 dram_cs=1 rows=6 cols=40"


@pytest.mark.parametrize("op", ["vadd", "vsub", "vmul", "vmax", "vmin"])
def test_vbin(rtl, op):
    rng = np.random.default_rng(4)
    a, b = rand(rng, 6, 40), rand(rng, 6, 40)
    run_both(
        rtl,
        f"""{LOAD_AB}
        {op} dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
        {STORE_OUT}
        {op} bmode=row dst=1024 dst_stride=48 a=0 a_stride=48 b=512 rows=6 cols=40
        dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x3000} dram_rs=40 dram_cs=1 rows=6 cols=40
        {op} bmode=col dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
        dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x4000} dram_rs=40 dram_cs=1 rows=6 cols=40
        {op} bmode=imm dst=0 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=-1.5
        dma_st space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA + 0x5000} dram_rs=40 dram_cs=1 rows=6 cols=40""",
        {DATA: a, DATA + 0x1000: b},
    )


# Every ordered pair of special values (both zeros, subnormals, the extremes, +-inf, NaNs
# with payloads and signs, neighbours 1 and nextafter(1)), for the comparisons and selects.
PAIR_VALUES = np.concatenate(
    [
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-45, 3.4e38], np.float32),
        np.array([-3.4e38, 1.0, 1.0000001, -1.0, 88.7], np.float32),
        np.array([0x7F800001, 0xFFC12345], dtype=np.uint32).view(np.float32),
    ]
)  # 15 values: 225 pairs in a 6 x 40 tile


def special_pairs() -> tuple[np.ndarray, np.ndarray]:
    n = PAIR_VALUES.size
    a = np.full(6 * 40, 0.5, np.float32)
    b = np.full(6 * 40, 0.5, np.float32)
    a[: n * n] = np.repeat(PAIR_VALUES, n)
    b[: n * n] = np.tile(PAIR_VALUES, n)
    return a.reshape(6, 40), b.reshape(6, 40)


@pytest.mark.parametrize("op", ["veq", "vne", "vlt", "vle", "vgt", "vge", "vkeep", "vfill"])
def test_vbin_compare_select(rtl, op):
    """Comparisons and selects (ISA v5) over every pair of special values in each bmode,
    the selects with fill values -0.0 (where's exact add) and -inf (masked_fill)."""
    a, b = special_pairs()
    run_both(
        rtl,
        f"""{LOAD_AB}
        {op} dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40 imm=-0.0
        {STORE_OUT}
        {op} bmode=row dst=1024 dst_stride=48 a=0 a_stride=48 b=512 rows=6 cols=40 imm=-inf
        dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x3000} dram_rs=40 dram_cs=1 rows=6 cols=40
        {op} bmode=col dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40 imm=3.0
        dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x4000} dram_rs=40 dram_cs=1 rows=6 cols=40
        {op} bmode=imm dst=512 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=-0.0
        {op} bmode=imm dst=0 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=1e-45
        dma_st space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA + 0x5000} dram_rs=40 dram_cs=1 rows=6 cols=40
        dma_st space=acc dtype=fp32 sram=512 sram_stride=48 dram={DATA + 0x6000} dram_rs=40 dram_cs=1 rows=6 cols=40""",
        {DATA: a, DATA + 0x1000: b},
    )


@pytest.mark.parametrize("op", ["vcopy", "vexp", "vrecip", "vrsqrt", "vtanh", "verf"])
def test_vunary(rtl, op):
    rng = np.random.default_rng(5)
    a = rand(rng, 6, 40) * np.float32(8)
    a[0, :20] = np.array([0.5, 1e-38, 2e-38, 1e38, 3e38, 0.625, -0.624, 100, -100, 1e-45] * 2)
    # Every switch point of the special functions and its neighbouring bit patterns.
    points = np.array([nx.EXP_HI, nx.EXP_LO, nx.MIN_NORMAL, nx.BIG, nx.TANH_SMALL], np.float32)
    near = (points.view(np.uint32).astype(np.int64)[:, None] + np.arange(-1, 2)) % 2**32
    a[1, :15] = near.astype(np.uint32).ravel().view(np.float32)
    a[1, 15:30] = -a[1, :15]
    erf_points = np.array([nx.ERF_SMALL, nx.ERF_SAT], np.float32)
    near = (erf_points.view(np.uint32).astype(np.int64)[:, None] + np.arange(-1, 2)) % 2**32
    a[2, :6] = near.astype(np.uint32).ravel().view(np.float32)
    a[2, 6:12] = -a[2, :6]
    run_both(
        rtl,
        f"""{LOAD_AB}
        {op} dst=1024 dst_stride=48 a=0 a_stride=48 rows=6 cols=40
        {op} dst=0 dst_stride=48 a=0 a_stride=48 rows=3 cols=33
        {STORE_OUT}
        dma_st space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA + 0x3000} dram_rs=40 dram_cs=1 rows=6 cols=40""",
        {DATA: a, DATA + 0x1000: a},
    )


@pytest.mark.parametrize("op", ["vrsum", "vrmax"])
def test_vreduce(rtl, op):
    rng = np.random.default_rng(6)
    a = rand(rng, 6, 40)
    a[1] = -np.inf
    # Rows whose result depends on the order: large values in different lanes cancel
    # only in the tree, small ones in one lane are absorbed first (a sequential sum
    # differs); a row of -0.0 (the sum's identity keeps the sign); a NaN with a payload.
    a[2] = 0.0
    a[2, [0, 1, 16, 17, 32]] = [1e8, -1e8, 1.0, 1.0, 3.0]
    a[3] = -0.0
    a[4, 5] = np.array(0xFFC12345, np.uint32).view(np.float32)
    run_both(
        rtl,
        f"""{LOAD_AB}
        {op} dst=1024 dst_stride=16 a=0 a_stride=48 rows=6 cols=40
        {op} dst=2048 dst_stride=16 a=512 a_stride=48 rows=6 cols=7
        dma_st space=acc dtype=fp32 sram=1024 sram_stride=16 dram={DATA + 0x2000} dram_rs=1 dram_cs=1 rows=6 cols=1
        dma_st space=acc dtype=fp32 sram=2048 sram_stride=16 dram={DATA + 0x2100} dram_rs=1 dram_cs=1 rows=6 cols=1""",
        {DATA: a, DATA + 0x1000: rand(rng, 6, 40, specials=False)},
    )


def test_vmask_and_move(rtl):
    rng = np.random.default_rng(7)
    a = rand(rng, 6, 40)
    run_both(
        rtl,
        f"""{LOAD_AB}
        vmask dst=1024 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 offset=2 imm=-inf
        {STORE_OUT}
        vmask dst=0 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 offset=-3 imm=bits:0x7fc00001
        move dst_space=spad src_space=acc dst=0 dst_stride=48 src=0 src_stride=48 rows=6 cols=40
        move dst_space=spad src_space=spad dst=4096 dst_stride=64 src=0 src_stride=48 rows=6 cols=40
        move dst_space=acc src_space=spad dst=2048 dst_stride=48 src=4096 src_stride=64 rows=6 cols=40
        move dst_space=acc src_space=acc dst=4096 dst_stride=48 src=512 src_stride=48 rows=6 cols=40
        dma_st space=acc dtype=fp32 sram=2048 sram_stride=48 dram={DATA + 0x3000} dram_rs=40 dram_cs=1 rows=6 cols=40
        dma_st space=acc dtype=bf16 sram=4096 sram_stride=48 dram={DATA + 0x4000} dram_rs=40 dram_cs=1 rows=6 cols=40""",
        {DATA: a, DATA + 0x1000: rand(rng, 6, 40)},
    )


def test_empty_regions(rtl):
    source, data = empty_regions(DATA, DATA + 0x1000)
    dram = run_both(rtl, source, data)
    out = dram[DATA + 0x1000 : DATA + 0x1000 + 6 * 16 * 4].view(np.uint32)
    assert np.array_equal(out, expected_empty_regions(data[DATA]).view(np.uint32).reshape(-1))


@pytest.mark.parametrize(("source", "fault"), empty_region_faults())
def test_empty_regions_are_still_checked_for_alignment(rtl, source, fault):
    expect_fault(rtl, source, {}, Fault[fault])


# ------------------------------------------------------------------ faults
def test_fault_illegal_instruction(rtl):
    dram, code = _image("nop", {})
    word = bytearray(32)
    word[0] = 0xEE  # no such opcode
    code = code[:32] + bytes(word) + code[32:]
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    from sim.rtl.backend import RtlError

    with pytest.raises(RtlError) as err:
        rtl.run_segment(dram, code, 0, lambda layer: None)
    assert err.value.fault == Fault.ILLEGAL_INSN
    assert "instruction 1 (pc 0x20)" in str(err.value)


def test_fault_dma_out_of_range(rtl):
    expect_fault(
        rtl,
        f"dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram={DRAM_BYTES - 32} dram_rs=16 dram_cs=1 rows=2 cols=16",
        {},
        Fault.DRAM_RANGE,
    )


def test_fault_gather_index(rtl):
    expect_fault(
        rtl,
        f"gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={DATA} table_rs=16 table_rows=4 idx={DATA + 0x1000} rows=2 cols=16",
        {DATA + 0x1000: np.array([1, 4], dtype=np.int32)},
        Fault.GATHER_INDEX,
    )


@pytest.mark.parametrize(
    "source,fault",
    [
        ("vexp dst=8 dst_stride=16 a=0 a_stride=16 rows=1 cols=4", Fault.SRAM_ALIGN),
        ("vexp dst=0 dst_stride=16 a=32 a_stride=16 rows=2 cols=20", Fault.SRAM_LAYOUT),
        ("vexp dst=0 dst_stride=16 a=65520 a_stride=16 rows=2 cols=16", Fault.SRAM_RANGE),
        ("vexp dst=16 dst_stride=16 a=0 a_stride=16 rows=2 cols=16", Fault.ALIAS),
        (
            "matmul dst=0 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 m=1 n=1 k=1 acc=1 use_bias=1",
            Fault.BAD_OPERANDS,
        ),
        (
            "dma_st space=spad dtype=fp32 sram=0 sram_stride=16 dram=0x5000 dram_rs=16 dram_cs=1 rows=1 cols=4",
            Fault.BAD_OPERANDS,
        ),
        (
            "dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram=0x5002 dram_rs=16 dram_cs=1 rows=1 cols=4",
            Fault.DRAM_ALIGN,
        ),
    ],
)
def test_static_faults(rtl, source, fault):
    expect_fault(rtl, source, {}, fault)


def test_fault_runs_off_the_code(rtl):
    from sim.rtl.backend import RtlError

    dram, code = _image("nop", {})
    code = code[:32]  # no HALT
    with pytest.raises(RtlError) as err:
        rtl.run_segment(dram, code, 0, lambda layer: None)
    assert err.value.fault == Fault.FETCH_RANGE


def test_fetch_buffer_blocks(rtl):
    """Instructions arrive in blocks of hw.fetch_block_insns per DRAM request: straight
    code costs about one DRAM round trip per block, not per instruction. Segments start
    anywhere: on a block boundary, with a block across a 4 KiB page (two bursts), and
    one instruction before the end (the code cuts the last block short)."""
    nops = 300  # 301 instructions: 9632 bytes of code, across two 4 KiB pages
    dram, code = _image("\n".join(["nop"] * nops), {})
    block, lat = DEFAULT_HW.fetch_block_insns, DEFAULT_HW.dram_latency_cycles
    for pc in (0, 4096 - 64, 4096 - 32 * 5, len(code) - 64):
        before = dict(rtl.stats)
        rtl.run_segment(dram, code, pc, lambda layer: None)
        retired = rtl.stats["retired"] - before["retired"]
        assert retired == (len(code) - pc) // 32
        stall = rtl.stats["fetch_stall"] - before.get("fetch_stall", 0)
        requests = -(-retired // block)
        # Each block: the round trip plus its beats; each instruction: a cycle to take
        # it from the buffer. One instruction per round trip would be ~retired * lat.
        assert requests * lat <= stall <= retired + requests * (lat + 2 * block + 8), stall
    assert not rtl.stats["isa_mismatches"]


def test_unaligned_fp32_store_of_wide_lines():
    """A 32-lane core: an fp32 SRAM line is 128 bytes. A store to an address off the bus
    word keeps part of a beat in the DMA's byte stream while it reads the next line, so
    the stream must hold a line beside it (it held one line, and the store waited
    forever: found by the performance model on gpt2's lm_head)."""
    import dataclasses

    from sim.rtl.backend import VerilatorBackend

    hw = dataclasses.replace(DEFAULT_HW, name="loom-32x32", array_dim=32)
    rng = np.random.default_rng(7)
    x = rand(rng, 3, 96)  # [3, 96] fp32
    src = f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=96 dram={DATA} dram_rs=96 dram_cs=1 rows=3 cols=96
dma_st space=acc dtype=fp32 sram=0 sram_stride=96 dram={DATA + 0x2004} dram_rs=97 dram_cs=1 rows=3 cols=96"""
    dram, code = _image(src, {DATA: x})
    ref = dram.copy()
    RefMachine(hw, ref).run(code, 0)
    backend = VerilatorBackend(hw)
    try:
        backend.run_segment(dram, code, 0, lambda layer: None)
        assert not backend.stats["isa_mismatches"]
    finally:
        backend.close()
    assert np.array_equal(dram, ref)


# ------------------------------------------------------------------ host port, watchdog
# A DRAM image small enough for the front door (the tests above use the back door).
SMALL_DRAM = 0x4000
SMALL_DATA = 0x2000
SMALL_COPY = f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=48 dram={SMALL_DATA} dram_rs=40 dram_cs=1 rows=12 cols=40
dma_st space=acc dtype=fp32 sram=0 sram_stride=48 dram={SMALL_DATA + 0x800} dram_rs=40 dram_cs=1 rows=12 cols=40"""


def _small_image(source: str) -> tuple[np.ndarray, bytes]:
    code = encode_program(assemble(source + "\nhalt"))
    dram = np.zeros(SMALL_DRAM, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    x = np.random.default_rng(9).standard_normal((12, 40)).astype(np.float32)
    dram[SMALL_DATA : SMALL_DATA + x.nbytes] = x.view(np.uint8).reshape(-1)
    return dram, code


@pytest.mark.parametrize(("register", "op"), [("CODE_END", "write"), ("MACS_LO", "read")])
def test_host_port_error_response_names_the_register(register, op):
    """Every register access's response is checked: the simulation top answers SLVERR to
    one register (+loom_tb_csr_slverr) and the run stops with that register named."""
    from contract.csr import CSR_BY_NAME
    from sim.rtl.backend import RtlError, VerilatorBackend

    offset = CSR_BY_NAME[register].offset
    # Every register is read after reset (the register map check): a write's response
    # is made the only error with the write-only switch.
    which = "loom_tb_csr_slverr_wr" if op == "write" else "loom_tb_csr_slverr"
    backend = VerilatorBackend(DEFAULT_HW, plusargs=[f"+{which}={offset:x}"])
    dram, code = _small_image("nop")
    try:
        with pytest.raises(RtlError) as err:
            backend.run_segment(dram, code, 0, lambda layer: None)
    finally:
        backend.close()
    assert f"the {op} of {register} (offset {offset:#04x}) was answered SLVERR" in str(err.value)


def test_watchdog_reports_a_hang_and_the_next_segment_runs(monkeypatch):
    """A run that outlasts its cycle budget is a hang (here: a budget far too small);
    the simulator is then replaced, so the next segment runs normally."""
    import sim.rtl.backend as rtl_backend

    backend = rtl_backend.VerilatorBackend(DEFAULT_HW)
    try:
        dram, code = _small_image(SMALL_COPY)
        with monkeypatch.context() as m:
            m.setattr(rtl_backend, "cycle_budget", lambda *args: (60, 3))
            with pytest.raises(rtl_backend.RtlError) as err:
                backend.run_segment(dram, code, 0, lambda layer: None)
        text = str(err.value)
        assert text.startswith("simulation hang: no HALT within the watchdog budget"), text
        assert "stuck at instruction" in text
        dram, code = _small_image(SMALL_COPY)
        ref = dram.copy()
        RefMachine(DEFAULT_HW, ref).run(code, 0)
        backend.run_segment(dram, code, 0, lambda layer: None)
        assert np.array_equal(dram, ref)
    finally:
        backend.close()
