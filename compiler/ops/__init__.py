"""Lowerings, one module per family; importing this package registers them all."""

from compiler.ops import (  # noqa: F401
    attention,
    concat,
    elementwise,
    embedding,
    matmul,
    norm,
    reduce,
    views,
)
