// Simulation top: the Loom core, the simulated DRAM, and flat ports the cocotb testbench
// drives and watches (only these are visible to it: see loom_tb.vlt).
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
  output logic        csr_bvalid,
  input  logic        csr_bready,
  input  logic [7:0]  csr_araddr,
  input  logic        csr_arvalid,
  output logic        csr_arready,
  output logic [31:0] csr_rdata,
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
  output logic [31:0] retire_pc
);

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

endmodule
