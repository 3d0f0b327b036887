"""The Loom contract: every fact the compiler, the ISA model, the backends, the testbench
and the RTL share, defined once. It imports nothing else of Loom.

isa        instruction formats (a role per field), opcodes, enums, faults, encode/decode
regions    what each instruction reads and writes, and its operand faults: resolve()
numerics   the numerics contract, executable (bf16, special functions, reductions)
hw         the hardware configuration (configs/hw/*.yaml) and the simulated clock
csr        the host control/status register map
asm        assembler and disassembler text
blob       the program blob format, Program, tensor layouts in DRAM, the decoded listing
lockstep   the lockstep checker's interface (region record, reasons, digest)
gen        generators: rtl/loom_pkg.sv, docs/isa.md tables, the lockstep C++ header
"""
