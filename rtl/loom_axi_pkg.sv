// AXI4 (DRAM port) and AXI4-Lite (host port) channel structs of the Loom core.
// One ID, INCR bursts only; the data width is the hardware config's DRAM bus width.
package loom_axi_pkg;

  localparam int unsigned AddrBits = 32;
  localparam int unsigned DataBits = loom_pkg::DramBusBits;
  localparam int unsigned StrbBits = DataBits / 8;
  localparam logic [1:0] RespOkay = 2'b00;

  // Manager -> subordinate.
  typedef struct packed {
    logic [AddrBits-1:0] ar_addr;
    logic [7:0] ar_len;
    logic ar_valid;
    logic r_ready;
    logic [AddrBits-1:0] aw_addr;
    logic [7:0] aw_len;
    logic aw_valid;
    logic [DataBits-1:0] w_data;
    logic [StrbBits-1:0] w_strb;
    logic w_last;
    logic w_valid;
    logic b_ready;
  } axi_req_t;

  // Subordinate -> manager.
  typedef struct packed {
    logic ar_ready;
    logic [DataBits-1:0] r_data;
    logic [1:0] r_resp;
    logic r_last;
    logic r_valid;
    logic aw_ready;
    logic w_ready;
    logic [1:0] b_resp;
    logic b_valid;
  } axi_rsp_t;

  typedef struct packed {
    logic [7:0] aw_addr;
    logic aw_valid;
    logic [31:0] w_data;
    logic w_valid;
    logic b_ready;
    logic [7:0] ar_addr;
    logic ar_valid;
    logic r_ready;
  } axil_req_t;

  typedef struct packed {
    logic aw_ready;
    logic w_ready;
    logic [1:0] b_resp;
    logic b_valid;
    logic ar_ready;
    logic [31:0] r_data;
    logic [1:0] r_resp;
    logic r_valid;
  } axil_rsp_t;

endpackage
