// The simulator's main loop: Verilator's model scheduled by cocotb's VPI callbacks, with
// a waveform dump that can be switched on and off while the simulation runs.
//
// Why our own main: Verilator ignores $dumpon/$dumpoff, and the main that cocotb ships
// either dumps every time step or none. Loom traces windows (one layer of GPT-2, a few
// instructions around a divergence), so the dump is gated by loom_wave_enable(), which
// the lockstep checker (loom_lockstep.cc) calls as the core enters and leaves the window.
//
// The trace file is named by the environment variable LOOM_WAVES_FILE; without it (or in
// a build without --trace-fst) nothing is traced. A coverage build (Verilator --coverage-*)
// writes its counts to $LOOM_RTL_COVERAGE/sim-<pid>.dat when the simulation ends.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

#if VM_TRACE
#include "verilated_fst_c.h"
#endif

extern "C" void vlog_startup_routines_bootstrap(void);

namespace {

uint64_t g_time = 0;  // simulation time in the design's time precision
bool g_wave_on = false;
#if VM_TRACE
VerilatedFstC* g_fst = nullptr;
#endif

// cocotb's callbacks may change signals; run them until nothing changes any more.
void settle_value_callbacks() {
  while (VerilatedVpi::callValueCbs()) {
  }
}

void end_of_simulation() {
  static bool ended = false;  // from the exit callback and from main's end
  if (ended) return;
  ended = true;
  VerilatedVpi::callCbs(cbEndOfSimulation);
#if VM_TRACE
  if (g_fst != nullptr) g_fst->close();
#endif
#if VM_COVERAGE
  if (const char* dir = std::getenv("LOOM_RTL_COVERAGE"); dir != nullptr && *dir != '\0') {
    const std::string path = std::string(dir) + "/sim-" + std::to_string(getpid()) + ".dat";
    Verilated::threadContextp()->coveragep()->write(path.c_str());
  }
#endif
}

}  // namespace

double sc_time_stamp() { return static_cast<double>(g_time); }

extern "C" {

// Switch the waveform dump on or off from the next time step; returns 1 when this build
// and run record a trace at all.
int loom_wave_enable(int on) {
  g_wave_on = on != 0;
#if VM_TRACE
  return g_fst != nullptr;
#else
  return 0;
#endif
}

int loom_wave_active() { return g_wave_on ? 1 : 0; }

}  // extern "C"

int main(int argc, char** argv) {
  Verilated::commandArgs(argc, argv);
  std::unique_ptr<Vtop> top(new Vtop(""));
  Verilated::fatalOnVpiError(false);  // cocotb reports its own VPI errors

#if VM_TRACE
  if (const char* path = std::getenv("LOOM_WAVES_FILE"); path != nullptr && *path != '\0') {
    Verilated::traceEverOn(true);
    g_fst = new VerilatedFstC;
    top->trace(g_fst, 99);
    g_fst->open(path);
  }
#endif

  vlog_startup_routines_bootstrap();
  Verilated::addExitCb([](void*) { end_of_simulation(); }, nullptr);
  VerilatedVpi::callCbs(cbStartOfSimulation);
  settle_value_callbacks();

  const uint64_t kNoEvents = ~0ULL;
  while (!Verilated::gotFinish()) {
    // Evaluate this time step until neither the design nor cocotb changes anything.
    do {
      do {
        top->eval_step();
        VerilatedVpi::clearEvalNeeded();
        VerilatedVpi::doInertialPuts();
        settle_value_callbacks();
      } while (VerilatedVpi::evalNeeded());
      VerilatedVpi::callCbs(cbReadWriteSynch);
      VerilatedVpi::doInertialPuts();
      settle_value_callbacks();
    } while (VerilatedVpi::evalNeeded());
    top->eval_end_step();
    VerilatedVpi::callCbs(cbReadOnlySynch);

#if VM_TRACE
    if (g_fst != nullptr && g_wave_on) g_fst->dump(g_time);
#endif

    // cocotb drives time: jump to its next timed callback (or the design's next event).
    const uint64_t next_cocotb = VerilatedVpi::cbNextDeadline();
    const uint64_t next_design = top->eventsPending() ? top->nextTimeSlot() : kNoEvents;
    const uint64_t next = next_cocotb < next_design ? next_cocotb : next_design;
    if (next == kNoEvents) break;
    g_time = next;
    VerilatedVpi::callCbs(cbNextSimTime);
    settle_value_callbacks();
    VerilatedVpi::callTimedCbs();
    settle_value_callbacks();
  }

  top->final();
  end_of_simulation();
#if VM_TRACE
  delete g_fst;
  g_fst = nullptr;
#endif
  return Verilated::threadContextp()->errorCount() > 0 ? 1 : 0;
}
