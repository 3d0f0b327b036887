"""cocotb + pyuvm testbench of the Loom core (runs inside the simulator process).

bfm.py      the bus-functional layer: AXI4-Lite host port, DRAM front door, events
env.py      pyuvm components: host agent, memory agent, event monitor with watchdog,
            scoreboard against the ISA model (sim.ref)
lockstep.py the ISA model's side of the lockstep checker: expectations, explanations
serve.py    the test the parent process (sim.rtl.backend.VerilatorBackend) talks to
fpu.py      the floating-point block test's runner
"""
