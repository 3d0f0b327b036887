// A line-wide on-chip memory: Lines lines of Lanes lanes, two synchronous read ports
// (data the cycle after the request) and one write port with a lane mask. LaneBits is
// 16 for the scratchpad (bf16, the upper half of the port's fp32 lane) and 32 for the
// accumulator.
`include "loom_assert.svh"

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

  // ------------------------------------------------------------------ assertions
  // Every access names a line of this memory (the index is truncated to IndexBits, so a
  // line past the end would silently alias another one), and a write writes something.
  // No reset port: the memory is checked from the first clock edge.
  `ASSERT(ReadLine0InRange, req_i.rd_en[0] |-> 32'(req_i.rd_line[0]) < Lines, clk_i, 1'b0)
  `ASSERT(ReadLine1InRange, req_i.rd_en[1] |-> 32'(req_i.rd_line[1]) < Lines, clk_i, 1'b0)
  `ASSERT(WriteLineInRange, req_i.wr_en |-> 32'(req_i.wr_line) < Lines, clk_i, 1'b0)
  `ASSERT(WriteMaskNotEmpty, req_i.wr_en |-> req_i.wr_mask != '0, clk_i, 1'b0)

endmodule
