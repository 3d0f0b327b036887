// Lockstep checking of the RTL against the ISA model, one retired instruction at a time,
// in compiled code (nothing crosses into Python per instruction).
//
// Before a run the testbench hands over, per instruction index of the segment, the pc the
// ISA model retired and a digest of the region that instruction wrote (its destination
// in SPAD, ACC or DRAM) after it ran in the ISA model. While the RTL runs:
//   - every scratchpad/accumulator write is mirrored into a shadow copy
//     (loom_ls_sram_write, from the simulation top);
//   - at every retirement (loom_ls_retire) the same digest is computed over the shadow
//     or the simulated DRAM and compared; the retirement is appended to the trace
//     (pc, cycle, digest, issue cycle) that becomes the instruction log.
// The first disagreement (pc, digest, or retiring more than the ISA model did) is
// latched with a copy of the region's actual words; the top raises `diverge` and the
// testbench stops the run and reports it.
//
// The waveform window (loom_ls_tick, traced builds only) switches the dump of
// loom_sim_main.cc on while the core's pc or the cycle count is inside the window.
//
// The record layout, region kinds, reasons, window modes and digest constants are the
// contract's (contract/lockstep.py), generated into loom_lockstep_gen.h.
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>

#include "loom_lockstep_gen.h"
#include "svdpi.h"

extern "C" {
uint8_t* loom_dram_base();
uint64_t loom_dram_size();
int loom_wave_enable(int on);
}

namespace {

using loom_lockstep::Region;
using loom_lockstep::kDigestOffset;
using loom_lockstep::kDigestStep;
using loom_lockstep::kReasonAgree;
using loom_lockstep::kReasonExtra;
using loom_lockstep::kReasonPc;
using loom_lockstep::kReasonValue;
using loom_lockstep::kRegionDram;
using loom_lockstep::kRegionNone;
using loom_lockstep::kRegionSpad;
using loom_lockstep::kWindowAll;
using loom_lockstep::kWindowCycles;
using loom_lockstep::kWindowOff;
using loom_lockstep::kWindowPc;

struct TraceRecord {
  uint64_t pc;
  uint64_t cycle;
  uint64_t digest;
  uint64_t issue_cycle;
};

struct State {
  int64_t n_expected = 0;
  const uint32_t* exp_pc = nullptr;
  const uint64_t* exp_digest = nullptr;
  const Region* regions = nullptr;
  TraceRecord* trace = nullptr;
  int64_t trace_cap = 0;
  int64_t retired = 0;
  std::deque<int64_t> issued;  // issue cycles of the instructions in flight, oldest first
  uint32_t* scratch = nullptr;  // the diverging region's actual words
  int64_t scratch_cap = 0;
  int64_t lanes = 0;
  std::vector<uint32_t> shadow[2];  // SPAD, ACC: one 32-bit word per element
  // The first divergence.
  int64_t reason = kReasonAgree;
  int64_t div_index = 0, div_pc = 0, div_cycle = 0, div_words = 0;
  uint64_t div_actual = 0, div_expected = 0;
  // Waveform window: a loom_lockstep::WindowMode and its range.
  int64_t wave_mode = kWindowOff, wave_lo = 0, wave_hi = 0;
  bool wave_on = false;
};

State g;

// Word j of region r (row-major), or false when it lies outside the memory.
bool region_word(const Region& r, int64_t j, uint32_t* out) {
  const int64_t row = j / r.cols, col = j % r.cols;
  const int64_t elem = row * r.row_stride + col * r.col_stride;
  if (r.kind == kRegionDram) {
    const uint64_t a = static_cast<uint64_t>(r.addr + elem * r.esize);
    if (loom_dram_base() == nullptr || a + r.esize > loom_dram_size()) return false;
    uint32_t w = 0;
    std::memcpy(&w, loom_dram_base() + a, static_cast<size_t>(r.esize));
    *out = w;
    return true;
  }
  const auto& mem = g.shadow[r.kind == kRegionSpad ? 0 : 1];
  const int64_t e = r.addr + elem;
  if (e < 0 || e >= static_cast<int64_t>(mem.size())) return false;
  *out = mem[e];
  return true;
}

// The digest the ISA model computes (contract.lockstep.digest): sum over j of
// (word_j + kDigestOffset) * (j * kDigestStep | 1), modulo 2^64. A change of any single word
// changes it (the multiplier is odd), and so does moving a value to another position.
uint64_t digest(const Region& r, bool keep_words) {
  if (r.kind == kRegionNone || r.rows <= 0 || r.cols <= 0) return 0;
  uint64_t d = 0;
  const int64_t n = r.rows * r.cols;
  for (int64_t j = 0; j < n; ++j) {
    uint32_t w = 0;
    if (!region_word(r, j, &w)) w = 0xFFFFFFFFu;  // outside: cannot match a real digest
    d += (static_cast<uint64_t>(w) + kDigestOffset) *
         ((static_cast<uint64_t>(j) * kDigestStep) | 1ULL);
    if (keep_words && j < g.scratch_cap) g.scratch[j] = w;
  }
  if (keep_words) g.div_words = n < g.scratch_cap ? n : g.scratch_cap;
  return d;
}

void latch(int64_t reason, int64_t index, int64_t pc, int64_t cycle, uint64_t actual,
           uint64_t expected) {
  g.reason = reason;
  g.div_index = index;
  g.div_pc = pc;
  g.div_cycle = cycle;
  g.div_actual = actual;
  g.div_expected = expected;
}

}  // namespace

extern "C" {

// ------------------------------------------------------------------ testbench (ctypes)

// A new segment: the ISA model's expectations and the buffers the results go to. The
// arrays belong to the caller and must outlive the segment. The shadow SRAMs persist
// across segments, like the RTL's SRAMs.
void loom_ls_configure(int64_t n_expected, const uint32_t* exp_pc, const uint64_t* exp_digest,
                       const int64_t* regions, uint64_t* trace, int64_t trace_cap,
                       uint32_t* scratch, int64_t scratch_cap, int64_t lanes, int64_t spad_elems,
                       int64_t acc_elems) {
  g.n_expected = n_expected;
  g.exp_pc = exp_pc;
  g.exp_digest = exp_digest;
  g.regions = reinterpret_cast<const Region*>(regions);
  g.trace = reinterpret_cast<TraceRecord*>(trace);
  g.trace_cap = trace_cap;
  g.retired = 0;
  g.issued.clear();  // a faulted segment may leave instructions that never retired
  g.scratch = scratch;
  g.scratch_cap = scratch_cap;
  g.lanes = lanes;
  if (static_cast<int64_t>(g.shadow[0].size()) != spad_elems) g.shadow[0].assign(spad_elems, 0);
  if (static_cast<int64_t>(g.shadow[1].size()) != acc_elems) g.shadow[1].assign(acc_elems, 0);
  g.reason = kReasonAgree;
  g.div_words = 0;
}

// Retirements recorded in this segment (the trace holds min(count, capacity)).
int64_t loom_ls_retired() { return g.retired; }

// The first divergence of this segment: 0 when none, else fills out[8] with
// reason, index, pc, cycle, actual digest, expected digest, words copied to scratch.
int64_t loom_ls_divergence(int64_t* out) {
  if (g.reason == kReasonAgree) return 0;
  out[0] = g.reason;
  out[1] = g.div_index;
  out[2] = g.div_pc;
  out[3] = g.div_cycle;
  out[4] = static_cast<int64_t>(g.div_actual);
  out[5] = static_cast<int64_t>(g.div_expected);
  out[6] = g.div_words;
  return 1;
}

// Copy the shadow of SPAD (mem 0) or ACC (mem 1) into out[n]: the RTL's SRAM contents
// as its write ports left them, for the whole-SRAM comparison at the end of a segment.
// Returns the words copied.
int64_t loom_ls_shadow(int64_t mem, uint32_t* out, int64_t n) {
  const auto& shadow = g.shadow[mem != 0 ? 1 : 0];
  const int64_t size = static_cast<int64_t>(shadow.size());
  const int64_t count = n < size ? n : size;
  if (count > 0) std::memcpy(out, shadow.data(), static_cast<size_t>(count) * sizeof(uint32_t));
  return count;
}

// The waveform window (see the file comment); mode 0 switches tracing off.
void loom_ls_wave_window(int64_t mode, int64_t lo, int64_t hi) {
  g.wave_mode = mode;
  g.wave_lo = lo;
  g.wave_hi = hi;
  g.wave_on = mode == kWindowAll;
  loom_wave_enable(g.wave_on ? 1 : 0);
}

// ------------------------------------------------------------------ simulation top (DPI)

void loom_ls_sram_write(int mem, int line, uint64_t mask, const svBitVecVal* data) {
  auto& shadow = g.shadow[mem != 0 ? 1 : 0];
  const int64_t base = static_cast<int64_t>(line) * g.lanes;
  for (int64_t l = 0; l < g.lanes; ++l) {
    if (((mask >> l) & 1ULL) == 0 || base + l >= static_cast<int64_t>(shadow.size())) continue;
    uint32_t w = data[l];
    if (mem == 0) w &= 0xFFFF0000u;  // the scratchpad keeps the bf16 half
    shadow[base + l] = w;
  }
}

// An instruction's unit started it at `cycle` (issue is in program order).
void loom_ls_issue(int64_t cycle) { g.issued.push_back(cycle); }

// Instruction at pc retired at `cycle` (at_issue: a control instruction, which retires
// in the cycle it issues); returns 1 once the run has diverged.
int loom_ls_retire(int pc, int64_t cycle, unsigned char at_issue) {
  const int64_t index = g.retired++;
  const uint32_t upc = static_cast<uint32_t>(pc);
  int64_t issue_cycle = cycle;
  if (!at_issue && !g.issued.empty()) {
    issue_cycle = g.issued.front();
    g.issued.pop_front();
  }
  uint64_t d = 0;
  if (index < g.n_expected && g.regions != nullptr) d = digest(g.regions[index], false);
  if (index < g.trace_cap && g.trace != nullptr) {
    g.trace[index] = {upc, static_cast<uint64_t>(cycle), d, static_cast<uint64_t>(issue_cycle)};
  }
  if (g.reason != kReasonAgree || g.exp_pc == nullptr) return g.reason != kReasonAgree;
  if (index >= g.n_expected) {
    latch(kReasonExtra, index, upc, cycle, d, 0);
  } else if (upc != g.exp_pc[index]) {
    latch(kReasonPc, index, upc, cycle, d, g.exp_digest[index]);
  } else if (d != g.exp_digest[index]) {
    latch(kReasonValue, index, upc, cycle, d, g.exp_digest[index]);
    digest(g.regions[index], true);  // keep the actual words for the report
  }
  return g.reason != kReasonAgree;
}

int loom_ls_diverged() { return g.reason != kReasonAgree; }

// Every cycle of a traced build: keep the dump on exactly inside the window.
// In the pc window, the dump is on while any instruction from the oldest in flight to
// the one at issue (straight-line code: the pcs oldest_pc..pc) is inside [lo, hi].
void loom_ls_tick(int64_t cycle, int oldest_pc, int pc, unsigned char busy) {
  bool on = g.wave_on;
  if (g.wave_mode == kWindowPc) {
    on = busy && static_cast<int64_t>(static_cast<uint32_t>(pc)) >= g.wave_lo &&
         static_cast<int64_t>(static_cast<uint32_t>(oldest_pc)) <= g.wave_hi;
  } else if (g.wave_mode == kWindowCycles) {
    on = cycle >= g.wave_lo && cycle <= g.wave_hi;
  }
  if (on != g.wave_on) {
    g.wave_on = on;
    loom_wave_enable(on ? 1 : 0);
  }
}

}  // extern "C"
