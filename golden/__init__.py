"""Golden checks: PyTorch fp32 values of every checkpoint and the comparisons.

capture() runs the compiled (decomposed, folded) graph in fp32 with PyTorch and keeps
the value of every node, keyed by node name; the layer table maps module paths to
nodes. Two comparisons per layer:
- end to end: the device's tensor against PyTorch's from the same model inputs;
- follow-actual: the layer's own nodes re-run from the device's inputs to that layer
  under the device's numerics, taking the device's values for the checkpointed layers
  inside it (golden/reference.py), so errors do not compound and small ones show.
A layer passes when follow-actual is within the tolerance of its kind and end to end
within the model-wide budget (docs/golden.md). Because the golden values come from the
compiler's own front end (exported, decomposed, folded), a bug there would be on both
sides: check_outputs compares the program's outputs with the original model run eagerly.
"""

from __future__ import annotations

import torch
from torch import fx

from golden import reference
from golden.metrics import END_TO_END, TOLERANCES, compare, tolerance_for


def _env_for_inputs(graph, inputs) -> dict[str, object]:
    env: dict[str, object] = dict(graph.constants)
    tensors = iter([x for x in inputs if isinstance(x, torch.Tensor)])
    for name in graph.user_inputs:
        node = next(n for n in graph.graph.nodes if n.name == name)
        val = node.meta.get("val")
        env[name] = next(tensors) if isinstance(val, torch.Tensor) else val
    return env


def execute_nodes(graph, env: dict[str, object], names: list[str] | None = None) -> dict:
    """Run call_function nodes (all, or those named) in graph order with env values."""
    wanted = set(names) if names is not None else None
    with torch.no_grad():
        for node in graph.graph.nodes:
            if node.op != "call_function" or (wanted is not None and node.name not in wanted):
                continue
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: env[n.name])
            env[node.name] = node.target(*args, **kwargs)
    return env


def capture(graph, inputs) -> dict[str, object]:
    """PyTorch fp32 value of every node for these inputs."""
    return execute_nodes(graph, _env_for_inputs(graph, inputs))


def eager_outputs(model: torch.nn.Module, inputs, kwargs: dict | None = None) -> list:
    """The original model's outputs for these inputs, run eagerly, flattened as
    torch.export flattens a program's outputs (tensors in pytree order)."""
    from torch.utils._pytree import tree_flatten

    with torch.no_grad():
        out = model(*inputs, **(kwargs or {}))
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def check_outputs(expected: list, actual: list) -> list[dict]:
    """The program's outputs against the eager model's, in order, end to end."""
    got = [t for t in actual if t is not None]
    if len(got) != len(expected):
        return [
            {
                "output": "all",
                "status": "fail",
                "reason": f"{len(got)} outputs, the eager model returns {len(expected)}",
            }
        ]
    rows = []
    for i, (e, a) in enumerate(zip(expected, got, strict=True)):
        m = compare(e.float(), a.float())
        ok = END_TO_END.accepts(m)
        rows.append({"output": i, "metrics": m, "status": "pass" if ok else "fail"})
    return rows


def check_layers(program, result, golden: dict) -> list[dict]:
    return [check_layer(program, result, golden, layer) for layer in program.layers]


def check_layer(program, result, golden: dict, layer: dict) -> dict:
    """One checkpoint against PyTorch: end to end and follow-actual."""
    got = result.checkpoints.get(layer["id"])
    row = {
        "id": layer["id"],
        "path": layer["path"],
        "kind": layer["kind"],
        "shape": layer["output"]["shape"],
    }
    if got is None:
        return row | {"status": "fail", "reason": "checkpoint never reached"}
    tol = tolerance_for(layer["kind"])
    e2e = compare(golden[layer["node"]], got["output"])
    # Follow-actual: the output and the inner layers' inputs this layer computes; the row
    # shows the worst, and fails if any is outside the tolerance.
    checked = [
        (what, compare(expected, actual))
        for what, expected, actual in reference.targets(program, layer, result.checkpoints)
    ]
    follow_ok = all(tol.accepts(m) for _, m in checked)
    what, fa = max(checked, key=lambda c: (not tol.accepts(c[1]), c[1].get("rel_l2", 1.0)))
    ok = END_TO_END.accepts(e2e) and follow_ok
    row.update(e2e=e2e, follow=fa | {"target": what}, status="pass" if ok else "fail")
    if not follow_ok:
        row["reason"] = (
            f"follow-actual {what}: rel L2 {fa.get('rel_l2', float('nan')):.2e},"
            f" far {fa.get('far_fraction', float('nan')):.3%}"
        )
    elif not ok:
        row["reason"] = (
            f"end to end: rel L2 {e2e.get('rel_l2', float('nan')):.2e},"
            f" max|err|/max|ref| {e2e.get('norm_max_abs', float('nan')):.2e}"
        )
    return row


__all__ = [
    "capture",
    "check_layer",
    "check_layers",
    "check_outputs",
    "eager_outputs",
    "compare",
    "execute_nodes",
    "reference",
    "TOLERANCES",
    "END_TO_END",
    "tolerance_for",
]
