"""Loop batching on the torch backend (sim/torch_loops.py): tile loops run as batched
operations must leave exactly the state the ISA model leaves (DRAM, SPAD and ACC, bit
for bit), and loops whose iterations depend on each other must not be batched.

Programs are assembled from text generated per iteration, as a compiler emits them.
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import sim
from contract import numerics as nx
from contract.asm import assemble
from contract.hw import DEFAULT_HW, load_hw
from contract.isa import Fault, encode_program
from contract.regions import resolve
from sim.cli.models import build
from sim.ref import ExecError, RefMachine
from sim.torch_backend.backend import TorchBackend, _blocks
from sim.torch_backend.loops import Leaf, Loop, batch

X, Y, W = 0x10000, 0x30000, 0x50000  # input, output and weight areas of the image


def _image(source: str) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(7)
    code = encode_program(assemble(source))
    dram = np.zeros(0x80000, dtype=np.uint8)
    dram[: len(code)] = np.frombuffer(code, dtype=np.uint8)
    x = (rng.standard_normal((0x30000 - X) // 4) * 2).astype(np.float32)
    dram[X : X + x.nbytes] = x.view(np.uint8)
    w = nx.f32_to_bf16_bits(rng.standard_normal((0x80000 - W) // 2).astype(np.float32))
    dram[W : W + w.nbytes] = w.view(np.uint8)
    return dram, code


def _run(source: str, block_elems: int | None = None):
    """Run on the ISA model and on the torch backend; assert identical final state.
    Returns the torch backend's plan. block_elems: the CPU block size to use."""
    dram, code = _image(source)
    ref = RefMachine(DEFAULT_HW, dram.copy())
    with np.errstate(all="ignore"):
        ref.run(code, 0)
    backend = TorchBackend(DEFAULT_HW, exact_matmul=True)
    backend.block_elems = block_elems or backend.block_elems
    got = dram.copy()
    backend.run_segment(got, code, 0, lambda layer: None)
    assert np.array_equal(got, ref.dram), "DRAM differs from the ISA model"
    for name in ("spad", "acc"):
        mine = getattr(backend, name).numpy().view(np.uint32)
        assert np.array_equal(mine, getattr(ref, name).view(np.uint32)), f"{name} differs"
    (plan,) = backend.plans.values()
    return plan


def _program(body, iterations: int, before: str = "", after: str = "") -> str:
    lines = [before] + [body(k) for k in range(iterations)] + [after, "halt"]
    return "\n".join(line for line in lines if line)


def test_independent_tiles_run_as_one_batch():
    def tile(k):
        return f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={X + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32
vexp dst=128 dst_stride=32 a=0 a_stride=32 rows=4 cols=32
vadd dst=128 dst_stride=32 a=128 a_stride=32 b=0 b_stride=32 rows=4 cols=32
vrsum dst=256 dst_stride=16 a=128 a_stride=32 rows=4 cols=32
dma_st space=acc dtype=fp32 sram=128 sram_stride=32 dram={Y + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501

    plan = _run(_program(tile, 9))
    assert plan.loops == 1 and plan.depth == 1
    assert len(plan.steps) < 9 * 5 / 4  # 5 batched steps + live-out copies
    # The same in cache-sized blocks of 2 iterations (5 blocks, the last one short).
    _run(_program(tile, 9), block_elems=256)


def test_blocks_cut_a_batch_into_whole_iterations():
    assert _blocks([9], 128, None) == [()]
    assert _blocks([9], 128, 256) == [(slice(0, 2),), (slice(2, 4),), (slice(4, 6),),
                                      (slice(6, 8),), (slice(8, 9),)]  # fmt: skip
    # Nested batches split the outermost dim whose inner dims fit one block.
    assert _blocks([3, 4], 100, 800) == [(slice(0, 2),), (slice(2, 3),)]
    assert _blocks([3, 4], 100, 200)[:3] == [(0, slice(0, 2)), (0, slice(2, 4)), (1, slice(0, 2))]


def test_nested_tile_loops_with_an_operand_loaded_per_outer_iteration():
    def row_block(i):
        inner = "\n".join(
            f"""dma_ld space=spad dtype=bf16 sram=1024 sram_stride=32 dram={W + j * 64} dram_rs=128 dram_cs=1 rows=64 cols=32
matmul dst=0 dst_stride=32 a=0 a_stride=64 b=1024 b_stride=32 m=16 n=32 k=64
dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={Y + i * 16 * 512 + j * 128} dram_rs=128 dram_cs=1 rows=16 cols=32"""  # noqa: E501
            for j in range(4)
        )
        return f"dma_ld space=spad dtype=fp32 sram=0 sram_stride=64 dram={X + i * 4096} dram_rs=64 dram_cs=1 rows=16 cols=64\n{inner}"  # noqa: E501

    plan = _run(_program(row_block, 3))
    assert plan.depth == 2, "the outer loop over row blocks is batched too"


def test_moving_reads_of_a_preloaded_operand_are_batched():
    before = f"dma_ld space=acc dtype=fp32 sram=4096 sram_stride=32 dram={X} dram_rs=32 dram_cs=1 rows=8 cols=32"  # noqa: E501

    def row(k):
        return f"""vmul bmode=row dst=0 dst_stride=32 a=4096 a_stride=32 b={4096 + 32 * k} rows=8 cols=32
dma_st space=acc dtype=bf16 sram=0 sram_stride=32 dram={Y + k * 512} dram_rs=32 dram_cs=1 rows=8 cols=32"""  # noqa: E501

    plan = _run(_program(row, 8, before))
    assert plan.loops == 1


def test_accumulation_over_iterations_is_not_batched():
    before = f"dma_ld space=spad dtype=fp32 sram=0 sram_stride=64 dram={X} dram_rs=64 dram_cs=1 rows=16 cols=64"  # noqa: E501

    def k_step(k):  # C += A[:, k-tile] @ B[k-tile]: reads the C of the previous iteration
        return f"""dma_ld space=spad dtype=bf16 sram=2048 sram_stride=32 dram={W + k * 4096} dram_rs=32 dram_cs=1 rows=16 cols=32
matmul dst=0 dst_stride=32 a={16 * k} a_stride=64 b=2048 b_stride=32 m=16 n=32 k=16 acc=1"""  # noqa: E501

    after = f"dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={Y} dram_rs=32 dram_cs=1 rows=16 cols=32"  # noqa: E501
    plan = _run(_program(k_step, 4, before, after))
    assert plan.loops == 0


def test_a_value_carried_through_dram_is_not_batched():
    def link(k):  # loads what the previous iteration stored
        return f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={X + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32
vadd bmode=imm dst=0 dst_stride=32 a=0 a_stride=32 rows=4 cols=32 imm=1.0
dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={X + (k + 1) * 512} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501

    plan = _run(_program(link, 6))
    assert plan.loops == 0


def test_stores_to_one_address_are_not_batched():
    def overwrite(k):  # every iteration stores to Y: the last one must win
        return f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={X + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32
dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={Y} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501

    plan = _run(_program(overwrite, 5))
    assert plan.loops == 0


def test_a_read_of_the_previous_iterations_sram_is_not_batched():
    before = f"dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={X} dram_rs=32 dram_cs=1 rows=4 cols=32"  # noqa: E501

    def running(k):  # S <- S * x_k, in place: S lives across iterations
        return f"""dma_ld space=acc dtype=fp32 sram=128 sram_stride=32 dram={X + 512 + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32
vmul dst=0 dst_stride=32 a=0 a_stride=32 b=128 b_stride=32 rows=4 cols=32
dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={Y + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501

    plan = _run(_program(running, 6, before))
    assert plan.loops == 0


def test_a_fault_in_a_late_iteration_names_the_same_instruction():
    def tile(k):  # the 6th load runs past the end of DRAM
        addr = X + k * 512 if k < 5 else 0x80000 - 64
        return f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={addr} dram_rs=32 dram_cs=1 rows=4 cols=32
dma_st space=acc dtype=fp32 sram=0 sram_stride=32 dram={Y + k * 512} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501

    dram, code = _image(_program(tile, 8))
    with pytest.raises(ExecError) as ref_err:
        RefMachine(DEFAULT_HW, dram.copy()).run(code, 0)
    with pytest.raises(ExecError) as err:
        TorchBackend(DEFAULT_HW).run_segment(dram, code, 0, lambda layer: None)
    assert err.value.fault == ref_err.value.fault == Fault.DRAM_RANGE
    assert err.value.index == ref_err.value.index == 10


@pytest.mark.parametrize("hw", ["default", "small"])
def test_models_batched_are_bit_identical_with_the_isa_model(hw):
    """A whole model, tiled hard on the small core: every checkpoint identical with the
    ISA model (exact_matmul), batched and unbatched, and far fewer steps than
    instructions when batched (remainder tiles of other shapes stay single)."""
    spec = build("gpt2-tiny", tokens=32, batch=2)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=load_hw(hw))
    ref = sim.run(program, spec.inputs, backend="ref", check=False)
    got = sim.run(program, spec.inputs, backend="torch", exact_matmul=True, check=False)
    flat = sim.run(
        program, spec.inputs, backend="torch", exact_matmul=True, batching=False, check=False
    )
    for run in (got, flat):
        for layer_id, expected in ref.checkpoints.items():
            for part in ("output", "inputs"):
                e, a = expected[part], run.checkpoints[layer_id][part]
                pairs = zip(e, a, strict=True) if part == "inputs" else [(e, a)]
                for x, y in pairs:
                    assert np.array_equal(x.numpy().view(np.uint8), y.numpy().view(np.uint8))
        assert run.stats["retired"] == ref.stats["retired"]
    # Unbatched: a step per instruction (no-ops, fences and HALTs take none).
    assert 0.99 * flat.stats["retired"] < flat.stats["steps"] <= flat.stats["retired"]
    assert got.stats["steps"] < 0.6 * flat.stats["steps"], (got.stats, flat.stats)


def test_live_out_copies_are_skipped_only_when_nothing_reads_them():
    def tile(base, rows):
        return lambda k: (
            f"""dma_ld space=acc dtype=fp32 sram=0 sram_stride=32 dram={base + k * 512} dram_rs=32 dram_cs=1 rows={rows} cols=32
vexp dst=128 dst_stride=32 a=0 a_stride=32 rows={rows} cols=32
dma_st space=acc dtype=fp32 sram=128 sram_stride=32 dram={Y + (base - X) + k * 512} dram_rs=32 dram_cs=1 rows={rows} cols=32"""
        )  # noqa: E501

    # Loop 1's buffers are overwritten by loop 2 (of another shape) before any read:
    # its copy-out is dead. Loop 2's are read afterwards (the final vadd): live.
    after = f"""vadd dst=256 dst_stride=32 a=128 a_stride=32 b=0 b_stride=32 rows=4 cols=32
dma_st space=acc dtype=fp32 sram=256 sram_stride=32 dram={Y + 0x8000} dram_rs=32 dram_cs=1 rows=4 cols=32"""  # noqa: E501
    source = _program(tile(X, 2), 6) + "\n" + _program(tile(X + 0x4000, 4), 5, after=after)
    source = source.replace("halt\n", "", 1)
    plan = _run(source)
    assert plan.loops == 2
    leaves = [
        Leaf(n, 32 * n, insn, resolve(insn, DEFAULT_HW, 0x80000))
        for n, insn in enumerate(assemble(source))
    ]
    first, second = [node for node in batch(DEFAULT_HW, leaves) if isinstance(node, Loop)]
    assert len(first.dead) == 2 and not second.dead
