"""Packaging: the placed, encoded program as a contract.blob Program. Builds the
constant table and section, the bindings (where each input, output, layer tensor and
host-op operand lives in DRAM) and the meta the runtime reads."""

from __future__ import annotations

import json

from compiler.emit import Segmented
from compiler.frontend import Graph
from compiler.ir import Buffer, BufferKind, HostOp, TensorRef
from compiler.layers import LayerInfo
from compiler.lower import Lowered
from compiler.memplan import MemoryPlan
from contract import isa
from contract.blob import Program, validate
from contract.hw import HwConfig


def binding(name: str, ref: TensorRef | object) -> dict:
    """A tensor's DRAM placement, or a non-tensor value (a number, else None)."""
    if isinstance(ref, TensorRef):
        return {"name": name, "addr": ref.buffer.addr, **ref.to_json()}
    return {"name": name, "value": ref if isinstance(ref, (int, float, bool)) else None}


def constant_section(buffers: list[Buffer]) -> tuple[list[dict], bytes]:
    """The constant table (each constant's DRAM address and place in the section) and
    the section's bytes, in address order. Unplaced constants (never used) are left out."""
    placed = sorted(
        (b for b in buffers if b.kind == BufferKind.CONSTANT and b.addr is not None),
        key=lambda b: b.addr,
    )
    table, offset = [], 0
    for b in placed:
        table.append({"name": b.name, "addr": b.addr, "offset": offset, "length": len(b.data)})
        offset += len(b.data)
    return table, b"".join(b.data for b in placed)


def buffer_table(buffers: list[Buffer]) -> list[dict]:
    """Every placed buffer: what the loader checks each binding against (its bytes
    inside its buffer, the buffer inside the memory plan's region of its kind)."""
    names = [b.name for b in buffers if b.addr is not None]
    if len(set(names)) != len(names):
        raise ValueError(
            f"two buffers share a name: {sorted(n for n in names if names.count(n) > 1)}"
        )
    return [
        {"name": b.name, "kind": b.kind.value, "addr": b.addr, "size": b.nbytes}
        for b in buffers
        if b.addr is not None
    ]


def layer_entry(layer: LayerInfo) -> dict:
    return {
        "id": layer.id,
        "path": layer.path,
        "type": layer.type,
        "kind": layer.kind,
        "aliases": layer.aliases,
        "node": layer.output_node,
        "output": binding(layer.output_node, layer.output_ref),
        "inputs": [binding(n, r) for n, r in zip(layer.input_nodes, layer.input_refs, strict=True)],
        "nodes": layer.node_names,
    }


def host_op_entry(op: HostOp) -> dict:
    return {
        "target": op.target,
        "args": op.args,
        "kwargs": op.kwargs,
        "inputs": [binding(f"in{i}", t) for i, t in enumerate(op.inputs)],
        "outputs": [binding(f"out{i}", t) for i, t in enumerate(op.outputs)],
        "node": op.node,
        "module": op.module,
    }


def package(
    hw: HwConfig,
    graph: Graph,
    lowered: Lowered,
    segmented: Segmented,
    plan: MemoryPlan,
    code: bytes,
    debug_nodes: list[str],
) -> Program:
    const_table, const_data = constant_section(lowered.buffers)
    meta = {
        "isa_version": isa.ISA_VERSION,
        "memory": {**plan.to_json(), "buffers": buffer_table(lowered.buffers)},
        "segments": [s.to_json() for s in segmented.segments],
        "host_ops": [host_op_entry(h) for h in segmented.host_ops],
        "constants": const_table,
        "inputs": [binding(n, r) for n, r in lowered.inputs],
        "outputs": [
            binding(f"output{i}", r) if r is not None else None
            for i, r in enumerate(lowered.outputs)
        ],
        "layers": [layer_entry(la) for la in lowered.layers],
    }
    # The loader's checks, here on what the blob will hold (meta as JSON): a model never
    # compiles into a blob the loader refuses.
    validate(hw, code, const_data, json.loads(json.dumps(meta)))
    return Program(hw, code, const_data, meta, graph, debug_nodes)
