"""compile(): model -> Program. One readable pipeline; the verifier runs between passes."""

from __future__ import annotations

import time

import torch

from compiler.emit import encode, segment_stream
from compiler.frontend import run_frontend
from compiler.lower import lower_graph
from compiler.memplan import plan_memory
from compiler.package import package
from compiler.report import compile_report
from compiler.verify import verify_graph, verify_placement, verify_stream
from contract.blob import Program
from contract.hw import HwConfig, load_hw


def compile(
    model: torch.nn.Module,
    example_inputs: tuple,
    *,
    kwargs: dict | None = None,
    hw: HwConfig | str | None = None,
    strict: bool = False,
    checkpoints: str = "all",
) -> Program:
    hw = load_hw(hw)
    t0 = time.perf_counter()

    graph = run_frontend(model, example_inputs, kwargs, strict)  # export, decompose, fold
    verify_graph(graph)
    t_frontend = time.perf_counter() - t0

    lowered = lower_graph(graph, hw, checkpoints)  # partition + lower + checkpoints
    verify_stream(lowered.stream, lowered.buffers, hw)

    segmented = segment_stream(lowered.stream)  # device segments with their HALTs
    plan = plan_memory(lowered.stream, lowered.buffers, segmented.code_bytes, hw)
    verify_placement(lowered.stream, lowered.buffers, hw)
    code, debug_nodes = encode(segmented.insns)  # DRAM addresses resolved

    program = package(hw, graph, lowered, segmented, plan, code, debug_nodes)
    program.meta["report"] = compile_report(
        program,
        lowered,
        graph.stats,
        {"frontend_s": t_frontend, "total_s": time.perf_counter() - t0},
    )
    return program
