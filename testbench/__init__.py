"""cocotb + pyuvm testbench of the Loom core (runs inside the simulator process).

bfm.py   the bus-functional layer: AXI4-Lite host port, DRAM front door, events
env.py   pyuvm components: host agent, memory agent, event monitor with watchdog,
         scoreboard against the ISA model (sim/ref.py)
serve.py the test the parent process (sim.verilator.VerilatorBackend) talks to
"""
