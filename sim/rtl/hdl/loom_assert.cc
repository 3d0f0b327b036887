// RTL assertion failures, latched for the testbench. Every build compiles the RTL's
// assertions in (Verilator --assert; rtl/loom_assert.svh). A failing assertion, and a
// `unique case` that matched no item, print Verilator's "%Error: ... Assertion failed"
// line and call vl_stop; this file replaces vl_stop (the build defines VL_USER_STOP), so
// instead of ending the process the first failure is latched with its source line and
// time and the number of instructions retired before it. The simulation top polls
// loom_assert_failed() every cycle and stops the segment; the testbench reads the latch
// (loom_assert_end) and the run fails naming the assertion and the instruction in flight.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "verilated.h"

extern "C" int64_t loom_ls_retired();

namespace {

struct Latch {
  bool failed = false;
  char file[512] = {0};
  int64_t line = 0;
  uint64_t time = 0;  // simulation time, in the design's time precision
  int64_t retired = 0;
  int64_t count = 0;  // failures seen this segment (the first is latched)
} g;

}  // namespace

// Verilator calls this for $stop, for $error in an assertion's action and for a
// violated unique/priority case (when the error limit is reached, which is the first).
void vl_stop(const char* filename, int linenum, const char* hier) {
  (void)hier;  // empty for assertions; the printed message names the instance
  ++g.count;
  if (g.failed) return;
  g.failed = true;
  std::snprintf(g.file, sizeof g.file, "%s", filename ? filename : "");
  g.line = linenum;
  g.time = Verilated::threadContextp()->time();
  g.retired = loom_ls_retired();
  std::fflush(stdout);
}

extern "C" {

// DPI, from the simulation top: 1 once an assertion has failed in this segment.
int loom_assert_failed() { return g.failed ? 1 : 0; }

// ctypes, from the testbench: a segment starts.
void loom_assert_begin() { g = Latch{}; }

// The first failure of the segment: 0 when none; else copies the source file into
// file[cap] and fills out[4] with line, time, instructions retired before it, failures.
int64_t loom_assert_end(char* file, int64_t cap, int64_t* out) {
  if (!g.failed) return 0;
  std::snprintf(file, static_cast<size_t>(cap), "%s", g.file);
  out[0] = g.line;
  out[1] = static_cast<int64_t>(g.time);
  out[2] = g.retired;
  out[3] = g.count;
  return 1;
}

}  // extern "C"
