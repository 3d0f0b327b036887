"""compile(): model -> Program. One readable pipeline; the verifier runs between passes."""

from __future__ import annotations

import time

import torch

from compiler.emit import encode_stream, segment_stream
from compiler.frontend import run_frontend
from compiler.ir import BufferKind, TensorRef
from compiler.lower import lower_graph
from compiler.memplan import plan_memory
from compiler.report import compile_report
from compiler.verify import verify_graph, verify_placement, verify_stream
from contract import isa
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
    for ref in lowered.outputs:
        if ref is not None and ref.buffer.kind == BufferKind.ACTIVATION:
            ref.buffer.kind = BufferKind.OUTPUT
    verify_stream(lowered.stream, lowered.buffers, hw)

    segments, host_ops, n_insns = segment_stream(lowered.stream)
    plan = plan_memory(lowered.stream, lowered.buffers, n_insns * isa.INSN_BYTES, hw)
    verify_placement(lowered.stream, lowered.buffers, hw)

    code, debug_nodes = encode_stream(lowered.stream)
    assert len(code) == n_insns * isa.INSN_BYTES
    constants = sorted(
        (b for b in lowered.buffers if b.kind == BufferKind.CONSTANT and b.addr is not None),
        key=lambda b: b.addr,
    )
    const_table, chunks, offset = [], [], 0
    for b in constants:
        const_table.append(
            {"name": b.name, "addr": b.addr, "offset": offset, "length": len(b.data)}
        )
        chunks.append(b.data)
        offset += len(b.data)

    def binding(name: str, ref: TensorRef | object) -> dict:
        if isinstance(ref, TensorRef):
            return {"name": name, "addr": ref.buffer.addr, **ref.to_json()}
        return {"name": name, "value": ref if isinstance(ref, (int, float, bool)) else None}

    layers = []
    for la in lowered.layers:
        layers.append(
            {
                "id": la.id,
                "path": la.path,
                "type": la.type,
                "kind": la.kind,
                "aliases": la.aliases,
                "node": la.output_node,
                "output": binding(la.output_node, la.output_ref),
                "inputs": [
                    binding(n, r) for n, r in zip(la.input_nodes, la.input_refs, strict=True)
                ],
                "nodes": la.node_names,
            }
        )
    meta = {
        "isa_version": isa.ISA_VERSION,
        "memory": plan.to_json(),
        "segments": [s.to_json() for s in segments],
        "host_ops": [
            {
                "target": h.target,
                "args": h.args,
                "kwargs": h.kwargs,
                "inputs": [binding(f"in{i}", t) for i, t in enumerate(h.inputs)],
                "outputs": [binding(f"out{i}", t) for i, t in enumerate(h.outputs)],
                "node": h.node,
                "module": h.module,
            }
            for h in host_ops
        ],
        "constants": const_table,
        "inputs": [binding(n, r) for n, r in lowered.inputs],
        "outputs": [
            binding(f"output{i}", r) if r is not None else None
            for i, r in enumerate(lowered.outputs)
        ],
        "layers": layers,
    }
    program = Program(hw, code, b"".join(chunks), meta, graph, debug_nodes)
    meta["report"] = compile_report(
        program,
        lowered,
        graph.stats,
        {"frontend_s": t_frontend, "total_s": time.perf_counter() - t0},
    )
    return program
