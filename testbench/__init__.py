"""cocotb + pyuvm testbench of the Loom core (runs inside the simulator process).

bfm.py          the bus-functional layer: AXI4-Lite host master (cocotbext-axi), DRAM
                front door and back door, lockstep checker handles, core events
transactions.py sequence items and analysis transactions
agents.py       host agent (driver, sequencer, core monitor), memory agent
scoreboard.py   the RTL against the ISA model (sim.ref), fed by analysis ports
env.py          the environment: agents and scoreboard, connected
sequences.py    reset, and one sequence per device segment
serve.py        the test the parent process (sim.rtl.backend.VerilatorBackend) talks to
lockstep.py     the ISA model's side of the lockstep checker: expectations, explanations
fpu.py          the floating-point block test's runner
"""
