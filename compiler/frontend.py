"""Frontend: torch.export, decomposition with a keep-list, constant folding.

Models come as their libraries ship them: before export, outputs a prefill program does
not need (a KV cache, attention maps, every layer's hidden states) are switched off by
the model's own keyword arguments where it takes them, and whatever is left of them is
dropped from the traced outputs; each such change is a note in the compile report. A
model the front end cannot take is refused with a FrontendError that names the cause
and the fix (the export error chained), never a bare export traceback.

The result is a Graph: one ATen-level fx graph whose placeholders are either user
inputs or constants (parameters, buffers, folded tensors), with every constant's
value at hand.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
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


class FrontendError(ValueError):
    """A model the front end cannot export, with the cause and the fix named."""


# Switches of transformers-style models that add outputs a prefill program does not use:
# keyword argument -> what the output carries when it is on.
PREFILL_SWITCHES = {
    "use_cache": "a KV cache",
    "output_attentions": "every layer's attention probabilities",
    "output_hidden_states": "every layer's hidden states",
}
# Output fields that hold those extras (names of transformers' ModelOutput fields; the
# cache is `past_key_values` in transformers 4 and `cache` in 5).
PREFILL_EXTRA_FIELDS = (
    "past_key_values",
    "cache",
    "attentions",
    "hidden_states",
    "cross_attentions",
    "encoder_attentions",
    "decoder_attentions",
    "encoder_hidden_states",
    "decoder_hidden_states",
)


def _takes_keyword(model: torch.nn.Module, name: str) -> bool:
    """Whether model.forward takes `name`: as a parameter, or through **kwargs when the
    model's config has the switch (transformers 5 routes output_attentions that way)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    if name in params:
        return True
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return var_kw and hasattr(getattr(model, "config", None), name)


def prefill_kwargs(model: torch.nn.Module, kwargs: dict | None) -> tuple[dict, list[str]]:
    """The keyword arguments to trace with: every PREFILL_SWITCHES switch the model takes
    and would have on (given True, or on in its config) passed as False; with a note for
    each one turned off. The eager reference must run with the same arguments."""
    kwargs = dict(kwargs or {})
    notes = []
    config = getattr(model, "config", None)
    for name, what in PREFILL_SWITCHES.items():
        given = name in kwargs
        on = bool(kwargs[name]) if given else bool(getattr(config, name, False))
        if not on or not _takes_keyword(model, name):
            continue
        source = "given" if given else "on in the model's config"
        kwargs[name] = False
        notes.append(
            f"{name}={on} ({source}) would return {what}; a prefill program does not need"
            f" it: traced with {name}=False"
        )
    return kwargs, notes


def _is_tensor_tree(value) -> bool:
    """Whether value is tensors (and None/numbers) in containers torch.export can
    flatten; a KV-cache object is not."""
    from torch.utils._pytree import tree_flatten

    leaves, _ = tree_flatten(value)
    return all(
        leaf is None or isinstance(leaf, (torch.Tensor, bool, int, float)) for leaf in leaves
    )


def _without_extras(out, notes: list[str], where: str = "output"):
    """The model's output with PREFILL_EXTRA_FIELDS and non-tensor objects (a cache)
    removed, in the same container type; a note per removal (recorded once)."""

    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)

    if isinstance(out, torch.Tensor) or out is None:
        return out
    if isinstance(out, dict):  # transformers' ModelOutput is an OrderedDict
        kept = {}
        for key, value in out.items():
            if value is None:
                continue
            if key in PREFILL_EXTRA_FIELDS:
                note(
                    f"{where}.{key} ({type(value).__name__}) dropped: a prefill program"
                    " does not return it"
                )
            elif not _is_tensor_tree(value):
                _drop_cache(value, f"{where}.{key}", note)
            else:
                kept[key] = _without_extras(value, notes, f"{where}.{key}")
        try:
            return type(out)(**kept)
        except TypeError:  # a dict subclass that does not take its fields by keyword
            return dict(kept)
    if isinstance(out, (tuple, list)) and not hasattr(out, "_fields"):
        kept = []
        for i, value in enumerate(out):
            if value is not None and not _is_tensor_tree(value):
                _drop_cache(value, f"{where}[{i}]", note)
            else:
                kept.append(_without_extras(value, notes, f"{where}[{i}]"))
        return type(out)(kept)
    return out


def _drop_cache(value, where: str, note) -> None:
    """Note a KV-cache object dropped from the outputs; refuse any other object."""
    kind = type(value).__name__
    if "Cache" in kind:  # transformers' Cache classes (DynamicCache, StaticCache, ...)
        note(f"{where} ({kind}) dropped: a prefill program does not return a KV cache")
        return
    raise FrontendError(
        f"{where} is a {kind}, which torch.export cannot return. Fix: return tensors (or"
        " tuples, lists, dicts and ModelOutputs of them) from forward"
    )


@contextlib.contextmanager
def prefill_outputs(model: torch.nn.Module, notes: list[str]) -> Iterator[torch.nn.Module]:
    """The model with its forward returning only what a prefill program needs
    (_without_extras), for torch.export and for the eager reference alike. The wrapper
    is an instance attribute, so module paths (checkpoint names) stay the model's own."""
    original = model.forward

    @functools.wraps(original)
    def forward(*args, **kwargs):
        return _without_extras(original(*args, **kwargs), notes)

    model.forward = forward
    try:
        yield model
    finally:
        del model.forward


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
    """torch.export of the model; FrontendError (the export error chained) when it fails."""
    try:
        return torch.export.export(model, tuple(example_inputs), kwargs=kwargs or {}, strict=strict)
    except FrontendError:
        raise  # the model's outputs, refused by name (_drop_cache)
    except Exception as e:
        raise FrontendError(_export_failure(model, e)) from e


def _export_failure(model: torch.nn.Module, e: Exception) -> str:
    """The cause of an export failure in one line, and what to change."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    name = type(model).__name__
    if "in output, which is not a known type" in str(e):
        fix = (
            "return tensors (or tuples, lists, dicts and ModelOutputs of them) from forward;"
            " the front end drops KV caches it recognises, this object it does not"
        )
    elif "data-dependent" in str(e) or "GuardOnDataDependent" in type(e).__name__:
        fix = (
            "the forward branches on tensor values (e.g. on an attention mask or padding);"
            " pass inputs or kwargs that avoid the branch, or rewrite it with torch.cond"
        )
    else:
        fix = "make forward traceable by torch.export (see the chained exception)"
    return f"torch.export cannot trace {name}: {type(e).__name__}: {text[:300]}. Fix: {fix}"


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
    kwargs, notes = prefill_kwargs(model, kwargs)
    with prefill_outputs(model, notes) as traced:
        ep = export(traced, example_inputs, kwargs, strict)
    try:
        ep = decompose(ep)
    except Exception as e:
        raise FrontendError(
            f"decomposing {type(model).__name__}'s exported graph failed: {type(e).__name__}:"
            f" {str(e).strip()[:300]}. Fix: see the chained exception (an op without a"
            " decomposition can be added to compiler.frontend.KEEP)"
        ) from e
    g = to_graph(ep)
    g.stats["notes"] = notes
    g.stats["kwargs"] = {k: v for k, v in kwargs.items() if isinstance(v, (bool, int, float, str))}
    drop_asserts(g)
    g.stats["folded"] = fold_constants(g)
    g.stats["nodes"] = len(g.call_nodes())
    return g


def tensor_bytes(value: torch.Tensor, dtype: VDType, what: str = "constant") -> bytes:
    """A constant's DRAM image in the given storage dtype (contract.blob's layout)."""
    t = value.detach().contiguous()
    host = t.to(torch.float32) if t.is_floating_point() else t
    return np.ascontiguousarray(encode_tensor(host.numpy(), dtype.value, what)).tobytes()
