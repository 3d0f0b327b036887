"""The runtime: a program's segments run on one DRAM image (run.py), device segments on
a Backend made by name (backend.py), host ops with PyTorch (host.py), tensors bound to
the image (image.py)."""

from sim.runtime.backend import Backend, backend_names, make_backend, register_backend
from sim.runtime.run import RunResult, execute, run

__all__ = [
    "Backend",
    "RunResult",
    "backend_names",
    "execute",
    "make_backend",
    "register_backend",
    "run",
]
