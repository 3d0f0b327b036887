"""The torch backend: the same programs on PyTorch (CPU here; CUDA in tests marked gpu).

Element-wise work must be bit-identical with the ISA model; MATMUL (the device's fp32
matrix multiply, another summation order) may differ from it only as much as the order
of an fp32 sum explains (golden.metrics.reorder_bound, per element), and with
exact_matmul=True (the matrix unit's k order) whole models are bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from isa_programs import empty_region_faults, empty_regions

import compiler
import sim
from contract import numerics as nx
from contract.asm import assemble
from contract.hw import DEFAULT_HW
from contract.isa import Fault, encode_program
from golden.metrics import beyond_reorder_bound
from sim.cli.models import build
from sim.ref import ExecError, RefMachine
from sim.torch_backend import TorchBackend
from sim.torch_backend import numerics as tx

CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine"),
        ],
    ),
]


def special_values(rng, n: int = 200_000) -> np.ndarray:
    """Random fp32 bit patterns (every class: NaN payloads, inf, subnormals, zeros)
    plus normal values in the ranges the special functions switch on."""
    raw = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = (rng.standard_normal(n) * 30).astype(np.float32)
    edges = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 88.72283935546875,
         88.7228, -87.33654022216797, -87.4, 0.625, -0.625, 0.62499994, 2.0**126, 3.4e38],
        dtype=np.float32,
    )  # fmt: skip
    return np.concatenate([raw, normal, edges])


def _same_bits(a: np.ndarray, b: torch.Tensor) -> bool:
    return np.array_equal(
        np.asarray(a, np.float32).view(np.uint32), b.cpu().numpy().view(np.uint32)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_numerics_are_bit_identical_with_the_isa_model(device):
    x = special_values(np.random.default_rng(0))
    y = special_values(np.random.default_rng(1))
    tx_, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    with np.errstate(all="ignore"):
        for name in ("exp", "recip", "rsqrt", "tanh", "erf", "round_bf16"):
            assert _same_bits(getattr(nx, name)(x), getattr(tx, name)(tx_)), name
        for name in ("vmax", "vmin"):
            assert _same_bits(getattr(nx, name)(x, y), getattr(tx, name)(tx_, ty)), name
        for op in nx.COMPARISONS:
            assert _same_bits(nx.compare(op, x, y), tx.compare(op, tx_, ty)), op
        # Selects against a mask with zeros of both signs, NaN and subnormal truth values.
        m = np.where(np.arange(x.size) % 3 == 0, np.float32(0.0), y).astype(np.float32)
        m[1::7] = -0.0
        tm, imm = torch.from_numpy(m).to(device), torch.tensor(-np.inf, device=device)
        for name in ("keep", "fill"):
            want = getattr(nx, name)(x, m, np.float32(-np.inf))
            assert _same_bits(want, tx.canon_nan(getattr(tx, name)(tx_, tm, imm))), name
        assert _same_bits(nx.canon_nan(x + y), tx.canon_nan(tx_ + ty))
        assert _same_bits(nx.canon_nan(x * y), tx.canon_nan(tx_ * ty))
    bf16 = nx.f32_to_bf16_bits(x)
    assert np.array_equal(bf16.view(np.int16), tx.f32_to_bf16(tx_).cpu().numpy())
    back = tx.bf16_to_f32(torch.from_numpy(bf16.view(np.int16)).to(device))
    assert _same_bits(nx.bf16_bits_to_f32(bf16), back)
    rows = x[: 37 * 91].reshape(37, 91)
    for op in ("sum", "max"):
        with np.errstate(all="ignore"):
            expected = nx.reduce_rows(rows, DEFAULT_HW.line_elems, op)
        got = tx.reduce_rows(torch.from_numpy(rows).to(device), DEFAULT_HW.line_elems, op)
        assert _same_bits(expected, got), op


# ---------------------------------------------------------------------------- programs
DATA = 0x4000
PROGRAM = f"""
dma_ld space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA} dram_rs=40 dram_cs=1 rows=6 cols=40
dma_ld space=acc dtype=bf16 sram=512 sram_stride=48 dram={DATA + 0x1000} dram_rs=3 dram_cs=5 rows=6 cols=40
vadd dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
vmul bmode=row dst=1536 dst_stride=48 a=0 a_stride=48 b=512 rows=6 cols=40
vmax bmode=col dst=2048 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
vsub bmode=imm dst=2560 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=-1.5
vexp dst=3072 dst_stride=48 a=0 a_stride=48 rows=6 cols=40
vtanh dst=3584 dst_stride=48 a=0 a_stride=48 rows=6 cols=40
vrsqrt dst=4096 dst_stride=48 a=512 a_stride=48 rows=6 cols=40
vrecip dst=4608 dst_stride=48 a=512 a_stride=48 rows=6 cols=40
vrsum dst=5120 dst_stride=16 a=0 a_stride=48 rows=6 cols=40
vrmax dst=5216 dst_stride=16 a=512 a_stride=48 rows=6 cols=40
vmask dst=5632 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 offset=-1 imm=-10000.0
move dst_space=spad src_space=acc dst=0 dst_stride=48 src=1024 src_stride=48 rows=6 cols=40
gather space=spad dtype=bf16 sram=1024 sram_stride=48 table_addr={DATA + 0x1000} table_rs=40 table_rows=9 idx={DATA + 0x3000} rows=4 cols=40
dma_ld space=spad dtype=fp32 sram=2048 sram_stride=16 dram={DATA + 0x2000} dram_rs=16 dram_cs=1 rows=40 cols=16
matmul dst=6144 dst_stride=16 a=0 a_stride=48 b=2048 b_stride=16 bias=5120 m=6 n=16 k=40 use_bias=1
matmul dst=6144 dst_stride=16 a=1024 a_stride=48 b=2048 b_stride=16 m=4 n=16 k=40 acc=1
dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x8000} dram_rs=40 dram_cs=1 rows=102 cols=40
dma_st space=spad dtype=bf16 sram=0 sram_stride=48 dram={DATA + 0x6000} dram_rs=40 dram_cs=1 rows=6 cols=40
dma_st space=acc dtype=fp32 sram=6144 sram_stride=16 dram={DATA + 0x7000} dram_rs=16 dram_cs=1 rows=6 cols=16
dma_st space=acc dtype=bf16 sram=5120 sram_stride=16 dram={DATA + 0x3800} dram_rs=1 dram_cs=1 rows=6 cols=1
halt
"""
MATMUL_OUT = (DATA + 0x7000, DATA + 0x7000 + 6 * 16 * 4)


# PROGRAM's MATMUL result C [6, 16] (ACC 6144, stored at MATMUL_OUT): rows 0-5 start
# from the bias row and add A1 @ B; rows 0-3 then add A2 @ B.
A1, A2, B, BIAS, K = (0, 48), (1024, 48), (2048, 16), 5120, 40


def _matmul_terms(machine: RefMachine) -> tuple[np.ndarray, list[np.ndarray]]:
    """init [6, 16] and the product terms [6, 16, k] of each accumulation step."""
    spad, acc = machine.spad, machine.acc

    def rows(addr_stride, n, cols):
        addr, stride = addr_stride
        return np.stack([spad[addr + r * stride : addr + r * stride + cols] for r in range(n)])

    b = rows(B, K, 16).astype(np.float64)  # [k, 16]
    first = rows(A1, 6, K).astype(np.float64)[:, :, None] * b[None]  # [6, k, 16]
    second = np.zeros_like(first)
    second[:4] = rows(A2, 4, K).astype(np.float64)[:, :, None] * b[None]
    init = np.broadcast_to(acc[BIAS : BIAS + 16].astype(np.float64), (6, 16))
    return init, [first.transpose(0, 2, 1), second.transpose(0, 2, 1)]


def _accumulate(init, steps, rounding) -> np.ndarray:
    """C in k order with every partial sum rounded by `rounding` (the error classes the
    reorder bound must reject)."""
    c = rounding(init.astype(np.float32))
    for terms in steps:
        for k in range(terms.shape[-1]):
            c = rounding(c + rounding(terms[..., k].astype(np.float32)))
    return c.astype(np.float32)


def _image(source: str = PROGRAM) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(3)
    code = encode_program(assemble(source))
    dram = np.zeros(0x10000, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    a = (rng.standard_normal(240) * 4).astype(np.float32)
    a[[3, 17, 50]] = [np.nan, np.inf, -0.0]
    dram[DATA : DATA + a.nbytes] = a.view(np.uint8)
    b = nx.f32_to_bf16_bits(rng.standard_normal(600).astype(np.float32) * 3)
    dram[DATA + 0x1000 : DATA + 0x1000 + b.nbytes] = b.view(np.uint8)
    w = rng.standard_normal(640).astype(np.float32)
    dram[DATA + 0x2000 : DATA + 0x2000 + w.nbytes] = w.view(np.uint8)
    idx = np.array([3, 0, 8, 3], dtype=np.int32)
    dram[DATA + 0x3000 : DATA + 0x3000 + idx.nbytes] = idx.view(np.uint8)
    return dram, code


def _run_torch(dram, code, device, **options) -> np.ndarray:
    backend = TorchBackend(DEFAULT_HW, device=device, **options)
    backend.run_segment(dram, code, 0, lambda layer: None)
    return dram


@pytest.mark.parametrize("device", DEVICES)
def test_every_instruction_matches_the_isa_model(device):
    dram, code = _image()
    ref = dram.copy()
    machine = RefMachine(DEFAULT_HW, ref)
    with np.errstate(all="ignore"):
        machine.run(code, 0)
    exact = _run_torch(dram.copy(), code, device, exact_matmul=True)
    assert np.array_equal(exact, ref), "exact_matmul: the whole image must be identical"
    fast = _run_torch(dram.copy(), code, device)
    lo, hi = MATMUL_OUT
    outside = np.ones(ref.size, dtype=bool)
    outside[lo:hi] = False
    assert np.array_equal(fast[outside], ref[outside]), "only MATMUL results may differ"
    init, steps = _matmul_terms(machine)
    abs_sum = np.abs(init) + sum(np.abs(t).sum(-1) for t in steps)
    n_terms = 1 + sum(t.shape[-1] for t in steps)
    want = ref[lo:hi].view(np.float32).reshape(6, 16)
    assert (
        beyond_reorder_bound(want, fast[lo:hi].view(np.float32).reshape(6, 16), abs_sum, n_terms)
        == 0
    )


SELECT_PROGRAM = f"""
dma_ld space=acc dtype=fp32 sram=0 sram_stride=48 dram={DATA} dram_rs=40 dram_cs=1 rows=6 cols=40
dma_ld space=acc dtype=bf16 sram=512 sram_stride=48 dram={DATA + 0x1000} dram_rs=3 dram_cs=5 rows=6 cols=40
vlt dst=1024 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
vge bmode=row dst=1536 dst_stride=48 a=0 a_stride=48 b=512 rows=6 cols=40
vne bmode=col dst=2048 dst_stride=48 a=0 a_stride=48 b=512 b_stride=48 rows=6 cols=40
veq bmode=imm dst=2560 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=-0.0
vkeep dst=3072 dst_stride=48 a=0 a_stride=48 b=1024 b_stride=48 rows=6 cols=40 imm=-0.0
vfill dst=3584 dst_stride=48 a=512 a_stride=48 b=1024 b_stride=48 rows=6 cols=40 imm=-0.0
vadd dst=4096 dst_stride=48 a=3072 a_stride=48 b=3584 b_stride=48 rows=6 cols=40
vfill bmode=row dst=4608 dst_stride=48 a=0 a_stride=48 b=1536 rows=6 cols=40 imm=-inf
vkeep bmode=imm dst=5120 dst_stride=48 a=0 a_stride=48 rows=6 cols=40 imm=2.5
dma_st space=acc dtype=fp32 sram=1024 sram_stride=48 dram={DATA + 0x8000} dram_rs=40 dram_cs=1 rows=90 cols=40
halt
"""


@pytest.mark.parametrize("device", DEVICES)
def test_comparisons_and_selects_match_the_isa_model(device):
    """ISA v5's comparisons and selects (and where's keep + fill + add) in each bmode."""
    dram, code = _image(SELECT_PROGRAM)
    ref = dram.copy()
    with np.errstate(all="ignore"):
        RefMachine(DEFAULT_HW, ref).run(code, 0)
    assert np.array_equal(_run_torch(dram.copy(), code, device), ref)
    first = ref[DATA + 0x8000 :].view(np.float32)[:240]  # vlt's mask
    assert set(np.unique(first).tolist()) == {0.0, 1.0}


def test_the_matmul_bound_rejects_lower_precision():
    """The reorder bound is ulp-level: results rounded to bf16 and sums accumulated in
    fp16 or bf16 each fall outside it on the program's own MATMUL."""
    dram, code = _image()
    machine = RefMachine(DEFAULT_HW, dram)
    with np.errstate(all="ignore"):
        machine.run(code, 0)
    lo, hi = MATMUL_OUT
    want = dram[lo:hi].view(np.float32).reshape(6, 16)
    init, steps = _matmul_terms(machine)
    abs_sum = np.abs(init) + sum(np.abs(t).sum(-1) for t in steps)
    n_terms = 1 + sum(t.shape[-1] for t in steps)
    fp32 = _accumulate(init, steps, lambda x: np.asarray(x, np.float32))
    assert np.array_equal(fp32.view(np.uint32), want.view(np.uint32)), "k-order fp32 = ISA"
    wrong = {
        "result rounded to bf16": nx.round_bf16(want),
        "fp16 accumulation": _accumulate(init, steps, lambda x: np.asarray(x, np.float16)),
        "bf16 accumulation": _accumulate(
            init, steps, lambda x: nx.round_bf16(np.asarray(x, np.float32))
        ),
    }
    for what, got in wrong.items():
        assert beyond_reorder_bound(want, got, abs_sum, n_terms) > 0, what


@pytest.mark.parametrize("device", DEVICES)
def test_empty_regions_match_the_isa_model(device):
    source, data = empty_regions(DATA, DATA + 0x1000)
    code = encode_program(assemble(source + "\nhalt"))
    dram = np.zeros(0x10000, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    for addr, values in data.items():
        dram[addr : addr + values.nbytes] = values.view(np.uint8)
    ref = dram.copy()
    RefMachine(DEFAULT_HW, ref).run(code, 0)
    assert np.array_equal(_run_torch(dram, code, device), ref)


@pytest.mark.parametrize(("source", "fault"), empty_region_faults())
def test_empty_regions_fault_like_the_isa_model(source, fault):
    code = encode_program(assemble(source + "\nhalt"))
    dram = np.zeros(0x10000, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    with pytest.raises(ExecError) as info:
        _run_torch(dram, code, "cpu")
    assert info.value.fault.name == fault and info.value.index == 0


@pytest.mark.parametrize(
    ("source", "fault"),
    [
        ("vadd dst=8 dst_stride=48 a=512 a_stride=48 b=512 b_stride=48 rows=2 cols=8", Fault.SRAM_ALIGN),
        ("vadd dst=16 dst_stride=48 a=0 a_stride=48 b=0 b_stride=48 rows=2 cols=40", Fault.ALIAS),
        (f"dma_ld space=acc dtype=fp32 sram=0 sram_stride=16 dram={0xFFF0} dram_rs=16 dram_cs=1 rows=2 cols=16", Fault.DRAM_RANGE),
        (f"gather space=acc dtype=fp32 sram=0 sram_stride=16 table_addr={DATA} table_rs=16 table_rows=2 idx={DATA + 0x3000} rows=4 cols=16", Fault.GATHER_INDEX),
        ("matmul dst=0 dst_stride=16 a=0 a_stride=16 b=0 b_stride=16 m=1 n=1 k=1 acc=1 use_bias=1", Fault.BAD_OPERANDS),
    ],
)  # fmt: skip
def test_bad_programs_fault_like_the_isa_model(source, fault):
    dram, code = _image(source + "\nhalt")
    with pytest.raises(ExecError) as ref_err:
        RefMachine(DEFAULT_HW, dram.copy()).run(code, 0)
    assert ref_err.value.fault == fault
    with pytest.raises(ExecError) as err:
        _run_torch(dram, code, "cpu")
    assert err.value.fault == fault and err.value.index == ref_err.value.index, str(err.value)


# ---------------------------------------------------------------------------- models
def _check_model(name: str, device: str, tokens: int, batch: int = 1) -> None:
    spec = build(name, tokens=tokens, batch=batch)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    ref = sim.run(program, spec.inputs, backend="ref", check=False)
    exact = sim.run(program, spec.inputs, backend="torch", device=device, exact_matmul=True)
    fast = sim.run(program, spec.inputs, backend="torch", device=device, check=True)
    assert fast.passed, [r for r in fast.layers if r["status"] != "pass"][:3]
    for key in ("retired", "macs", "dma_bytes"):  # one run's work, as the ISA model counts
        assert fast.stats[key] == ref.stats[key], key
    # With the matrix unit's order every checkpoint is the ISA model's, bit for bit;
    # in the fast order each MATMUL stays within its reorder bound (the instruction test
    # above), and later bf16 roundings may carry that into single bf16 ulps, so the fast
    # run is held to the golden checks against PyTorch.
    for layer_id, got in ref.checkpoints.items():
        assert _same_bits(got["output"].numpy(), exact.checkpoints[layer_id]["output"]), layer_id


@pytest.mark.parametrize("device", DEVICES)
def test_gpt2_tiny_on_torch(device):
    _check_model("gpt2-tiny", device, tokens=16, batch=2)


@pytest.mark.parametrize("device", DEVICES)
def test_gpt2_small_short_sequence_on_torch(device):
    _check_model("gpt2", device, tokens=8)
