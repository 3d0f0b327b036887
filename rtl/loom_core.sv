// The Loom core: control unit, DMA engine, matrix unit, vector unit, scratchpad and
// accumulator, a host port (AXI4-Lite control/status registers) and a DRAM port (AXI4).
`include "loom_assert.svh"

module loom_core
  import loom_pkg::*;
  import loom_axi_pkg::*;
  import loom_mem_pkg::*;
(
  input  logic        clk_i,
  input  logic        rst_ni,
  // Host control/status registers
  input  axil_req_t   host_req_i,
  output axil_rsp_t   host_rsp_o,
  // DRAM
  output axi_req_t    dram_req_o,
  input  axi_rsp_t    dram_rsp_i,
  // Events for the testbench: run finished (done or fault), checkpoint, retirement
  output logic        irq_o,
  output logic        ckpt_valid_o,
  output logic [15:0] ckpt_layer_o,
  output logic        retire_valid_o,
  output logic [31:0] retire_index_o,
  output logic [31:0] retire_pc_o
);

  logic start, busy, done;
  logic [31:0] pc_start, code_end, dram_limit, fault_pc, retired;
  logic [15:0] last_layer;
  fault_e fault, dma_fault;
  logic fetch, fetch_done, fetching;
  logic [31:0] fetch_addr;
  logic [FetchWordBits-1:0] fetch_words;
  logic [FetchInsns-1:0] fetch_err;
  logic [FetchInsns-1:0][InsnBits-1:0] fetch_block;
  logic [InsnBits-1:0] insn;
  logic dma_start, mxu_start, vpu_start, dma_done, mxu_done, vpu_done;
  unit_e [NumPorts-1:0] port_owner;
  logic [2:0] unit_busy;  // {VPU, MXU, DMA}
  footprint_t [2:0] unit_fp;  // read by the assertions only
  logic stall_dep, stall_unit, stall_drain;
  logic [31:0] mxu_macs;
  logic [15:0] dma_rd_bytes, dma_wr_bytes;
  mem_req_t dma_mem_req, mxu_mem_req, vpu_mem_req, mem_req;
  mem_rsp_t mem_rsp;
  // Performance counters (the CSRs read them)
  logic [63:0] cycles_q, dma_rd_bytes_q, dma_wr_bytes_q, macs_q;
  logic [31:0] dma_busy_q, mxu_busy_q, vpu_busy_q, fetch_stall_q;
  logic [31:0] overlap_q, stall_dep_q, stall_unit_q, stall_drain_q;

  loom_csr u_csr (
    .clk_i,
    .rst_ni,
    .axil_req_i     (host_req_i),
    .axil_rsp_o     (host_rsp_o),
    .start_o        (start),
    .pc_start_o     (pc_start),
    .code_end_o     (code_end),
    .dram_limit_o   (dram_limit),
    .busy_i         (busy),
    .done_i         (done),
    .fault_i        (fault),
    .fault_pc_i     (fault_pc),
    .retired_i      (retired),
    .last_layer_i   (last_layer),
    .cycles_i       (cycles_q),
    .dma_busy_i     (dma_busy_q),
    .mxu_busy_i     (mxu_busy_q),
    .vpu_busy_i     (vpu_busy_q),
    .fetch_stall_i  (fetch_stall_q),
    .overlap_i      (overlap_q),
    .stall_dep_i    (stall_dep_q),
    .stall_unit_i   (stall_unit_q),
    .stall_drain_i  (stall_drain_q),
    .dma_rd_bytes_i (dma_rd_bytes_q),
    .dma_wr_bytes_i (dma_wr_bytes_q),
    .macs_i         (macs_q)
  );

  loom_ctrl u_ctrl (
    .clk_i,
    .rst_ni,
    .start_i        (start),
    .pc_start_i     (pc_start),
    .code_end_i     (code_end),
    .dram_limit_i   (dram_limit),
    .busy_o         (busy),
    .done_o         (done),
    .fault_o        (fault),
    .fault_pc_o     (fault_pc),
    .retired_o      (retired),
    .last_layer_o   (last_layer),
    .fetch_o        (fetch),
    .fetch_addr_o   (fetch_addr),
    .fetch_words_o  (fetch_words),
    .fetch_done_i   (fetch_done),
    .fetch_err_i    (fetch_err),
    .fetch_block_i  (fetch_block),
    .insn_o         (insn),
    .dma_start_o    (dma_start),
    .mxu_start_o    (mxu_start),
    .vpu_start_o    (vpu_start),
    .dma_done_i     (dma_done),
    .dma_fault_i    (dma_fault),
    .mxu_done_i     (mxu_done),
    .vpu_done_i     (vpu_done),
    .port_owner_o   (port_owner),
    .unit_busy_o    (unit_busy),
    .unit_fp_o      (unit_fp),
    .fetching_o     (fetching),
    .stall_dep_o    (stall_dep),
    .stall_unit_o   (stall_unit),
    .stall_drain_o  (stall_drain),
    .ckpt_valid_o,
    .ckpt_layer_o,
    .retire_valid_o,
    .retire_index_o,
    .retire_pc_o
  );

  loom_dma u_dma (
    .clk_i,
    .rst_ni,
    .start_i      (dma_start),
    .insn_i       (insn),
    .done_o       (dma_done),
    .fault_o      (dma_fault),
    .fetch_i      (fetch),
    .fetch_addr_i (fetch_addr),
    .fetch_words_i(fetch_words),
    .fetch_done_o (fetch_done),
    .fetch_err_o  (fetch_err),
    .fetch_block_o(fetch_block),
    .axi_req_o    (dram_req_o),
    .axi_rsp_i    (dram_rsp_i),
    .mem_req_o    (dma_mem_req),
    .mem_rsp_i    (mem_rsp),
    .rd_bytes_o   (dma_rd_bytes),
    .wr_bytes_o   (dma_wr_bytes)
  );

  loom_mxu u_mxu (
    .clk_i,
    .rst_ni,
    .start_i   (mxu_start),
    .insn_i    (insn),
    .done_o    (mxu_done),
    .macs_o    (mxu_macs),
    .mem_req_o (mxu_mem_req),
    .mem_rsp_i (mem_rsp)
  );

  loom_vpu u_vpu (
    .clk_i,
    .rst_ni,
    .start_i   (vpu_start),
    .insn_i    (insn),
    .done_o    (vpu_done),
    .mem_req_o (vpu_mem_req),
    .mem_rsp_i (mem_rsp)
  );

  // Each memory port is driven by the unit whose instruction claimed it at issue
  // (rtl/loom_ctrl.sv keeps the claims of the instructions in flight disjoint).
  function automatic mem_req_t from_owner(unit_e owner, mem_req_t dma, mem_req_t mxu,
                                         mem_req_t vpu);
    mem_req_t r;
    unique case (owner)
      UNIT_DMA: r = dma;
      UNIT_MXU: r = mxu;
      UNIT_VPU: r = vpu;
      default:  r = '0;
    endcase
    return r;
  endfunction

  // One memory's request: each of its three ports from that port's owner.
  function automatic sram_req_t sram_from_owners(sram_req_t rd0, sram_req_t rd1, sram_req_t wr);
    sram_req_t r;
    r = wr;  // the write port's fields
    r.rd_en[0] = rd0.rd_en[0];
    r.rd_line[0] = rd0.rd_line[0];
    r.rd_en[1] = rd1.rd_en[1];
    r.rd_line[1] = rd1.rd_line[1];
    return r;
  endfunction

  always_comb begin
    mem_req_t rd0, rd1, wr;
    rd0 = from_owner(port_owner[PortSpadRd0], dma_mem_req, mxu_mem_req, vpu_mem_req);
    rd1 = from_owner(port_owner[PortSpadRd1], dma_mem_req, mxu_mem_req, vpu_mem_req);
    wr = from_owner(port_owner[PortSpadWr], dma_mem_req, mxu_mem_req, vpu_mem_req);
    mem_req.spad = sram_from_owners(rd0.spad, rd1.spad, wr.spad);
    rd0 = from_owner(port_owner[PortAccRd0], dma_mem_req, mxu_mem_req, vpu_mem_req);
    rd1 = from_owner(port_owner[PortAccRd1], dma_mem_req, mxu_mem_req, vpu_mem_req);
    wr = from_owner(port_owner[PortAccWr], dma_mem_req, mxu_mem_req, vpu_mem_req);
    mem_req.acc = sram_from_owners(rd0.acc, rd1.acc, wr.acc);
  end

  // The ports each unit owns this cycle.
  function automatic ports_t owned_by(unit_e [NumPorts-1:0] owner, unit_e u);
    ports_t p;
    for (int i = 0; i < int'(NumPorts); i++) p[i] = owner[i] == u;
    return p;
  endfunction

  loom_sram #(
    .Lines   (SpadLines),
    .LaneBits(16)
  ) u_spad (
    .clk_i,
    .req_i(mem_req.spad),
    .rsp_o(mem_rsp.spad)
  );

  loom_sram #(
    .Lines   (AccLines),
    .LaneBits(32)
  ) u_acc (
    .clk_i,
    .req_i(mem_req.acc),
    .rsp_o(mem_rsp.acc)
  );

  // ------------------------------------------------------------------ performance counters
  // DMA bytes are counted as the DMA engine moves them (data beats, not fetches), so they
  // equal the ISA model's count of the bytes each instruction's regions move.
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cycles_q <= '0;
      dma_rd_bytes_q <= '0;
      dma_wr_bytes_q <= '0;
      macs_q <= '0;
      dma_busy_q <= '0;
      mxu_busy_q <= '0;
      vpu_busy_q <= '0;
      fetch_stall_q <= '0;
      overlap_q <= '0;
      stall_dep_q <= '0;
      stall_unit_q <= '0;
      stall_drain_q <= '0;
    end else if (start) begin
      cycles_q <= '0;
      dma_rd_bytes_q <= '0;
      dma_wr_bytes_q <= '0;
      macs_q <= '0;
      dma_busy_q <= '0;
      mxu_busy_q <= '0;
      vpu_busy_q <= '0;
      fetch_stall_q <= '0;
      overlap_q <= '0;
      stall_dep_q <= '0;
      stall_unit_q <= '0;
      stall_drain_q <= '0;
    end else begin
      if (busy) cycles_q <= cycles_q + 64'd1;
      if (unit_busy[0]) dma_busy_q <= dma_busy_q + 32'd1;
      if (unit_busy[1]) mxu_busy_q <= mxu_busy_q + 32'd1;
      if (unit_busy[2]) vpu_busy_q <= vpu_busy_q + 32'd1;
      if ($countones(unit_busy) >= 2) overlap_q <= overlap_q + 32'd1;
      if (fetching) fetch_stall_q <= fetch_stall_q + 32'd1;
      if (stall_dep) stall_dep_q <= stall_dep_q + 32'd1;
      if (stall_unit) stall_unit_q <= stall_unit_q + 32'd1;
      if (stall_drain) stall_drain_q <= stall_drain_q + 32'd1;
      dma_rd_bytes_q <= dma_rd_bytes_q + 64'(dma_rd_bytes);
      dma_wr_bytes_q <= dma_wr_bytes_q + 64'(dma_wr_bytes);
      macs_q <= macs_q + 64'(mxu_macs);
    end
  end

  // A run ends in done or a fault: one level the host can wait on.
  assign irq_o = !busy && (done || fault != FAULT_NONE);

  // ------------------------------------------------------------------ assertions
  // Every memory port has one owner, and a unit drives only the ports it owns (the
  // others it leaves idle, so nothing it does there is lost in the routing above).
  `ASSERT(DmaDrivesOwnPorts, (ports_driven(dma_mem_req) & ~owned_by(port_owner, UNIT_DMA)) == '0)
  `ASSERT(MxuDrivesOwnPorts, (ports_driven(mxu_mem_req) & ~owned_by(port_owner, UNIT_MXU)) == '0)
  `ASSERT(VpuDrivesOwnPorts, (ports_driven(vpu_mem_req) & ~owned_by(port_owner, UNIT_VPU)) == '0)
  // Every SRAM line a unit reads or writes meets the footprint its instruction issued
  // with: the scoreboard orders instructions by footprints alone, so one that missed
  // part of what its instruction touches would let a dependent one overtake unseen.
  `ASSERT(DmaAccessInFootprint, accesses_within(dma_mem_req, unit_fp[0]))
  `ASSERT(MxuAccessInFootprint, accesses_within(mxu_mem_req, unit_fp[1]))
  `ASSERT(VpuAccessInFootprint, accesses_within(vpu_mem_req, unit_fp[2]))
  // Counters only grow within a run; each unit's busy cycles, the cycles two or more
  // are busy, and the control unit's stall cycles (exclusive states) each fit the run.
  `ASSERT(CountersMonotonic, !start |=> cycles_q >= $past(cycles_q) &&
                                       macs_q >= $past(macs_q) &&
                                       dma_rd_bytes_q >= $past(dma_rd_bytes_q) &&
                                       dma_wr_bytes_q >= $past(dma_wr_bytes_q) &&
                                       dma_busy_q >= $past(dma_busy_q) &&
                                       mxu_busy_q >= $past(mxu_busy_q) &&
                                       vpu_busy_q >= $past(vpu_busy_q) &&
                                       fetch_stall_q >= $past(fetch_stall_q) &&
                                       overlap_q >= $past(overlap_q))
  `ASSERT(BusyWithinCycles, 64'(dma_busy_q) <= cycles_q && 64'(mxu_busy_q) <= cycles_q &&
                            64'(vpu_busy_q) <= cycles_q && 64'(overlap_q) <= cycles_q)
  `ASSERT(BusyCoveredByOverlap, 64'(dma_busy_q) + 64'(mxu_busy_q) + 64'(vpu_busy_q) <=
                                cycles_q + 2 * 64'(overlap_q))
  `ASSERT(StallsWithinCycles, 64'(fetch_stall_q) + 64'(stall_dep_q) + 64'(stall_unit_q) +
                              64'(stall_drain_q) <= cycles_q)
  `ASSERT(OneStallCause, $onehot0({fetching, stall_dep, stall_unit, stall_drain}))
  `ASSERT(MacsOnlyFromMxu, mxu_macs != '0 |-> unit_busy[1])
  `ASSERT(BytesOnlyFromDma, dma_rd_bytes != '0 || dma_wr_bytes != '0 |-> unit_busy[0])
  `ASSERT_KNOWN(IrqKnown, irq_o)
  `ASSERT_KNOWN(DramReqKnown, dram_req_o)
  `ASSERT_KNOWN(HostRspKnown, host_rsp_o)

endmodule
