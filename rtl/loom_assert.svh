// Assertion macros for the Loom RTL, in the shape of Ibex's (lowRISC prim_assert): every
// module ends with an assertion section written with these, and every build compiles
// them in (Verilator --assert; +verilator+noassert switches them off at run time).
//
// A failing assertion calls $error with the assertion's name. The simulation harness
// replaces Verilator's $stop handler (sim/rtl/hdl/loom_lockstep.cc, VL_USER_STOP), so the
// first failure is latched with its source line and instance and the run is stopped and
// reported with the instruction that was executing (sim/rtl/backend.py AssertionFailure),
// like a lockstep divergence.
//
// Conventions: names are UpperCamelCase and say what must hold; the default clock is
// clk_i and the default reset is rst_ni (active low, the property is not checked while
// it is low).
`ifndef LOOM_ASSERT_SVH
`define LOOM_ASSERT_SVH

// __prop holds at every rising edge of __clk outside reset.
`define ASSERT(__name, __prop, __clk = clk_i, __rst = !rst_ni) \
  __name: assert property (@(posedge __clk) disable iff (__rst) (__prop)) \
    else $error("[ASSERT FAILED] %s", `"__name`");

// __prop never holds.
`define ASSERT_NEVER(__name, __prop, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT(__name, !(__prop), __clk, __rst)

// No X or Z on __sig outside reset. Verilator simulates two states, so there this
// compiles to a check that cannot fail; four-state simulators check it. Under Verilator
// the same guarantee comes from resetting every register (tests/test_rtl_structure.py).
`define ASSERT_KNOWN(__name, __sig, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT(__name, !$isunknown(__sig), __clk, __rst)

// A valid/ready handshake: once __valid is high without __ready, __valid stays high and
// __payload stays stable until the transfer happens.
`define ASSERT_HELD(__name, __valid, __ready, __payload, __clk = clk_i, __rst = !rst_ni) \
  `ASSERT(__name, (__valid) && !(__ready) |=> (__valid) && $stable(__payload), __clk, __rst)

`endif  // LOOM_ASSERT_SVH
