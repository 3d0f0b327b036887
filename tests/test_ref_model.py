"""Each instruction of the ISA model against an independent formulation (scalar, one
element at a time: tests/scalar_reference.py; MATMUL as a scalar k loop), and faults
that must name the instruction."""

import numpy as np
import pytest
import scalar_reference as sr
from isa_programs import empty_region_faults, empty_regions, expected_empty_regions

from sim.ref import ExecError

RNG = np.random.default_rng(7)
SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3.4e38, -3.4e38, 88.8, -87.4, 0.625],
    dtype=np.float32,
)


def elementwise(fn, *arrays) -> np.ndarray:
    """fn applied per element as Python floats, back to fp32."""
    flat = [np.asarray(a, np.float32).reshape(-1) for a in arrays]
    out = [fn(*(float(x[i]) for x in flat)) for i in range(flat[0].size)]
    return np.array(out, dtype=np.float32).reshape(np.shape(arrays[0]))


def bf16(x):
    return elementwise(sr.round_bf16, x)


def same_bits(got, want) -> None:
    np.testing.assert_array_equal(
        np.asarray(got, np.float32).view(np.uint32), np.asarray(want, np.float32).view(np.uint32)
    )


def with_specials(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1)
    flat[: SPECIALS.size] = SPECIALS
    return x


def test_dma_roundtrip_with_strides_and_bf16(machine):
    src = RNG.standard_normal((6, 10)).astype(np.float32)
    machine.put_f32(0, src)
    # Load the transpose (col stride 10), store it back contiguous: [10, 6].
    machine.run("""
        dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram=0 dram_rs=1 dram_cs=10 rows=10 cols=6
        dma_st space=acc dtype=fp32 sram=0 sram_stride=16 dram=0x1000 dram_rs=6 dram_cs=1 rows=10 cols=6
        dma_ld space=spad dtype=fp32 sram=0 sram_stride=16 dram=0 dram_rs=10 dram_cs=1 rows=6 cols=10
        dma_st space=spad dtype=bf16 sram=0 sram_stride=16 dram=0x2000 dram_rs=10 dram_cs=1 rows=6 cols=10
    """)
    np.testing.assert_array_equal(machine.get_f32(0x1000, (10, 6)), src.T)
    got = machine.m.dram[0x2000 : 0x2000 + 120].view(np.uint16).reshape(6, 10)
    want = np.array([sr.to_bf16_bits(float(v)) for v in src.reshape(-1)], np.uint16)
    np.testing.assert_array_equal(got, want.reshape(6, 10))


def _matmul_reference(a, b, init):
    """Scalar loop in k order: an independent formulation of the MATMUL contract."""
    m, k = a.shape
    n = b.shape[1]
    out = np.array(init, np.float32).copy()
    for i in range(m):
        for j in range(n):
            acc = float(out[i, j])
            for kk in range(k):
                acc = sr.add(acc, sr.mul(float(a[i, kk]), float(b[kk, j])))
            out[i, j] = acc
    return out


@pytest.mark.parametrize("m,n,k,trans_b", [(3, 5, 7, 0), (16, 16, 16, 1), (8, 20, 33, 0)])
def test_matmul_bit_exact(machine, m, n, k, trans_b):
    a = bf16(RNG.standard_normal((m, k)) * 3)
    b = bf16(RNG.standard_normal((k, n)))
    bias = RNG.standard_normal(n).astype(np.float32)
    machine.put_f32(0, a)
    machine.put_f32(0x4000, b.T if trans_b else b)
    machine.put_f32(0x8000, bias)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    machine.run(f"""
        dma_ld space=spad dtype=fp32 sram=0 sram_stride=48 dram=0 dram_rs={k} dram_cs=1 rows={m} cols={k}
        dma_ld space=spad dtype=fp32 sram=1024 sram_stride=48 dram=0x4000 dram_rs={b_cols} dram_cs=1 rows={b_rows} cols={b_cols}
        dma_ld space=acc dtype=fp32 sram=2048 sram_stride=32 dram=0x8000 dram_rs=0 dram_cs=1 rows=1 cols={n}
        matmul dst=0 dst_stride=32 a=0 a_stride=48 b=1024 b_stride=48 bias=2048 m={m} n={n} k={k} trans_b={trans_b} use_bias=1
        matmul dst=0 dst_stride=32 a=0 a_stride=48 b=1024 b_stride=48 m={m} n={n} k={k} trans_b={trans_b} acc=1
        dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram=0xc000 dram_rs={n} dram_cs=1 rows={m} cols={n}
    """)
    once = _matmul_reference(a, b, np.broadcast_to(bias, (m, n)))
    want = _matmul_reference(a, b, once)
    got = machine.get_f32(0xC000, (m, n))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_k_split_gives_identical_bits(machine):
    a = bf16(RNG.standard_normal((4, 40)))
    b = bf16(RNG.standard_normal((40, 16)))
    machine.put_f32(0, a)
    machine.put_f32(0x4000, b)
    machine.run("""
        dma_ld space=spad dtype=fp32 sram=0 sram_stride=48 dram=0 dram_rs=40 dram_cs=1 rows=4 cols=40
        dma_ld space=spad dtype=fp32 sram=256 sram_stride=16 dram=0x4000 dram_rs=16 dram_cs=1 rows=40 cols=16
        matmul dst=0 dst_stride=16 a=0 a_stride=48 b=256 b_stride=16 m=4 n=16 k=40
        matmul dst=64 dst_stride=16 a=0 a_stride=48 b=256 b_stride=16 m=4 n=16 k=16
        matmul dst=64 dst_stride=16 a=16 a_stride=48 b=512 b_stride=16 m=4 n=16 k=24 acc=1
    """)
    np.testing.assert_array_equal(machine.m.acc[:64], machine.m.acc[64:128])


@pytest.mark.parametrize(
    "mn,mode,op",
    [
        ("vadd", "full", sr.add),
        ("vsub", "row", sr.sub),
        ("vmul", "col", sr.mul),
        ("vmax", "imm", sr.vmax),
        ("vmin", "full", sr.vmin),
        ("vmax", "full", sr.vmax),
        ("vmin", "row", sr.vmin),
        *[(mn, mode, fn) for mn, fn in sr.COMPARE.items() for mode in ("full", "imm")],
        ("vlt", "row", sr.COMPARE["vlt"]),
        ("vge", "col", sr.COMPARE["vge"]),
        *[
            (mn, mode, lambda a, b, sel=sel: sel(a, b, 0.5))  # imm=0.5 is the third operand
            for mn, sel in (("vkeep", sr.keep), ("vfill", sr.fill))
            for mode in ("full", "row", "col", "imm")
        ],
    ],
)
def test_vbin(machine, mn, mode, op):
    a = with_specials(RNG.standard_normal((5, 20)).astype(np.float32))
    b = RNG.standard_normal((5, 20)).astype(np.float32)
    b.reshape(-1)[-SPECIALS.size :] = SPECIALS
    machine.m.acc[: 5 * 32].reshape(5, 32)[:, :20] = a
    machine.m.acc[256 : 256 + 5 * 32].reshape(5, 32)[:, :20] = b
    machine.run(
        f"{mn} bmode={mode} dst=512 dst_stride=32 a=0 a_stride=32 b=256 b_stride=32"
        f" rows=5 cols=20 imm=0.5"
    )
    bb = {"full": b, "row": b[0:1, :], "col": b[:, 0:1], "imm": np.float32(0.5)}[mode]
    want = elementwise(op, a, np.broadcast_to(bb, a.shape))
    got = machine.m.acc[512 : 512 + 5 * 32].reshape(5, 32)[:, :20]
    same_bits(got, want)


@pytest.mark.parametrize(
    "mn,fn",
    [
        ("vexp", sr.exp),
        ("vrecip", sr.recip),
        ("vrsqrt", sr.rsqrt),
        ("vtanh", sr.tanh),
        ("verf", sr.erf),
        ("vcopy", sr.canon),
    ],
)
def test_vunary_in_place(machine, mn, fn):
    a = with_specials((RNG.standard_normal((3, 16)) * 4).astype(np.float32))
    machine.m.acc[:48] = a.reshape(-1)
    machine.run(f"{mn} dst=0 dst_stride=16 a=0 a_stride=16 rows=3 cols=16")
    same_bits(machine.m.acc[:48], elementwise(fn, a).reshape(-1))


def test_vreduce_and_vmask_and_move(machine):
    a = RNG.standard_normal((4, 40)).astype(np.float32)
    machine.m.acc[: 4 * 48].reshape(4, 48)[:, :40] = a
    machine.run("""
        vrsum dst=256 dst_stride=16 a=0 a_stride=48 rows=4 cols=40
        vrmax dst=512 dst_stride=16 a=0 a_stride=48 rows=4 cols=40
        vmask dst=1024 dst_stride=48 a=0 a_stride=48 rows=4 cols=40 offset=2 imm=-inf
        move dst_space=spad src_space=acc dst=0 dst_stride=48 src=0 src_stride=48 rows=4 cols=40
    """)
    same_bits(machine.m.acc[256:320:16], [sr.reduce_row(list(map(float, r)), 16, "sum") for r in a])
    same_bits(machine.m.acc[512:576:16], [sr.reduce_row(list(map(float, r)), 16, "max") for r in a])
    masked = machine.m.acc[1024 : 1024 + 4 * 48].reshape(4, 48)[:, :40]
    r, c = np.indices((4, 40))
    np.testing.assert_array_equal(masked, np.where(c > r + 2, -np.inf, a))
    np.testing.assert_array_equal(machine.m.spad[: 4 * 48].reshape(4, 48)[:, :40], bf16(a))


def test_gather(machine):
    table = RNG.standard_normal((10, 24)).astype(np.float32)
    machine.put_f32(0x100, table)
    machine.m.dram[0x80:0x90] = np.array([3, 0, 9, 3], np.int32).view(np.uint8)
    machine.run(
        "gather space=acc dtype=fp32 sram=0 sram_stride=32 table_addr=0x100 table_rs=24"
        " table_rows=10 idx=0x80 rows=4 cols=24"
    )
    np.testing.assert_array_equal(machine.m.acc[:128].reshape(4, 32)[:, :24], table[[3, 0, 9, 3]])


@pytest.mark.parametrize(
    "source,match",
    [
        (
            "gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr=0x100 table_rs=16 table_rows=2"
            " idx=0x80 rows=1 cols=16",
            "gather index 7",
        ),
        (
            "dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram=0xfffff0 dram_rs=16 dram_cs=1"
            " rows=2 cols=16",
            "out of range",
        ),
        (
            "dma_ld space=acc dtype=fp32 sram=3 sram_stride=16 dram=0 dram_rs=16 dram_cs=1 rows=1"
            " cols=16",
            "not aligned",
        ),
        ("vexp dst=65520 dst_stride=16 a=0 a_stride=16 rows=2 cols=16", "overflows"),
        (
            "vadd dst=16 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 rows=2 cols=16",
            "partially overlaps",
        ),
        ("matmul m=1 n=1 k=1 acc=1 use_bias=1", "exclusive"),
    ],
)
def test_faults_name_the_instruction(machine, source, match):
    machine.m.dram[0x80:0x84] = np.array([7], np.int32).view(np.uint8)
    with pytest.raises(ExecError, match=match) as info:
        machine.run("nop\n" + source)
    assert info.value.index == 1 and info.value.pc == 32
    assert "instruction 1 (pc 0x20)" in str(info.value)


def test_illegal_opcode_and_missing_halt(machine):
    with pytest.raises(ExecError, match="illegal opcode"):
        machine.m.run(b"\x00" * 32 + b"\xee" + bytes(31))
    with pytest.raises(ExecError, match="without HALT"):
        machine.m.run(b"\x00" * 64)


def test_retire_trace(machine):
    trace = []
    machine.run("nop\ncheckpoint layer=3", trace=trace)
    assert [(t.index, t.pc, t.opcode) for t in trace] == [
        (0, 0, "NOP"),
        (1, 32, "CHECKPOINT"),
        (2, 64, "HALT"),
    ]
    assert trace[1].args == {"layer": 3}


def test_empty_regions_touch_nothing(machine):
    source, data = empty_regions(0x4000, 0x8000)
    for addr, values in data.items():
        machine.put_f32(addr, values)
    machine.run(source)
    got = machine.get_f32(0x8000, (6, 16))
    want = expected_empty_regions(data[0x4000])
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize(("source", "fault"), empty_region_faults())
def test_empty_regions_are_still_checked_for_alignment(machine, source, fault):
    with pytest.raises(ExecError) as info:
        machine.run(source)
    assert info.value.fault.name == fault


def test_vreduce_sums_in_lane_order(machine):
    """Data for which the order matters: big values in different lanes cancel only in
    the tree, small ones in the same lane are absorbed first. Column order (numpy's
    sequential float32 sum) gives another answer; the ISA model gives the lane order's."""
    row = np.zeros(40, np.float32)
    row[[0, 1, 16, 17, 32]] = [1e8, -1e8, 1.0, 1.0, 3.0]
    machine.m.acc[:48] = np.pad(row, (0, 8))
    machine.run("vrsum dst=256 dst_stride=16 a=0 a_stride=48 rows=1 cols=40")
    want = sr.reduce_row(list(map(float, row)), 16, "sum")
    sequential = np.float32(0)
    for v in row:
        sequential = np.float32(sequential + v)
    assert want != float(sequential)
    same_bits(machine.m.acc[256:257], [want])
    # The sum's identity is -0.0: a row of -0.0 sums to -0.0, not +0.0.
    machine.m.acc[:48] = -0.0
    machine.run("vrsum dst=256 dst_stride=16 a=0 a_stride=48 rows=1 cols=40")
    assert machine.m.acc.view(np.uint32)[256] == 0x80000000
