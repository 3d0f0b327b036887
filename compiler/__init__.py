"""Loom compiler: torch model -> versioned program blob for the Loom core.

program = compiler.compile(model, example_inputs, hw="default")
program.save("model.loom"); program = compiler.load("model.loom")
"""

from compiler.hw import DEFAULT_HW, HwConfig, load_hw
from compiler.pipeline import compile
from compiler.program import BlobError, Program, load

__all__ = ["compile", "load", "Program", "BlobError", "HwConfig", "DEFAULT_HW", "load_hw"]
