// Host control/status registers on AXI4-Lite (map: compiler/csr.py, generated into
// loom_pkg). One transaction at a time; writes take AW and W together.
`include "loom_assert.svh"

module loom_csr
  import loom_pkg::*;
  import loom_axi_pkg::*;
(
  input  logic        clk_i,
  input  logic        rst_ni,
  input  axil_req_t   axil_req_i,
  output axil_rsp_t   axil_rsp_o,
  // Control
  output logic        start_o,
  output logic [31:0] pc_start_o,
  output logic [31:0] code_end_o,
  output logic [31:0] dram_limit_o,
  // Status and counters
  input  logic        busy_i,
  input  logic        done_i,
  input  fault_e      fault_i,
  input  logic [31:0] fault_pc_i,
  input  logic [31:0] retired_i,
  input  logic [15:0] last_layer_i,
  input  logic [63:0] cycles_i,
  input  logic [31:0] dma_busy_i,
  input  logic [31:0] mxu_busy_i,
  input  logic [31:0] vpu_busy_i,
  input  logic [31:0] fetch_stall_i,
  input  logic [31:0] overlap_i,
  input  logic [31:0] stall_dep_i,
  input  logic [31:0] stall_unit_i,
  input  logic [31:0] stall_drain_i,
  input  logic [63:0] dma_rd_bytes_i,
  input  logic [63:0] dma_wr_bytes_i,
  input  logic [63:0] macs_i
);

  logic [31:0] pc_start_d, pc_start_q, code_end_d, code_end_q, dram_limit_d, dram_limit_q;
  logic b_valid_d, b_valid_q, r_valid_d, r_valid_q;
  logic [31:0] r_data_d, r_data_q;
  logic [1:0] r_resp_d, r_resp_q;
  logic wr_fire, rd_fire;
  // START is registered: nothing of the core is combinational in the host port's inputs,
  // so a simulator that re-evaluates everything downstream of the top-level inputs at each
  // clock edge (Verilator's input-combo region) evaluates only this module's decode.
  logic start_d, start_q;

  function automatic logic [31:0] read_reg(logic [7:0] addr, logic [31:0] pc_start,
                                           logic [31:0] code_end, logic [31:0] dram_limit,
                                           logic [31:0] status);
    logic [31:0] v;
    unique case (addr)
      CsrId: v = CsrIdValue;
      CsrVersion: v = 32'(IsaVersion);
      CsrCtrl: v = '0;
      CsrStatus: v = status;
      CsrFault: v = 32'(fault_i);
      CsrPcStart: v = pc_start;
      CsrCodeEnd: v = code_end;
      CsrDramLimit: v = dram_limit;
      CsrFaultPc: v = fault_pc_i;
      CsrRetired: v = retired_i;
      CsrLastLayer: v = 32'(last_layer_i);
      CsrCyclesLo: v = cycles_i[31:0];
      CsrCyclesHi: v = cycles_i[63:32];
      CsrDmaBusy: v = dma_busy_i;
      CsrMxuBusy: v = mxu_busy_i;
      CsrVpuBusy: v = vpu_busy_i;
      CsrFetchStall: v = fetch_stall_i;
      CsrOverlap: v = overlap_i;
      CsrStallDep: v = stall_dep_i;
      CsrStallUnit: v = stall_unit_i;
      CsrStallDrain: v = stall_drain_i;
      CsrDmaRdBytesLo: v = dma_rd_bytes_i[31:0];
      CsrDmaRdBytesHi: v = dma_rd_bytes_i[63:32];
      CsrDmaWrBytesLo: v = dma_wr_bytes_i[31:0];
      CsrDmaWrBytesHi: v = dma_wr_bytes_i[63:32];
      CsrMacsLo: v = macs_i[31:0];
      CsrMacsHi: v = macs_i[63:32];
      default: v = CsrUnmappedValue;
    endcase
    return v;
  endfunction

  always_comb begin
    pc_start_d = pc_start_q;
    code_end_d = code_end_q;
    dram_limit_d = dram_limit_q;
    b_valid_d = b_valid_q && !axil_req_i.b_ready;
    r_valid_d = r_valid_q && !axil_req_i.r_ready;
    r_data_d = r_data_q;
    r_resp_d = r_resp_q;
    start_d = 1'b0;

    wr_fire = axil_req_i.aw_valid && axil_req_i.w_valid && !b_valid_q;
    if (wr_fire) begin
      b_valid_d = 1'b1;
      unique case (axil_req_i.aw_addr)
        CsrCtrl: start_d = axil_req_i.w_data[0] && !busy_i && !start_q;
        CsrPcStart: pc_start_d = axil_req_i.w_data;
        CsrCodeEnd: code_end_d = axil_req_i.w_data;
        CsrDramLimit: dram_limit_d = axil_req_i.w_data;
        default: ;  // read-only or unmapped: ignored
      endcase
    end
    rd_fire = axil_req_i.ar_valid && !r_valid_q;
    if (rd_fire) begin
      r_valid_d = 1'b1;
      r_data_d = read_reg(axil_req_i.ar_addr, pc_start_q, code_end_q, dram_limit_q,
                          // a started run reads busy from the write on
                          {29'd0, fault_i != FAULT_NONE && !start_q, done_i && !start_q,
                           busy_i || start_q});
      r_resp_d = RespOkay;
    end
  end

  assign axil_rsp_o = '{
      aw_ready: wr_fire,
      w_ready: wr_fire,
      b_resp: RespOkay,
      b_valid: b_valid_q,
      ar_ready: rd_fire,
      r_data: r_data_q,
      r_resp: r_resp_q,
      r_valid: r_valid_q};
  assign start_o = start_q;
  assign pc_start_o = pc_start_q;
  assign code_end_o = code_end_q;
  assign dram_limit_o = dram_limit_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pc_start_q <= '0;
      code_end_q <= '0;
      dram_limit_q <= '0;
      b_valid_q <= 1'b0;
      r_valid_q <= 1'b0;
      r_data_q <= '0;
      start_q <= 1'b0;
      r_resp_q <= RespOkay;
    end else begin
      pc_start_q <= pc_start_d;
      code_end_q <= code_end_d;
      dram_limit_q <= dram_limit_d;
      b_valid_q <= b_valid_d;
      r_valid_q <= r_valid_d;
      r_data_q <= r_data_d;
      r_resp_q <= r_resp_d;
      start_q <= start_d;
    end
  end

  // ------------------------------------------------------------------ assertions
  // AXI4-Lite: a response stays valid, unchanged, until the host takes it.
  `ASSERT_HELD(BHeld, b_valid_q, axil_req_i.b_ready, axil_rsp_o.b_resp)
  `ASSERT_HELD(RHeld, r_valid_q, axil_req_i.r_ready, {r_data_q, r_resp_q})
  // One transaction of each kind at a time; a write takes AW and W together.
  `ASSERT(WriteTakesBoth, axil_rsp_o.aw_ready |-> axil_req_i.aw_valid && axil_req_i.w_valid &&
                                                 axil_rsp_o.w_ready && !b_valid_q)
  `ASSERT(ReadWhenFree, axil_rsp_o.ar_ready |-> !r_valid_q)
  `ASSERT(StartOnlyWhenIdle, start_o |-> !busy_i)
  `ASSERT(StartOneCycle, start_o |=> !start_o)
  `ASSERT_KNOWN(RspKnown, axil_rsp_o)

endmodule
