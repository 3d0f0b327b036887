// Simulated DRAM: an AXI4 subordinate over the DPI-C backing store (loom_dram.cc).
// Reads return their first beat LatencyCycles after the address handshake and then one
// beat every BeatCycles; several bursts may be outstanding. Accesses outside the backing
// store answer SLVERR. Every cycle the manager holds a VALID, and every response
// handshake, goes to the AXI4 rule checker (loom_axi_check.cc). Testbench-only (not part
// of the core).
module loom_axi_dram
  import loom_axi_pkg::*;
#(
  parameter int unsigned LatencyCycles = 100,
  parameter int unsigned BeatCycles = 1
) (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  axi_req_t    req_i,
  output axi_rsp_t    rsp_o,
  // Host (testbench) front-door write port
  input  logic        host_we_i,
  input  logic [31:0] host_addr_i,
  input  logic [31:0] host_wdata_i
);

  import "DPI-C" function int loom_dram_read_beat(input longint unsigned addr, input int nbytes,
                                                  output bit [DataBits-1:0] data);
  import "DPI-C" function int loom_dram_write_beat(input longint unsigned addr,
                                                   input int nbytes,
                                                   input bit [DataBits-1:0] data,
                                                   input bit [StrbBits-1:0] strb);
  import "DPI-C" function int loom_dram_write32(input longint unsigned addr,
                                                input int unsigned value);
  import "DPI-C" function void loom_axi_ar(input longint cycle, input int ready,
                                           input longint addr, input int len);
  import "DPI-C" function void loom_axi_aw(input longint cycle, input int ready,
                                           input longint addr, input int len);
  import "DPI-C" function void loom_axi_w(input longint cycle, input int ready, input int last,
                                          input bit [DataBits-1:0] data,
                                          input bit [StrbBits-1:0] strb);
  import "DPI-C" function void loom_axi_r(input longint cycle, input int last);
  import "DPI-C" function void loom_axi_b(input longint cycle);

  // Room for every burst the DMA engine can have in flight and as many again, so the
  // model never back-pressures AR or AW (the performance model assumes it does not).
  localparam int unsigned Depth = 2 * loom_pkg::DmaBursts;
  localparam int unsigned PtrBits = $clog2(Depth);

  typedef struct packed {
    logic [AddrBits-1:0] addr;
    logic [7:0] len;
    logic [63:0] ready_at;
  } burst_t;

  logic [63:0] now_q;
  burst_t rq_q[Depth];
  logic [PtrBits:0] rq_head_q, rq_tail_q;
  logic [7:0] r_beat_q;
  logic [31:0] r_gap_q;
  logic r_valid_q, r_last_q;
  logic [1:0] r_resp_q;
  logic [DataBits-1:0] r_data_q;

  burst_t wq_q[Depth];
  logic [PtrBits:0] w_head_q, w_tail_q;
  logic [7:0] w_beat_q;
  logic w_err_q;
  logic b_valid_q;
  logic [1:0] b_resp_q;

  logic rq_full, wq_full, rq_empty, wq_empty;
  assign rq_full = (rq_tail_q - rq_head_q) == (PtrBits+1)'(Depth);
  assign wq_full = (w_tail_q - w_head_q) == (PtrBits+1)'(Depth);
  assign rq_empty = rq_tail_q == rq_head_q;
  assign wq_empty = w_tail_q == w_head_q;

  always_comb begin
    rsp_o = '0;
    rsp_o.ar_ready = !rq_full;
    rsp_o.r_valid = r_valid_q;
    rsp_o.r_data = r_data_q;
    rsp_o.r_resp = r_resp_q;
    rsp_o.r_last = r_last_q;
    rsp_o.aw_ready = !wq_full;
    rsp_o.w_ready = !wq_empty && !b_valid_q;
    rsp_o.b_valid = b_valid_q;
    rsp_o.b_resp = b_resp_q;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      now_q <= '0;
      rq_head_q <= '0;
      rq_tail_q <= '0;
      r_beat_q <= '0;
      r_gap_q <= '0;
      r_valid_q <= 1'b0;
      r_last_q <= 1'b0;
      r_resp_q <= RespOkay;
      r_data_q <= '0;
      w_head_q <= '0;
      w_tail_q <= '0;
      w_beat_q <= '0;
      w_err_q <= 1'b0;
      b_valid_q <= 1'b0;
      b_resp_q <= RespOkay;
    end else begin
      now_q <= now_q + 64'd1;
      // ---- reads
      if (req_i.ar_valid && !rq_full) begin
        rq_q[rq_tail_q[PtrBits-1:0]] <= '{addr: req_i.ar_addr, len: req_i.ar_len,
                                          ready_at: now_q + 64'(LatencyCycles)};
        rq_tail_q <= rq_tail_q + 1'b1;
      end
      if (r_valid_q && req_i.r_ready) r_valid_q <= 1'b0;
      if (r_gap_q != 0) r_gap_q <= r_gap_q - 32'd1;
      if ((!r_valid_q || req_i.r_ready) && !rq_empty && r_gap_q == 0 &&
          now_q >= rq_q[rq_head_q[PtrBits-1:0]].ready_at) begin
        burst_t head;
        logic [DataBits-1:0] data;
        int err;
        head = rq_q[rq_head_q[PtrBits-1:0]];
        err = loom_dram_read_beat(64'(head.addr) + 64'(r_beat_q) * 64'(StrbBits), StrbBits, data);
        r_data_q <= data;
        r_resp_q <= (err != 0) ? 2'b10 : RespOkay;
        r_valid_q <= 1'b1;
        r_last_q <= r_beat_q == head.len;
        r_gap_q <= 32'(BeatCycles) - 32'd1;
        if (r_beat_q == head.len) begin
          r_beat_q <= '0;
          rq_head_q <= rq_head_q + 1'b1;
        end else begin
          r_beat_q <= r_beat_q + 8'd1;
        end
      end
      // ---- writes
      if (req_i.aw_valid && !wq_full) begin
        wq_q[w_tail_q[PtrBits-1:0]] <= '{addr: req_i.aw_addr, len: req_i.aw_len, ready_at: '0};
        w_tail_q <= w_tail_q + 1'b1;
      end
      if (b_valid_q && req_i.b_ready) b_valid_q <= 1'b0;
      if (req_i.w_valid && !wq_empty && !b_valid_q) begin
        burst_t head;
        int err;
        head = wq_q[w_head_q[PtrBits-1:0]];
        err = loom_dram_write_beat(64'(head.addr) + 64'(w_beat_q) * 64'(StrbBits), StrbBits,
                                   req_i.w_data, req_i.w_strb);
        if (req_i.w_last) begin
          w_beat_q <= '0;
          w_head_q <= w_head_q + 1'b1;
          b_valid_q <= 1'b1;
          b_resp_q <= (err != 0 || w_err_q) ? 2'b10 : RespOkay;
          w_err_q <= 1'b0;
        end else begin
          w_beat_q <= w_beat_q + 8'd1;
          w_err_q <= w_err_q || err != 0;
        end
      end
      // ---- host front door
      if (host_we_i) begin
        void'(loom_dram_write32(64'(host_addr_i), host_wdata_i));
      end
    end
  end

  // ---- AXI4 rule checking: the manager's side of every channel, as it is this cycle.
  always_ff @(posedge clk_i) begin
    if (rst_ni) begin
      if (req_i.ar_valid) begin
        loom_axi_ar(64'(now_q), int'(rsp_o.ar_ready), 64'(req_i.ar_addr), int'(req_i.ar_len));
      end
      if (req_i.aw_valid) begin
        loom_axi_aw(64'(now_q), int'(rsp_o.aw_ready), 64'(req_i.aw_addr), int'(req_i.aw_len));
      end
      if (req_i.w_valid) begin
        loom_axi_w(64'(now_q), int'(rsp_o.w_ready), int'(req_i.w_last), req_i.w_data,
                   req_i.w_strb);
      end
      if (rsp_o.r_valid && req_i.r_ready) loom_axi_r(64'(now_q), int'(rsp_o.r_last));
      if (rsp_o.b_valid && req_i.b_ready) loom_axi_b(64'(now_q));
    end
  end

endmodule
