"""The follow-actual reference: what one layer should have produced from the device's own
values, computed by PyTorch under the device's numerics contract.

Two things make it a sharp reference rather than a loose one:

- **Device numerics.** The contract (docs/isa.md) says the matrix unit takes bf16
  operands and accumulates in fp32, and everything else is fp32. So every matrix product
  (mm, bmm, addmm, linear, scaled_dot_product_attention's two products) that ran on the
  device is evaluated here with its operands rounded to bf16 by PyTorch's own cast
  (independent of Loom's numerics code); nodes the compiler left to the host run as
  exported. What is left between the device and this reference is the order of fp32
  sums and the special functions' last bits, far below a bf16 ulp.
- **Nesting.** A layer that contains checkpointed layers (a block holds its norms,
  attention and MLP) takes their outputs from the device instead of recomputing them,
  so each node is checked once, from the device's own inputs, and errors do not
  compound. The values such a layer computes for its inner layers' inputs (a residual
  sum feeding the second norm; attention's softmax product feeding the output
  projection) are compared too: they are nobody else's output.

`targets()` yields (what, expected, actual) pairs for one layer: its output and those
inner inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import fx

aten = torch.ops.aten


def _bf16(t):
    """Round a floating-point tensor to bf16 (RNE), as fp32."""
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        return t.to(torch.bfloat16).to(torch.float32)
    return t


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    """Scaled dot-product attention with the matrix unit's operands: Q, K, V and the
    probabilities P in bf16; scores, mask and softmax in fp32."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (_bf16(q) @ _bf16(k).transpose(-2, -1)) * scale
    if is_causal:
        keep = torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    elif attn_mask is not None:
        s = (
            s.masked_fill(~attn_mask, float("-inf"))
            if attn_mask.dtype == torch.bool
            else s + attn_mask
        )
    return _bf16(torch.softmax(s, -1)) @ _bf16(v)


# ATen matrix products -> the same product with bf16 operands (bias and init in fp32).
DEVICE_NUMERICS = {
    aten.mm.default: lambda a, b: torch.mm(_bf16(a), _bf16(b)),
    aten.bmm.default: lambda a, b: torch.bmm(_bf16(a), _bf16(b)),
    aten.addmm.default: lambda bias, a, b, **kw: torch.addmm(bias, _bf16(a), _bf16(b), **kw),
    aten.linear.default: lambda x, w, b=None: torch.nn.functional.linear(_bf16(x), _bf16(w), b),
    aten.scaled_dot_product_attention.default: _sdpa,
}


def _run(node: fx.Node, env: dict, on_device: bool):
    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: env[n.name])
    fn = DEVICE_NUMERICS.get(node.target) if on_device else None
    if fn is None:
        return node.target(*args, **kwargs)
    out = fn(*args, **kwargs)
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):  # the exported op's strides: later views rely on them
        out = torch.empty_strided(val.shape, val.stride(), dtype=out.dtype).copy_(out)
    return out


def inner_layers(program, layer: dict) -> list[dict]:
    """The checkpointed layers whose nodes lie inside this one's."""
    mine = set(layer["nodes"])
    return [la for la in program.layers if la["id"] != layer["id"] and set(la["nodes"]) < mine]


def targets(program, layer: dict, checkpoints: dict) -> Iterator[tuple[str, object, object]]:
    """(what, expected, device value) for the layer's output and for the inputs of its
    inner layers that its own nodes compute."""
    graph = program.graph
    on_host = {op["node"] for op in program.meta["host_ops"]}
    got = checkpoints[layer["id"]]
    inner = [la for la in inner_layers(program, layer) if la["id"] in checkpoints]
    from_device = {la["node"]: checkpoints[la["id"]]["output"] for la in inner}
    env: dict[str, object] = dict(graph.constants)
    for b, value in zip(layer["inputs"], got["inputs"], strict=True):
        env[b["name"]] = value
    wanted = set(layer["nodes"])
    for node in graph.graph.nodes:  # non-tensor inputs (flags) come from the export
        if node.name in wanted:
            for d in node.all_input_nodes:
                env.setdefault(d.name, d.meta.get("val"))
    computed: set[str] = set()
    with torch.no_grad():
        for node in graph.graph.nodes:
            if node.op != "call_function" or node.name not in wanted:
                continue
            if node.name in from_device:
                env[node.name] = from_device[node.name]
                continue
            env[node.name] = _run(node, env, node.name not in on_host)
            computed.add(node.name)
    yield "output", env[layer["node"]], got["output"]
    for la in inner:
        for b, value in zip(la["inputs"], checkpoints[la["id"]]["inputs"], strict=True):
            if b["name"] in computed:
                yield f"input {b['name']} of {la['path']}", env[b["name"]], value
