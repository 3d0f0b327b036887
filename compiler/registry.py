"""Op registry: one lowering per exact ATen overload, registered by decorator.

    @lowering(aten.add.Tensor, aten.add.Scalar)
    def lower_add(ctx: LowerCtx, node: fx.Node, args: list, kwargs: dict) -> TensorRef: ...

A lowering emits instructions through ctx (a compiler.context.LowerCtx) and returns
the TensorRef(s) of the node's value. It raises Unsupported (with a reason) for
argument patterns it cannot handle; the partitioner then runs that node on the CPU and
the compile report says why.
`bf16_args` names the argument positions that the device only reads as bf16 matrix
operands, so constants used only there are stored in DRAM as bf16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class Unsupported(Exception):
    """This node (with these arguments) has no device lowering."""


@dataclass(frozen=True)
class Lowering:
    fn: Callable
    bf16_args: tuple[int, ...] = ()


REGISTRY: dict[object, Lowering] = {}


def lowering(*targets, bf16_args: tuple[int, ...] = ()):
    def register(fn):
        for t in targets:
            if t in REGISTRY:
                raise ValueError(f"two lowerings registered for {t}")
            REGISTRY[t] = Lowering(fn, bf16_args)
        return fn

    return register


def op_name(target) -> str:
    """'aten.add.Tensor' for an OpOverload; a readable name for anything else."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._schema.name.split('::')[-1]}.{target._overloadname}"
    return getattr(target, "__name__", str(target))
