// Simulated DRAM backing store for loom_axi_dram.sv: a file mapped MAP_SHARED, so the
// Python side (numpy.memmap of the same file) reads and writes the very bytes the RTL
// sees, with no copies and nothing per beat crossing into Python.
//
// loom_dram_map(path) is called by the testbench through ctypes (the simulator is linked
// with -rdynamic); the DPI functions are called by the SystemVerilog slave.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "svdpi.h"

namespace {
uint8_t* g_base = nullptr;
uint64_t g_size = 0;
}  // namespace

extern "C" {

// Map `path` (its whole size) as the DRAM; returns 0 on success.
int loom_dram_map(const char* path) {
  if (g_base != nullptr) {
    munmap(g_base, g_size);
    g_base = nullptr;
    g_size = 0;
  }
  int fd = open(path, O_RDWR);
  if (fd < 0) {
    std::perror("loom_dram_map: open");
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return -1;
  }
  void* p = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    std::perror("loom_dram_map: mmap");
    return -1;
  }
  g_base = static_cast<uint8_t*>(p);
  g_size = static_cast<uint64_t>(st.st_size);
  return 0;
}

uint64_t loom_dram_size() { return g_size; }

// The mapping itself, for the lockstep checker's digests of DMA stores.
uint8_t* loom_dram_base() { return g_base; }

// One beat of `nbytes` bytes at addr; returns 1 (and zeros) when outside the DRAM.
int loom_dram_read_beat(uint64_t addr, int nbytes, svBitVecVal* data) {
  const int words = nbytes / 4;
  if (g_base == nullptr || addr + nbytes > g_size) {
    std::memset(data, 0, words * 4);
    return 1;
  }
  std::memcpy(data, g_base + addr, nbytes);
  return 0;
}

// One beat with byte strobes; returns 1 (and writes nothing) when outside the DRAM.
int loom_dram_write_beat(uint64_t addr, int nbytes, const svBitVecVal* data,
                         const svBitVecVal* strb) {
  if (g_base == nullptr || addr + nbytes > g_size) return 1;
  const uint8_t* src = reinterpret_cast<const uint8_t*>(data);
  for (int i = 0; i < nbytes; ++i) {
    if ((strb[i / 32] >> (i % 32)) & 1u) g_base[addr + i] = src[i];
  }
  return 0;
}

// 32-bit read for block-level testbenches; 0 outside the DRAM.
uint32_t loom_dram_read32(uint64_t addr) {
  uint32_t v = 0;
  if (g_base != nullptr && addr + 4 <= g_size) std::memcpy(&v, g_base + addr, 4);
  return v;
}

// The host port's 32-bit write (front-door loading); returns 1 when outside the DRAM.
int loom_dram_write32(uint64_t addr, uint32_t value) {
  if (g_base == nullptr || addr + 4 > g_size) return 1;
  std::memcpy(g_base + addr, &value, 4);
  return 0;
}

}  // extern "C"
