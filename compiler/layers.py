"""Layers: the modules whose outputs are checkpointed, found from nn_module_stack.

A module's nodes are those whose nn_module_stack names its path. Its output is the
last such node used outside the module (or returned); its inputs are the non-constant
values from outside that its nodes read. Checkpointing keeps the inputs alive until
the checkpoint, so a check can re-run the PyTorch module on the device's own inputs
(follow-actual). Modules that share an output node keep the outermost path (the
attention block rather than its last projection); the others become aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import fx

from compiler.frontend import Graph
from compiler.ir import TensorRef

# Checkpoint kind from the module's class name; golden/ keys its tolerances by kind.
KINDS = [
    ("norm", ("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm")),
    ("embedding", ("Embedding",)),
    ("attention", ("Attention", "Attn")),
    ("mlp", ("MLP", "FeedForward", "FFN")),
    ("linear", ("Linear", "Conv1D")),
    ("block", ("Block", "Layer", "DecoderLayer", "EncoderLayer")),
    ("activation", ("GELU", "ReLU", "SiLU", "Activation", "Tanh", "Sigmoid")),
]


def kind_of(type_name: str) -> str:
    short = type_name.rsplit(".", 1)[-1]
    for kind, words in KINDS:
        if any(w.lower() in short.lower() for w in words):
            return kind
    return "module"


@dataclass
class LayerInfo:
    id: int
    path: str
    type: str
    kind: str
    output_node: str
    input_nodes: list[str]
    node_names: list[str]  # the module's own nodes, in graph order
    aliases: list[str] = field(default_factory=list)
    output_ref: TensorRef | None = None
    input_refs: list[TensorRef] = field(default_factory=list)
    skipped: str = ""


def _stack_paths(node: fx.Node) -> list[tuple[str, str]]:
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for path, type_ in stack.values():
        type_name = type_ if isinstance(type_, str) else getattr(type_, "__qualname__", str(type_))
        out.append((path, type_name))
    return out


def find_layers(g: Graph, mode: str = "all") -> list[LayerInfo]:
    if mode == "none":
        return []
    order = {n: i for i, n in enumerate(g.graph.nodes)}
    members: dict[str, list[fx.Node]] = {}
    types: dict[str, str] = {}
    for node in g.graph.nodes:
        if node.op != "call_function":
            continue
        for path, type_name in _stack_paths(node):
            if path:
                members.setdefault(path, []).append(node)
                types[path] = type_name
    outputs = set(g.outputs)
    by_output: dict[str, LayerInfo] = {}
    for path, nodes in members.items():
        inside = set(nodes)
        escaping = [n for n in nodes if n in outputs or any(u not in inside for u in n.users)]
        if not escaping:
            continue
        out = max(escaping, key=order.__getitem__)
        val = out.meta.get("val")
        if getattr(val, "dtype", None) is None or not val.dtype.is_floating_point:
            continue
        inputs = []
        for n in nodes:
            for d in n.all_input_nodes:
                if d not in inside and d.name not in g.constants and d.name not in inputs:
                    inputs.append(d.name)
        info = LayerInfo(
            0, path, types[path], kind_of(types[path]), out.name, inputs, [n.name for n in nodes]
        )
        prev = by_output.get(out.name)
        if prev is None or len(path) < len(prev.path):
            if prev is not None:
                info.aliases = [prev.path, *prev.aliases]
            by_output[out.name] = info
        else:
            prev.aliases.append(path)
    position = {n.name: order[n] for n in g.graph.nodes}
    layers = sorted(by_output.values(), key=lambda la: position[la.output_node])
    for i, layer in enumerate(layers):
        layer.id = i
    return layers
