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

  // ------------------------------------------------------------------ issue bookkeeping
  // The memory ports an instruction's unit drives while it executes, claimed at issue:
  // two units run at once only on disjoint ports (rtl/loom_ctrl.sv).
  localparam int unsigned NumPorts = 6;
  localparam int unsigned PortSpadRd0 = 0;
  localparam int unsigned PortSpadRd1 = 1;
  localparam int unsigned PortSpadWr = 2;
  localparam int unsigned PortAccRd0 = 3;
  localparam int unsigned PortAccRd1 = 4;
  localparam int unsigned PortAccWr = 5;
  typedef logic [NumPorts-1:0] ports_t;

  // The element span [lo, hi) of one SRAM region (contract.regions.Sram.addr / end);
  // an empty region is not valid and overlaps nothing.
  typedef struct packed {
    logic        valid;
    logic        acc;  // ACC, else SPAD
    logic [31:0] lo;
    logic [31:0] hi;
  } span_t;

  // What an issued instruction reads and writes on chip, and the ports it drives.
  typedef struct packed {
    span_t [2:0] rd;
    span_t       wr;
    ports_t      ports;
  } footprint_t;

  function automatic logic spans_overlap(span_t a, span_t b);
    return a.valid && b.valid && a.acc == b.acc && a.lo < b.hi && b.lo < a.hi;
  endfunction

  // Whether `later` must wait for `earlier`: read-after-write, write-after-read or
  // write-after-write on an SRAM element (DRAM order holds by itself: one DMA engine
  // executes its instructions in program order).
  function automatic logic depends_on(footprint_t earlier, footprint_t later);
    logic d;
    d = spans_overlap(earlier.wr, later.wr);
    for (int i = 0; i < 3; i++) begin
      d = d || spans_overlap(earlier.wr, later.rd[i]) || spans_overlap(later.wr, earlier.rd[i]);
    end
    return d;
  endfunction

  // Whether SRAM line `line` of the memory `acc` holds an element of span s.
  function automatic logic line_meets(span_t s, logic acc, line_addr_t line);
    logic [31:0] first;
    first = 32'(line) * 32'(Lanes);
    return s.valid && s.acc == acc && first < s.hi && s.lo < first + 32'(Lanes);
  endfunction

  function automatic logic line_read(footprint_t f, logic acc, line_addr_t line);
    return line_meets(f.rd[0], acc, line) || line_meets(f.rd[1], acc, line) ||
           line_meets(f.rd[2], acc, line);
  endfunction

  // Whether every line a unit's request reads or writes this cycle meets the matching
  // spans of its footprint (writes the write span, reads a read span).
  function automatic logic accesses_within(mem_req_t r, footprint_t f);
    logic ok;
    ok = (!r.spad.wr_en || line_meets(f.wr, 1'b0, r.spad.wr_line)) &&
         (!r.acc.wr_en || line_meets(f.wr, 1'b1, r.acc.wr_line));
    for (int i = 0; i < 2; i++) begin
      ok = ok && (!r.spad.rd_en[i] || line_read(f, 1'b0, r.spad.rd_line[i])) &&
                 (!r.acc.rd_en[i] || line_read(f, 1'b1, r.acc.rd_line[i]));
    end
    return ok;
  endfunction

  // The ports a unit's request enables this cycle.
  function automatic ports_t ports_driven(mem_req_t r);
    ports_t p;
    p = '0;
    p[PortSpadRd0] = r.spad.rd_en[0];
    p[PortSpadRd1] = r.spad.rd_en[1];
    p[PortSpadWr] = r.spad.wr_en;
    p[PortAccRd0] = r.acc.rd_en[0];
    p[PortAccRd1] = r.acc.rd_en[1];
    p[PortAccWr] = r.acc.wr_en;
    return p;
  endfunction

endpackage
