"""Frontend: torch.export, decomposition with a keep-list, constant folding.

The result is a Graph: one ATen-level fx graph whose placeholders are either user
inputs or constants (parameters, buffers, folded tensors), with every constant's
value at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx
from torch._decomp import core_aten_decompositions
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from compiler.ir import VDType
from contract.blob import encode_tensor

aten = torch.ops.aten

# Ops kept whole because a lowering does better with them than with their parts.
KEEP = (
    aten.linear.default,
    aten.addmm.default,
    aten.layer_norm.default,
    aten._softmax.default,
    aten.softmax.int,
    aten.scaled_dot_product_attention.default,
    aten.gelu.default,
    aten.embedding.default,
)

# Ops that only describe or assert: dropped.
DROP = {
    aten._assert_tensor_metadata.default,
    aten._assert_scalar.default,
    aten.sym_constrain_range_for_size.default,
}


@dataclass
class Graph:
    graph: fx.Graph
    constants: dict[str, torch.Tensor]  # placeholder name -> value
    parameters: set[str]  # placeholder names that are parameters (not folded)
    user_inputs: list[str]  # placeholder names, in call order
    outputs: list[fx.Node | None]
    exported: ExportedProgram
    stats: dict = field(default_factory=dict)

    def call_nodes(self) -> list[fx.Node]:
        return [n for n in self.graph.nodes if n.op == "call_function"]


def export(
    model: torch.nn.Module, example_inputs: tuple, kwargs: dict | None = None, strict: bool = False
) -> ExportedProgram:
    return torch.export.export(model, tuple(example_inputs), kwargs=kwargs or {}, strict=strict)


def decompose(ep: ExportedProgram) -> ExportedProgram:
    table = core_aten_decompositions()
    for op in KEEP:
        table.pop(op, None)
    return ep.run_decompositions(table)


def to_graph(ep: ExportedProgram) -> Graph:
    sig = ep.graph_signature
    gm = ep.graph_module
    state = {**ep.state_dict, **ep.constants}
    constants, parameters, user_inputs = {}, set(), []
    for spec, node in zip(
        sig.input_specs, [n for n in gm.graph.nodes if n.op == "placeholder"], strict=True
    ):
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(node.name)
        else:
            value = state[spec.target]
            constants[node.name] = value.detach()
            if spec.kind == InputKind.PARAMETER:
                parameters.add(node.name)
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    outputs = list(out_node.args[0])
    g = Graph(gm.graph, constants, parameters, user_inputs, outputs, ep)
    g.stats["exported_nodes"] = len(g.call_nodes())
    return g


def fold_constants(g: Graph, max_numel: int = 1 << 22) -> int:
    """Evaluate nodes that depend on no user input and no parameter (mask and
    position construction) and replace the frontier of that set by constants.
    Returns the number of constants made."""
    graph = g.graph
    values: dict[fx.Node, object] = {
        n: g.constants[n.name]
        for n in graph.nodes
        if n.op == "placeholder" and n.name in g.constants and n.name not in g.parameters
    }
    for node in graph.nodes:
        if node.op != "call_function" or node.target in DROP:
            continue
        if all(d in values for d in node.all_input_nodes):
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: values[n])
            values[node] = node.target(*args, **kwargs)
    folded = 0
    first = next(iter(graph.nodes))
    for node, value in list(values.items()):
        if node.op != "call_function" or not isinstance(value, torch.Tensor):
            continue
        frontier = node in g.outputs or any(u not in values for u in node.users)
        if not frontier or value.numel() > max_numel:
            continue
        with graph.inserting_before(first):
            const = graph.placeholder(f"_folded_{node.name}")
        const.meta["val"] = value
        g.constants[const.name] = value.detach().clone()
        node.replace_all_uses_with(const)
        g.outputs = [const if o is node else o for o in g.outputs]
        folded += 1
    graph.eliminate_dead_code()
    return folded


def drop_asserts(g: Graph) -> None:
    for node in list(g.graph.nodes):
        if node.op == "call_function" and node.target in DROP and not node.users:
            g.graph.erase_node(node)


def run_frontend(
    model: torch.nn.Module, example_inputs: tuple, kwargs: dict | None = None, strict: bool = False
) -> Graph:
    model = model.eval()
    ep = decompose(export(model, example_inputs, kwargs, strict))
    g = to_graph(ep)
    drop_asserts(g)
    g.stats["folded"] = fold_constants(g)
    g.stats["nodes"] = len(g.call_nodes())
    return g


def tensor_bytes(value: torch.Tensor, dtype: VDType, what: str = "constant") -> bytes:
    """A constant's DRAM image in the given storage dtype (contract.blob's layout)."""
    t = value.detach().contiguous()
    host = t.to(torch.float32) if t.is_floating_point() else t
    return np.ascontiguousarray(encode_tensor(host.numpy(), dtype.value, what)).tobytes()
