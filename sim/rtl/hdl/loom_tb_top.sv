// Simulation top: the Loom core, the simulated DRAM, and flat ports the cocotb testbench
// drives and watches (only these are visible to it: see loom_tb.vlt). The csr_* ports are
// named as cocotbext-axi's AxiLiteBus expects them (prefix "csr"); the core has no
// protection or byte strobes, so awprot, arprot and wstrb are left out.
module loom_tb_top
  import loom_axi_pkg::*;
#(
  parameter int unsigned DramLatency = loom_pkg::DramLatencyCycles,
  parameter int unsigned DramBeatCycles =
      (loom_pkg::DramBusBits / 8 + loom_pkg::DramBytesPerCycle - 1) / loom_pkg::DramBytesPerCycle
) (
  input  logic        clk,
  input  logic        rst_n,
  // Host AXI4-Lite
  input  logic [7:0]  csr_awaddr,
  input  logic        csr_awvalid,
  output logic        csr_awready,
  input  logic [31:0] csr_wdata,
  input  logic        csr_wvalid,
  output logic        csr_wready,
  output logic [1:0]  csr_bresp,
  output logic        csr_bvalid,
  input  logic        csr_bready,
  input  logic [7:0]  csr_araddr,
  input  logic        csr_arvalid,
  output logic        csr_arready,
  output logic [31:0] csr_rdata,
  output logic [1:0]  csr_rresp,
  output logic        csr_rvalid,
  input  logic        csr_rready,
  // Host front door into DRAM
  input  logic        dram_we,
  input  logic [31:0] dram_addr,
  input  logic [31:0] dram_wdata,
  // Events
  output logic        irq,
  output logic        ckpt_valid,
  output logic [15:0] ckpt_layer,
  output logic        retire_valid,
  output logic [31:0] retire_index,
  output logic [31:0] retire_pc,
  // Cycles since start (the CYCLES register), so the monitor can stamp a checkpoint
  // without traffic on the host port
  output logic [63:0] run_cycles,
  output logic        diverge
);

  import "DPI-C" function void loom_ls_sram_write(
    input int mem, input int line, input longint unsigned mask,
    input bit [loom_mem_pkg::LineBits-1:0] data);
  import "DPI-C" function void loom_ls_issue(input longint cycle);
  import "DPI-C" function int loom_ls_retire(input int pc, input longint cycle, input bit at_issue);
  import "DPI-C" function int loom_ls_diverged();
  import "DPI-C" function int loom_assert_failed();

  localparam logic [1:0] RespSlvErr = 2'b10;

  axil_req_t host_req;
  axil_rsp_t host_rsp;
  axi_req_t dram_req;
  axi_rsp_t dram_rsp;

  always_comb begin
    host_req = '0;
    host_req.aw_addr = csr_awaddr;
    host_req.aw_valid = csr_awvalid;
    host_req.w_data = csr_wdata;
    host_req.w_valid = csr_wvalid;
    host_req.b_ready = csr_bready;
    host_req.ar_addr = csr_araddr;
    host_req.ar_valid = csr_arvalid;
    host_req.r_ready = csr_rready;
  end
  assign csr_awready = host_rsp.aw_ready;
  assign csr_wready = host_rsp.w_ready;
  assign csr_bvalid = host_rsp.b_valid;
  assign csr_arready = host_rsp.ar_ready;
  assign csr_rdata = host_rsp.r_data;
  assign csr_rvalid = host_rsp.r_valid;
  assign run_cycles = u_core.cycles_q;

  // Error responses on demand, to prove that the testbench checks every response:
  // +loom_tb_csr_slverr=<hex offset> answers SLVERR to every access of that register,
  // +loom_tb_csr_slverr_wr=<hex offset> only to its writes.
  logic slverr_en, slverr_wr_en;
  logic [7:0] slverr_addr, slverr_wr_addr;
  logic [7:0] aw_addr_q, ar_addr_q;

  initial begin
    int unsigned addr, wr_addr;
    slverr_en = $value$plusargs("loom_tb_csr_slverr=%h", addr) != 0;
    slverr_addr = 8'(addr);
    slverr_wr_en = $value$plusargs("loom_tb_csr_slverr_wr=%h", wr_addr) != 0;
    slverr_wr_addr = 8'(wr_addr);
  end

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      aw_addr_q <= '0;
      ar_addr_q <= '0;
    end else begin
      if (csr_awvalid && csr_awready) aw_addr_q <= csr_awaddr;
      if (csr_arvalid && csr_arready) ar_addr_q <= csr_araddr;
    end
  end

  assign csr_bresp = (slverr_en && aw_addr_q == slverr_addr) ||
                     (slverr_wr_en && aw_addr_q == slverr_wr_addr) ? RespSlvErr : host_rsp.b_resp;
  assign csr_rresp = (slverr_en && ar_addr_q == slverr_addr) ? RespSlvErr : host_rsp.r_resp;

  loom_core u_core (
    .clk_i         (clk),
    .rst_ni        (rst_n),
    .host_req_i    (host_req),
    .host_rsp_o    (host_rsp),
    .dram_req_o    (dram_req),
    .dram_rsp_i    (dram_rsp),
    .irq_o         (irq),
    .ckpt_valid_o  (ckpt_valid),
    .ckpt_layer_o  (ckpt_layer),
    .retire_valid_o(retire_valid),
    .retire_index_o(retire_index),
    .retire_pc_o   (retire_pc)
  );

  loom_axi_dram #(
    .LatencyCycles(DramLatency),
    .BeatCycles   (DramBeatCycles)
  ) u_dram (
    .clk_i       (clk),
    .rst_ni      (rst_n),
    .req_i       (dram_req),
    .rsp_o       (dram_rsp),
    .host_we_i   (dram_we),
    .host_addr_i (dram_addr),
    .host_wdata_i(dram_wdata)
  );

  // ------------------------------------------------------------------ lockstep checking
  // Cycles since reset: the waveform's time axis in clock periods.
  logic [63:0] cycle_q;
  logic diverge_q;
  // An RTL assertion failed (sim/rtl/hdl/loom_assert.cc): the segment stops like a divergence.
  logic assert_q;

  // Every SRAM write goes to the checker's shadow before the retirement of the same edge
  // is checked (statement order), so an instruction's last write counts as its own.
  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      cycle_q <= '0;
      diverge_q <= 1'b0;
      assert_q <= 1'b0;
    end else begin
      cycle_q <= cycle_q + 64'd1;
      assert_q <= loom_assert_failed() != 0;
      if (u_core.mem_req.spad.wr_en) begin
        loom_ls_sram_write(0, 32'(u_core.mem_req.spad.wr_line), 64'(u_core.mem_req.spad.wr_mask),
                           u_core.mem_req.spad.wr_data);
      end
      if (u_core.mem_req.acc.wr_en) begin
        loom_ls_sram_write(1, 32'(u_core.mem_req.acc.wr_line), 64'(u_core.mem_req.acc.wr_mask),
                           u_core.mem_req.acc.wr_data);
      end
      // An instruction issues when its unit starts (control instructions retire in the
      // cycle they issue); retirements are in program order, older ones first.
      if (retire_valid) begin
        diverge_q <= loom_ls_retire(retire_pc, cycle_q, u_core.u_ctrl.retire_ctrl) != 0;
      end else if (diverge_q) begin
        diverge_q <= loom_ls_diverged() != 0;  // cleared when the next segment is set up
      end
      if (u_core.u_ctrl.dma_start_o || u_core.u_ctrl.mxu_start_o || u_core.u_ctrl.vpu_start_o) begin
        loom_ls_issue(cycle_q);
      end
    end
  end
  assign diverge = diverge_q || assert_q;

`ifdef LOOM_WAVES
  import "DPI-C" function void loom_ls_tick(input longint cycle, input int oldest_pc,
                                            input int pc, input bit busy);

  // The instructions from the oldest in flight to the one at issue are executing.
  always_ff @(posedge clk) begin
    loom_ls_tick(cycle_q,
                 u_core.u_ctrl.rq_count_q != '0 ? u_core.u_ctrl.head_pc : u_core.u_ctrl.pc_q,
                 u_core.u_ctrl.pc_q, u_core.u_ctrl.busy_o);
  end

  // Trace-only views, one word per lane, so waveform viewers can show them as floats
  // (the saved views in build/<model>/waves.*): the SRAM write ports (fp32) and the bf16
  // operands entering the systolic array's left (A) and top (B) edges.
  logic [31:0] spad_wr_lane[loom_mem_pkg::Lanes];
  logic [31:0] acc_wr_lane[loom_mem_pkg::Lanes];
  logic [15:0] mxu_a_edge[loom_mem_pkg::Lanes];
  logic [15:0] mxu_b_edge[loom_mem_pkg::Lanes];
  always_comb begin
    for (int l = 0; l < int'(loom_mem_pkg::Lanes); l++) begin
      spad_wr_lane[l] = u_core.mem_req.spad.wr_data[l*32 +: 32];
      acc_wr_lane[l] = u_core.mem_req.acc.wr_data[l*32 +: 32];
      mxu_a_edge[l] = u_core.u_mxu.edge_a[l];
      mxu_b_edge[l] = u_core.u_mxu.edge_b[l];
    end
  end
`endif

endmodule
