"""Loom compiler: torch model -> versioned program blob for the Loom core.

program = compiler.compile(model, example_inputs, hw="default")
program.save("model.loom"); program = compiler.load("model.loom")

The blob format, the Program and the hardware config are the contract's
(contract.blob, contract.hw); they are re-exported here for the compiler's users.
"""

from compiler.pipeline import compile
from contract.blob import BlobError, Program, load
from contract.hw import DEFAULT_HW, HwConfig, load_hw

__all__ = ["compile", "load", "Program", "BlobError", "HwConfig", "DEFAULT_HW", "load_hw"]
