"""Lowerings, one module per family; importing this package registers them all."""

from compiler.ops import (  # noqa: F401
    attention,
    concat,
    conv,
    convert,
    elementwise,
    embedding,
    gather,
    matmul,
    norm,
    reduce,
    select,
    views,
)
