// A line-wide on-chip memory: Lines lines of Lanes lanes, two synchronous read ports
// (data the cycle after the request) and one write port with a lane mask. LaneBits is
// 16 for the scratchpad (bf16, the upper half of the port's fp32 lane) and 32 for the
// accumulator.
module loom_sram
  import loom_mem_pkg::*;
#(
  parameter int unsigned Lines = 1024,
  parameter int unsigned LaneBits = 32
) (
  input  logic      clk_i,
  input  sram_req_t req_i,
  output sram_rsp_t rsp_o
);

  localparam int unsigned IndexBits = $clog2(Lines);

  logic [Lanes-1:0][LaneBits-1:0] mem_q[Lines];
  sram_rsp_t rsp_q;

  always_ff @(posedge clk_i) begin
    for (int p = 0; p < 2; p++) begin
      if (req_i.rd_en[p]) begin
        for (int l = 0; l < Lanes; l++) begin
          rsp_q.rd_data[p][l*32 +: 32] <= 32'(mem_q[req_i.rd_line[p][IndexBits-1:0]][l])
                                          << (32 - LaneBits);
        end
      end
    end
    if (req_i.wr_en) begin
      for (int l = 0; l < Lanes; l++) begin
        if (req_i.wr_mask[l]) begin
          mem_q[req_i.wr_line[IndexBits-1:0]][l] <= req_i.wr_data[l*32 + 32 - LaneBits +: LaneBits];
        end
      end
    end
  end

  assign rsp_o = rsp_q;

endmodule
