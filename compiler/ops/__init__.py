"""Lowerings, one module per family; importing this package registers them all."""

from compiler.ops import attention, elementwise, embedding, matmul, norm, views  # noqa: F401
