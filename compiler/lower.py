"""Lowering pass with the CPU-fallback partitioner and checkpoint placement.

Walks the graph in order. Each node is either a view (a new TensorRef, no code), a
device op (its registered lowering emits instructions), or a host op (no lowering, or
the lowering raised Unsupported: PyTorch runs it on the CPU between device segments).
After the node that produces a module's output, a CHECKPOINT marks that layer.

Integer tensors: the device reads integers only as GATHER's int32 indices, so an int64
value that reaches an index-reading op is stored as int32 (range-checked when it is
written); one that only host ops read stays int64 (host-only DRAM), since host ops
compute in int64 and their intermediates (hashes, sentinels) need not fit in int32.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import fx

from compiler import ops  # noqa: F401  (registers the lowerings)
from compiler.context import LowerCtx
from compiler.frontend import Graph
from compiler.ir import Buffer, BufferKind, Checkpoint, HostOp, StreamItem, TensorRef, VDType
from compiler.layers import LayerInfo, find_layers
from compiler.ops.views import is_view, lower_view
from compiler.registry import REGISTRY, Unsupported, op_name
from contract import hostops
from contract.hw import HwConfig


@dataclass
class OpRecord:
    op: str
    status: str  # "device" | "view" | "cpu"
    reason: str = ""


@dataclass
class Lowered:
    stream: list[StreamItem]
    buffers: list[Buffer]
    values: dict[str, object]  # node name -> TensorRef | list | python value
    inputs: list[tuple[str, TensorRef | object]]  # user inputs in order
    outputs: list[TensorRef | None]
    layers: list[LayerInfo]
    records: dict[str, OpRecord] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for the compile report

    def op_table(self) -> dict[str, dict]:
        table: dict[str, Counter] = {}
        for rec in self.records.values():
            table.setdefault(rec.op, Counter())[rec.status] += 1
        out = {}
        for op, counts in sorted(table.items()):
            reasons = sorted({r.reason for r in self.records.values() if r.op == op and r.reason})
            out[op] = {"count": sum(counts.values()), **counts, "reasons": reasons}
        return out


def _reads_bf16(user: fx.Node, node: fx.Node) -> bool:
    """True when user reads node only as a bf16 matrix operand (through views)."""
    if user.op != "call_function":
        return False
    if is_view(user.target):
        return _bf16_only(user)
    low = REGISTRY.get(user.target)
    if low is None:
        return False
    positions = [i for i, a in enumerate(user.args) if a is node]
    if not positions or any(i not in low.bf16_args for i in positions):
        return False
    return node not in user.kwargs.values()


def _bf16_only(node: fx.Node) -> bool:
    """True when every use of node (through views) is a bf16 matrix-operand argument."""
    return bool(node.users) and all(_reads_bf16(user, node) for user in node.users)


def split_bf16_copies(g: Graph) -> list[tuple[str, int]]:
    """Give a floating constant read both as a bf16 matrix operand and in fp32 a second,
    bf16 copy for its matrix-operand uses: the DMA streams half the bytes for them
    (GPT-2's tied wte: the embedding gathers 8 fp32 rows of it, lm_head streams the whole
    table as B; bf16 in DRAM halves lm_head's 154 MB). The values are those the DMA
    would make (fp32 -> bf16 RNE either way), so results are bit for bit the same; the
    cost is DRAM capacity. Returns (constant, bytes added) per copy."""
    added = []
    for node in [n for n in g.graph.nodes if n.op == "placeholder" and n.name in g.constants]:
        value = g.constants[node.name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            continue
        readers = [u for u in node.users if _reads_bf16(u, node)]
        if not readers or len(readers) == len(node.users):
            continue
        with g.graph.inserting_after(node):
            copy = g.graph.placeholder(f"{node.name}_bf16")
        copy.meta = dict(node.meta)
        g.constants[copy.name] = value
        if node.name in g.parameters:
            g.parameters.add(copy.name)
        for user in readers:
            user.replace_input_with(node, copy)
        added.append((node.name, value.numel() * 2))
    return added


# Ops whose device lowerings read an integer tensor (as GATHER's int32 indices): the
# only readers of integers on the device (a DMA loads fp32 and bf16 only).
INDEX_READERS = {
    torch.ops.aten.embedding.default,
    torch.ops.aten.index_select.default,
    torch.ops.aten.index.Tensor,
    torch.ops.aten.gather.default,
}


def _reaches_index_reader(node: fx.Node) -> bool:
    """True when a use of node (through views) is an op that may read it on the device."""
    for user in node.users:
        if user.op == "call_function" and is_view(user.target):
            if _reaches_index_reader(user):
                return True
        elif user.op == "call_function" and user.target in INDEX_READERS:
            return True
    return False


def _int64_host_only(node: fx.Node, dtype: torch.dtype, value: torch.Tensor | None = None) -> bool:
    """Whether an int64 value is kept int64 (host-only) rather than narrowed to int32: no
    device op reads it, and (for a constant, whose values are known) it does not fit."""
    if dtype != torch.int64 or _reaches_index_reader(node):
        return False
    if value is not None and value.numel():
        return bool(value.min() < -(2**31) or value.max() >= 2**31)
    return value is None


def _host_arg(value, inputs: list[TensorRef]):
    """A JSON-able argument, with tensors replaced by {"tensor": i}."""
    if isinstance(value, TensorRef):
        inputs.append(value)
        return {"tensor": len(inputs) - 1}
    if isinstance(value, (list, tuple)):
        return [_host_arg(v, inputs) for v in value]
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": "cpu"}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise Unsupported(f"argument of type {type(value).__name__} cannot cross to the host")


def lower_graph(g: Graph, hw: HwConfig, checkpoints: str = "all") -> Lowered:
    stream: list[StreamItem] = []
    buffers: list[Buffer] = []
    ctx = LowerCtx(hw, stream, buffers)
    values: dict[str, object] = {}
    records: dict[str, OpRecord] = {}
    inputs: list[tuple[str, object]] = []
    for name, nbytes in split_bf16_copies(g):
        g.stats.setdefault("notes", []).append(
            f"constant {name}: a bf16 copy ({nbytes / 2**20:.1f} MiB) for its matrix-operand"
            " uses (the fp32 one stays for the others)"
        )
    layers = find_layers(g, checkpoints)
    layer_at = {layer.output_node: layer for layer in layers}
    ctx.checkpointed = {n for la in layers for n in (la.output_node, *la.input_nodes)}
    ctx.checkpoint_outputs = {la.output_node for la in layers}
    host_only_int64: list[str] = []
    ctx.values = values

    def value_of(n):
        return values[n.name]

    for node in g.graph.nodes:
        if node.op == "placeholder":
            if node.name in g.constants:
                t = g.constants[node.name]
                if not isinstance(t, torch.Tensor):
                    values[node.name] = t
                    continue
                dtype = VDType.BF16 if (t.is_floating_point() and _bf16_only(node)) else None
                if _int64_host_only(node, t.dtype, t):
                    dtype = VDType.I64
                    host_only_int64.append(node.name)
                ref = ctx.new_constant(t, node.name, dtype)
                ctx.constant_values[ref.buffer] = t.detach()
                values[node.name] = ref
            else:
                val = node.meta.get("val")
                if isinstance(val, torch.Tensor):
                    ctx.node_name = node.name
                    ref = ctx.new_tensor(
                        tuple(val.shape), VDType.of(val.dtype), BufferKind.INPUT, name=node.name
                    )
                    values[node.name] = ref
                    inputs.append((node.name, ref))
                else:
                    values[node.name] = val
                    inputs.append((node.name, val))
            continue
        if node.op == "output":
            continue
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), value_of)
        name = op_name(node.target)
        ctx.begin(node.name)
        mark_stream, mark_buffers = len(stream), len(buffers)
        if is_view(node.target):
            values[node.name] = lower_view(ctx, node, list(args), dict(kwargs))
            records[node.name] = OpRecord(name, "view" if len(stream) == mark_stream else "device")
        else:
            lowering = REGISTRY.get(node.target)
            reason = "no lowering registered"
            result = None
            if lowering is not None:
                try:
                    result = lowering.fn(ctx, node, list(args), dict(kwargs))
                except Unsupported as e:
                    reason = str(e)
                    del stream[mark_stream:]
                    del buffers[mark_buffers:]
            if result is not None:
                values[node.name] = result
                records[node.name] = OpRecord(name, "device")
            else:
                values[node.name] = _lower_host(ctx, node, name, args, kwargs)
                records[node.name] = OpRecord(name, "cpu", reason)
                out = values[node.name]
                if any(r.dtype == VDType.I64 for r in (out if isinstance(out, list) else [out])):
                    host_only_int64.append(node.name)
        layer = layer_at.get(node.name)
        if layer is not None:
            refs = [values[n] for n in [layer.output_node, *layer.input_nodes]]
            if all(isinstance(r, TensorRef) for r in refs):
                layer.output_ref = refs[0]
                layer.input_refs = refs[1:]
                stream.append(Checkpoint(layer.id, refs, node.name))
            else:
                layer.skipped = "layer value is not a single tensor"
    outputs = []
    for out in g.outputs:
        ref = values.get(out.name) if out is not None else None
        outputs.append(ref if isinstance(ref, TensorRef) else None)
    for ref in outputs:  # returned activations get their own DRAM (the host reads them)
        if ref is not None and ref.buffer.kind == BufferKind.ACTIVATION:
            ref.buffer.kind = BufferKind.OUTPUT
    notes = []
    if host_only_int64:
        notes.append(
            f"{len(host_only_int64)} int64 values only host ops read kept as int64 (host-only"
            f" DRAM, not narrowed to int32): {', '.join(host_only_int64)}"
        )
    return Lowered(
        stream,
        buffers,
        values,
        inputs,
        outputs,
        [la for la in layers if not la.skipped],
        records,
        notes,
    )


def _lower_host(ctx: LowerCtx, node: fx.Node, name: str, args, kwargs) -> object:
    meta = node.meta.get("val")
    tensor_inputs: list[TensorRef] = []
    host_args = _host_arg(list(args), tensor_inputs)
    host_kwargs = {k: _host_arg(v, tensor_inputs) for k, v in kwargs.items()}
    metas = meta if isinstance(meta, (list, tuple)) else [meta]
    if not all(isinstance(m, torch.Tensor) for m in metas):
        raise NotImplementedError(
            f"{name} at {node.name} has no device lowering and returns a non-tensor;"
            " it cannot run on the host either"
        )
    module = ""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        module = list(stack.values())[-1][0]
    # The loader runs only allow-listed host ops (contract.hostops): refuse here, with
    # the node named, rather than compile a blob no Loom would load.
    try:
        hostops.check_call(name, host_args, host_kwargs, len(tensor_inputs), len(metas))
    except hostops.HostOpRefused as e:
        raise NotImplementedError(
            f"{name} at node {node.name} (module {module or '<top level>'}) has no device"
            f" lowering and cannot run on the host: {e}"
        ) from None
    outs = [
        ctx.new_tensor(
            tuple(m.shape), VDType.I64 if _int64_host_only(node, m.dtype) else VDType.of(m.dtype)
        )
        for m in metas
    ]
    ctx.stream.append(HostOp(name, host_args, host_kwargs, tensor_inputs, outs, node.name, module))
    return outs if isinstance(meta, (list, tuple)) else outs[0]
