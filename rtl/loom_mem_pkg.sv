// On-chip memory ports shared by the units. Every unit speaks fp32 lanes: a SPAD lane
// carries the bf16 value widened ({bf16, 16'h0}); the scratchpad stores the upper half,
// and a unit writing SPAD has already rounded the value to bf16.
package loom_mem_pkg;

  localparam int unsigned Lanes = loom_pkg::ArrayDim;
  localparam int unsigned LineBits = Lanes * 32;
  localparam int unsigned LineAddrBits = 20;

  typedef logic [LineBits-1:0] line_t;
  typedef logic [LineAddrBits-1:0] line_addr_t;

  // Two read ports (data one cycle after rd_en) and one write port with a lane mask.
  typedef struct packed {
    logic [1:0] rd_en;
    line_addr_t [1:0] rd_line;
    logic wr_en;
    line_addr_t wr_line;
    logic [Lanes-1:0] wr_mask;
    line_t wr_data;
  } sram_req_t;

  typedef struct packed {
    line_t [1:0] rd_data;
  } sram_rsp_t;

  // The memory ports one unit drives: scratchpad and accumulator.
  typedef struct packed {
    sram_req_t spad;
    sram_req_t acc;
  } mem_req_t;

  typedef struct packed {
    sram_rsp_t spad;
    sram_rsp_t acc;
  } mem_rsp_t;

endpackage
