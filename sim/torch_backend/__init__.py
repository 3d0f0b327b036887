"""backend="torch": Loom programs on PyTorch (CPU, or CUDA for production speed).

backend.py   TorchBackend: plans each device segment once, replays it (CUDA graphs)
loops.py     finds the compiler's tile loops and batches them into tensor operations
numerics.py  the numerics contract on torch tensors, bit-identical with the ISA model
"""

from sim.torch_backend.backend import TorchBackend

__all__ = ["TorchBackend"]
