// AXI4 rule checking of the core's DRAM port, in compiled code: loom_axi_dram.sv calls
// in on every cycle a manager channel holds VALID and on every response handshake; the
// first broken rule is latched with its transaction and cycle, and the testbench reads
// it at the end of the segment (the run fails naming it and the instruction in flight).
//
// The port uses the subset of AXI4 the core needs (one ID, INCR bursts of full-width
// beats, aligned start addresses). Checked:
//   - AR/AW: address aligned to the bus; the burst stays inside one 4 KiB page; the
//     burst length is legal by construction of the 8-bit field (1-256 beats);
//   - AR/AW/W: once VALID is up it stays up, with the same payload, until READY (for W:
//     WSTRB, WLAST and the bytes WSTRB enables);
//   - W: WLAST exactly on the last beat of the oldest write burst;
//   - at the end of a segment: every read burst has had its last R beat accepted, every
//     write burst its B response, every W beat sent.
// WSTRB cannot name a byte outside its beat with full-width beats; a strobe on a byte
// the store should not write is a data error, which the whole-DRAM comparison sees.
//
// Rule and channel codes are the contract's (contract/lockstep.py, AxiRule).
#include <cstdint>
#include <cstring>
#include <deque>

#include "loom_lockstep_gen.h"
#include "svdpi.h"

extern "C" int64_t loom_ls_retired();

namespace {

using namespace loom_lockstep;

constexpr int64_t kPageBytes = 4096;

struct Pending {  // a transfer waiting for READY
  bool waiting = false;
  int64_t since = 0;  // the last cycle it was seen
  uint64_t addr = 0, len = 0, payload = 0;
};

struct Checker {
  int64_t bus_bytes = 32;
  Pending ar, aw, w;
  int64_t reads_open = 0;  // AR accepted, last R beat not yet accepted
  std::deque<int64_t> writes;  // beats left of each accepted AW without its last W beat
  int64_t writes_unanswered = 0;  // AW accepted, B not yet accepted
  // The first violation, and the instructions retired before it (the next one to retire
  // is the one in flight).
  int64_t rule = kAxiOk, channel = 0, cycle = 0, retired = 0;
  uint64_t addr = 0, len = 0;
} g;

void violate(int64_t rule, int64_t channel, int64_t cycle, uint64_t addr, uint64_t len) {
  if (g.rule != kAxiOk) return;
  g.retired = loom_ls_retired();
  g.rule = rule;
  g.channel = channel;
  g.cycle = cycle;
  g.addr = addr;
  g.len = len;
}

// VALID seen at `cycle` with `payload`; `ready`: the handshake happens now.
void hold(Pending& p, int64_t channel, int64_t cycle, bool ready, uint64_t addr, uint64_t len,
          uint64_t payload) {
  if (p.waiting) {
    if (cycle != p.since + 1) {
      violate(kAxiValidDropped, channel, p.since + 1, p.addr, p.len);
    } else if (addr != p.addr || len != p.len || payload != p.payload) {
      violate(kAxiPayloadChanged, channel, cycle, addr, len);
    }
  }
  p = ready ? Pending{} : Pending{true, cycle, addr, len, payload};
}

void address(Pending& p, int64_t channel, int64_t cycle, bool ready, uint64_t addr, uint64_t len) {
  const bool first = !p.waiting;
  hold(p, channel, cycle, ready, addr, len, 0);
  if (!first) return;  // checked when it first appeared
  if (addr % static_cast<uint64_t>(g.bus_bytes) != 0) {
    violate(kAxiUnaligned, channel, cycle, addr, len);
  } else if (static_cast<int64_t>(addr % kPageBytes) + static_cast<int64_t>(len + 1) * g.bus_bytes >
             kPageBytes) {
    violate(kAxiCrosses4k, channel, cycle, addr, len);
  }
}

uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ULL; }

// What must stay stable of a waiting W beat: WSTRB, WLAST and the bytes WSTRB enables
// (the others carry no data; ARM's AXI4 protocol checker masks them the same way).
uint64_t w_payload(const svBitVecVal* data, const svBitVecVal* strb, int last, int64_t bytes) {
  const uint8_t* d = reinterpret_cast<const uint8_t*>(data);
  uint64_t h = mix(0x9E3779B97F4A7C15ULL, static_cast<uint64_t>(last));
  for (int64_t i = 0; i < bytes; ++i) {
    const bool on = (strb[i / 32] >> (i % 32)) & 1u;
    h = mix(h, on ? 0x100u | d[i] : 0u);
  }
  return h;
}

}  // namespace

extern "C" {

// ------------------------------------------------------------------ DRAM model (DPI)

void loom_axi_ar(int64_t cycle, int ready, int64_t addr, int len) {
  address(g.ar, kChannelAr, cycle, ready != 0, static_cast<uint64_t>(addr), len);
  if (ready) ++g.reads_open;
}

void loom_axi_aw(int64_t cycle, int ready, int64_t addr, int len) {
  address(g.aw, kChannelAw, cycle, ready != 0, static_cast<uint64_t>(addr), len);
  if (ready) {
    g.writes.push_back(static_cast<int64_t>(len) + 1);
    ++g.writes_unanswered;
  }
}

void loom_axi_w(int64_t cycle, int ready, int last, const svBitVecVal* data,
                const svBitVecVal* strb) {
  hold(g.w, kChannelW, cycle, ready != 0, 0, 0, w_payload(data, strb, last, g.bus_bytes));
  if (!ready) return;
  if (g.writes.empty()) return;  // the model accepts W only after its AW
  const bool is_last = --g.writes.front() == 0;
  if ((last != 0) != is_last) violate(kAxiWlast, kChannelW, cycle, 0, g.writes.front());
  if (is_last || last) g.writes.pop_front();
}

void loom_axi_r(int64_t cycle, int last) {
  (void)cycle;
  if (last) --g.reads_open;
}

void loom_axi_b(int64_t cycle) {
  (void)cycle;
  --g.writes_unanswered;
}

// ------------------------------------------------------------------ testbench (ctypes)

// A segment starts: nothing may be outstanding from the last one (checked then).
void loom_axi_begin(int64_t bus_bytes) {
  g = Checker{};
  g.bus_bytes = bus_bytes;
}

// The segment ended (complete: check that everything was answered); 0 when no rule was
// broken, else fills out[6] with rule, channel, cycle, address, length, and the
// instructions retired before the violation.
int64_t loom_axi_end(int64_t cycle, int64_t complete, int64_t* out) {
  if (complete && (g.reads_open != 0 || g.writes_unanswered != 0 || !g.writes.empty())) {
    violate(kAxiUnanswered, g.reads_open != 0 ? kChannelR : kChannelB, cycle,
            static_cast<uint64_t>(g.reads_open), static_cast<uint64_t>(g.writes_unanswered));
  }
  if (g.rule == kAxiOk) return 0;
  out[0] = g.rule;
  out[1] = g.channel;
  out[2] = g.cycle;
  out[3] = static_cast<int64_t>(g.addr);
  out[4] = static_cast<int64_t>(g.len);
  out[5] = g.retired;
  return 1;
}

}  // extern "C"
