"""The follow-actual reference: what one layer should have produced from the device's own
values, computed by PyTorch under the device's numerics contract.

Two things make it a sharp reference rather than a loose one:

- **Device numerics.** The contract (docs/isa.md) says the matrix unit takes bf16
  operands and accumulates in fp32, and everything else is fp32. So every matrix product
  (mm, bmm, addmm, linear, convolution, scaled_dot_product_attention's two products)
  that ran on the device is evaluated here with its operands rounded to bf16 by
  PyTorch's own cast (independent of Loom's numerics code); nodes the compiler left to
  the host run as exported. What is left between the device and this reference is the
  order of fp32 sums and the special functions' last bits, far below a bf16 ulp.
  Attention the compiler tiled over the key sequence (an online softmax: P rounded to
  bf16 per tile, the accumulator rescaled between tiles) is followed tile by tile with
  the compiler's tile sizes (`sdpa_tiled`), since those roundings are the contract's.
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

import functools
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
    # A row masked throughout is 0, as PyTorch's sdpa gives (its safe softmax), not NaN.
    p = torch.softmax(s, -1).masked_fill(s.amax(-1, keepdim=True) == float("-inf"), 0.0)
    return _bf16(p) @ _bf16(v)


NEG_FLT_MAX = -torch.finfo(torch.float32).max


def sdpa_tiled(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, *,
               tiles: tuple[int, int], **_):  # fmt: skip
    """Attention as the tiled sequence of docs/isa.md ("Attention tiled over the key
    sequence") computes it, in PyTorch fp32 with its own exp: per block of tq query rows,
    an online softmax over K/V tiles of ts keys (running max from -FLT_MAX, running sum,
    fp32 accumulator rescaled by exp(m - m'), P rounded to bf16 per tile), causal tiles
    that mask every row of the block skipped, o * recip(max(l, 1)) at the end.
    q [.., T, D], k [.., S, D], v [.., S, Dv], mask broadcastable to [.., T, S]."""
    tq, ts = tiles
    T, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if attn_mask is not None:
        attn_mask = attn_mask.expand(*q.shape[:-2], T, S)  # [.., T, S]
    out = q.new_empty(*q.shape[:-1], v.shape[-1])  # [.., T, Dv]
    for t0 in range(0, T, tq):
        qb = _bf16(q[..., t0 : t0 + tq, :])  # [.., nt, D]
        nt = qb.shape[-2]
        for j, s0 in enumerate(range(0, S, ts)):
            if is_causal and s0 > 0 and s0 > t0 + nt - 1:
                break
            kt, vt = _bf16(k[..., s0 : s0 + ts, :]), _bf16(v[..., s0 : s0 + ts, :])
            s = (qb @ kt.transpose(-1, -2)) * scale  # [.., nt, ns]
            if is_causal:
                rows = torch.arange(t0, t0 + nt)[:, None]  # [nt, 1]
                cols = torch.arange(s0, s0 + s.shape[-1])[None]  # [1, ns]
                s = s.masked_fill(cols > rows, float("-inf"))
            if attn_mask is not None:
                m_tile = attn_mask[..., t0 : t0 + nt, s0 : s0 + ts]  # [.., nt, ns]
                if m_tile.dtype == torch.bool:
                    s = s.masked_fill(~m_tile, float("-inf"))
                else:
                    s = s + m_tile
            row_max = s.amax(-1, keepdim=True)  # [.., nt, 1]
            if j == 0:
                m = row_max.clamp(min=NEG_FLT_MAX)
                p = torch.exp(s - m)  # [.., nt, ns]
                l, o = p.sum(-1, keepdim=True), _bf16(p) @ vt  # [.., nt, 1], [.., nt, Dv]
            else:
                m_new = torch.maximum(m, row_max)
                p, c = torch.exp(s - m_new), torch.exp(m - m_new)
                l = l * c + p.sum(-1, keepdim=True)
                o = o * c + _bf16(p) @ vt
                m = m_new
        out[..., t0 : t0 + nt, :] = o * (1 / l.clamp(min=1.0))
    return out


# ATen matrix products -> the same product with bf16 operands (bias and init in fp32).
DEVICE_NUMERICS = {
    aten.mm.default: lambda a, b: torch.mm(_bf16(a), _bf16(b)),
    aten.bmm.default: lambda a, b: torch.bmm(_bf16(a), _bf16(b)),
    aten.addmm.default: lambda bias, a, b, **kw: torch.addmm(bias, _bf16(a), _bf16(b), **kw),
    aten.linear.default: lambda x, w, b=None: torch.nn.functional.linear(_bf16(x), _bf16(w), b),
    aten.scaled_dot_product_attention.default: _sdpa,
    # compiler/ops/conv.py: im2col on the matrix unit (bias added in fp32).
    aten.convolution.default: lambda x, w, b, *rest: aten.convolution.default(
        _bf16(x), _bf16(w), b, *rest
    ),
}


def _run(node: fx.Node, env: dict, on_device: bool):
    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: env[n.name])
    fn = DEVICE_NUMERICS.get(node.target) if on_device else None
    tiles = node.meta.get("loom_sdpa_tiles")  # compiler/ops/attention.py chose the tiled path
    if on_device and tiles is not None:
        fn = functools.partial(sdpa_tiled, tiles=tiles)
    if fn is None:
        return node.target(*args, **kwargs)
    out = fn(*args, **kwargs)
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):  # the exported op's strides: later views rely on them
        out = torch.empty_strided(val.shape, val.stride(), dtype=out.dtype).copy_(out)
    return out


def _as_graph_dtype(value, node: fx.Node | None):
    """A checkpointed value in its graph dtype: the device holds a boolean mask it made
    as fp32 1.0 / +0.0 (compiler/ops/select.py), PyTorch as bool."""
    val = node.meta.get("val") if node is not None else None
    if (
        isinstance(value, torch.Tensor)
        and isinstance(val, torch.Tensor)
        and val.dtype == torch.bool
        and value.is_floating_point()
    ):
        return value != 0
    return value


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
    nodes = {n.name: n for n in graph.graph.nodes}
    for b, value in zip(layer["inputs"], got["inputs"], strict=True):
        env[b["name"]] = _as_graph_dtype(value, nodes.get(b["name"]))
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
