"""The functional coverage model (verif/coverage.py) samples what a program does: the
bins a hand-written program must hit are hit, a fault lands in its class x unit bin,
holes are reported, and hits from several processes' files add up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contract.asm import assemble
from contract.hw import DEFAULT_HW
from contract.isa import encode_program
from sim.ref import OBSERVERS, ExecError, RefMachine
from verif import coverage


@pytest.fixture
def sampler():
    s = coverage.Sampler()
    OBSERVERS.append(s)
    yield s
    OBSERVERS.remove(s)


def _run(source: str) -> None:
    dram = np.zeros(1 << 16, dtype=np.uint8)
    dram[0x4000:0x4100] = np.array([0.0, -0.0, np.inf, np.nan] * 16, np.float32).view(np.uint8)
    code = encode_program(assemble(source))
    dram[: len(code)] = np.frombuffer(code, np.uint8)
    RefMachine(DEFAULT_HW, dram).run(code, 0)


def _delta(before: dict, after: dict) -> set[tuple[str, str]]:
    return {(k, b) for k, bins in after.items() for b, n in bins.items() if n > before[k][b]}


def test_a_program_hits_its_bins(sampler):
    before = coverage.hits()
    _run(
        """dma_ld space=acc dtype=bf16 sram=0 sram_stride=32 dram=0x4000 dram_rs=1 dram_cs=3 rows=3 cols=17
        vexp dst=0 dst_stride=32 a=0 a_stride=32 rows=3 cols=17
        halt"""
    )
    got = _delta(before, coverage.hits())
    want = {
        ("loom.insn.opcode", "'DMA_LD'"),
        ("loom.dma.op_x_dtype_x_space_x_layout", "('DMA_LD', 'BF16', 'ACC', 'transposed')"),
        ("loom.dma.op_x_partial_x_page", "('DMA_LD', True, False)"),
        ("loom.vpu.funct", "('VUNARY', 'EXP', '-')"),
        ("loom.vpu.in_place", "True"),
        ("loom.vpu.rows_x_cols", "('part', 'lines+part')"),
        ("loom.dependency.units_x_mem", "('dma', 'vpu', 'ACC')"),
        ("loom.dependency.distance_x_units", "('1', ('dma', 'vpu'))"),
    }
    assert want <= got, want - got
    # The loaded bf16 halves of 0.0, -0.0, inf and NaN: all four classes reach the VPU.
    assert {
        ("loom.values.vpu_funct", f"('VUNARY.EXP', '{c}')") for c in ("+0", "-0", "+inf", "nan")
    } <= got
    assert not any(k == "loom.mxu.mode" for k, _ in got)


def test_a_fault_lands_in_its_class_and_unit(sampler):
    before = coverage.hits()
    with pytest.raises(ExecError):
        _run("vrsum dst=16 dst_stride=16 a=0 a_stride=16 rows=2 cols=16\nhalt")
    assert ("loom.fault.class_x_unit", "('ALIAS', 'vpu')") in _delta(before, coverage.hits())


def test_report_lists_holes_and_merge_adds_files(tmp_path):
    base = {k: dict.fromkeys(v, 0) for k, v in coverage.hits().items()}
    one = json.loads(json.dumps(base))
    one["loom.insn.opcode"]["'NOP'"] = 2
    two = json.loads(json.dumps(base))
    two["loom.insn.opcode"]["'NOP'"] = 1
    two["loom.insn.opcode"]["'HALT'"] = 1
    (tmp_path / "coverage-1.json").write_text(json.dumps(one))
    (tmp_path / "coverage-2.json").write_text(json.dumps(two))
    total = coverage.merge(tmp_path)
    assert total["loom.insn.opcode"]["'NOP'"] == 3
    rep = coverage.report(total)
    holes = rep["insn"]["holes"]["loom.insn.opcode"]
    assert "'NOP'" not in holes and "'HALT'" not in holes and "'MATMUL'" in holes
    assert rep["insn"]["covered"] == 2
    assert 0 < rep["total"]["percent"] < 5
