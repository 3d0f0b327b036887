// The on-chip footprint of one decoded instruction: the SRAM element spans it reads and
// writes (the regions of contract/regions.py, resolve) and the memory ports its unit
// drives. The control unit records it at issue and checks every later instruction
// against the footprints of those still in flight (rtl/loom_ctrl.sv). Only for an
// instruction that passed the static checks (loom_insn_check): the spans of a faulting
// one are meaningless, and it never issues.
`include "loom_assert.svh"

module loom_footprint
  import loom_pkg::*;
  import loom_mem_pkg::*;
(
  input  logic                clk_i,  // assertions only
  input  logic                rst_ni,  // assertions only
  input  logic [InsnBits-1:0] insn_i,
  output footprint_t          fp_o
);

  // [addr, addr + (rows - 1) * stride + cols): the span regions.Sram.end defines.
  function automatic span_t span(logic acc, logic [19:0] addr, logic [19:0] stride,
                                 logic [15:0] rows, logic [15:0] cols);
    span_t s;
    s.valid = rows != 16'd0 && cols != 16'd0;
    s.acc = acc;
    s.lo = 32'(addr);
    s.hi = 32'(addr) + (32'(rows) - 32'd1) * 32'(stride) + 32'(cols);
    if (!s.valid) s.hi = s.lo;
    return s;
  endfunction

  function automatic ports_t rd0_of(logic acc);
    ports_t p;
    p = '0;
    p[acc ? PortAccRd0 : PortSpadRd0] = 1'b1;
    return p;
  endfunction

  function automatic ports_t wr_of(logic acc);
    ports_t p;
    p = '0;
    p[acc ? PortAccWr : PortSpadWr] = 1'b1;
    return p;
  endfunction

  dma_ld_insn_t  dma;  // DMA_LD and DMA_ST share a layout
  gather_insn_t  gat;
  matmul_insn_t  mm;
  move_insn_t    mv;
  vbin_insn_t    vb;
  vunary_insn_t  vu;
  vreduce_insn_t vr;
  vmask_insn_t   vk;  // no funct field: its a/dst sit 4 bits lower than VUNARY's

  assign dma = dma_ld_insn_t'(insn_i);
  assign gat = gather_insn_t'(insn_i);
  assign mm  = matmul_insn_t'(insn_i);
  assign mv  = move_insn_t'(insn_i);
  assign vb  = vbin_insn_t'(insn_i);
  assign vu  = vunary_insn_t'(insn_i);
  assign vr  = vreduce_insn_t'(insn_i);
  assign vk  = vmask_insn_t'(insn_i);

`ifdef LOOM_FAULT_INJECT
  // Injected fault (+loom_fault_footprint_short; tests/test_rtl_hazards.py): every write
  // span covers only its first line, so the scoreboard misses what lies past it.
  logic fault_short;
  initial fault_short = $test$plusargs("loom_fault_footprint_short");
`endif

  always_comb begin
    fp_o = '0;
    unique case (opcode_e'(insn_i[7:0]))
      OPCODE_DMA_LD: begin
        fp_o.wr = span(dma.space == MEM_ACC, dma.sram, dma.sram_stride, dma.rows, dma.cols);
        fp_o.ports = wr_of(dma.space == MEM_ACC);
      end
      OPCODE_DMA_ST: begin
        fp_o.rd[0] = span(dma.space == MEM_ACC, dma.sram, dma.sram_stride, dma.rows, dma.cols);
        fp_o.ports = rd0_of(dma.space == MEM_ACC);
      end
      OPCODE_GATHER: begin
        fp_o.wr = span(gat.space == MEM_ACC, gat.sram, gat.sram_stride, gat.rows, gat.cols);
        fp_o.ports = wr_of(gat.space == MEM_ACC);
      end
      OPCODE_MATMUL: begin
        fp_o.rd[0] = span(1'b0, mm.a, mm.a_stride, mm.m, mm.k);
        fp_o.rd[1] = mm.trans_b ? span(1'b0, mm.b, mm.b_stride, mm.n, mm.k)
                                : span(1'b0, mm.b, mm.b_stride, mm.k, mm.n);
        fp_o.wr = span(1'b1, mm.dst, mm.dst_stride, mm.m, mm.n);
        fp_o.ports[PortSpadRd0] = 1'b1;
        fp_o.ports[PortSpadRd1] = 1'b1;
        fp_o.ports[PortAccWr] = 1'b1;
        // C (acc) or the bias row: exclusive, both through ACC read port 1, so a
        // store from ACC (port 0) runs beside any matmul.
        fp_o.ports[PortAccRd1] = 1'b1;
        if (mm.use_bias) begin
          fp_o.rd[2] = span(1'b1, mm.bias, 20'd0, 16'd1, mm.n);
        end else begin
`ifdef LOOM_FAULT_INJECT
          // The injected acc flip (loom_mxu.sv) reads C when acc is clear: depend as if.
          fp_o.rd[2] = span(1'b1, mm.dst, mm.dst_stride, mm.m, mm.n);
`else
          if (mm.acc) fp_o.rd[2] = span(1'b1, mm.dst, mm.dst_stride, mm.m, mm.n);
`endif
        end
      end
      OPCODE_MOVE: begin
        fp_o.rd[0] = span(mv.src_space == MEM_ACC, mv.src, mv.src_stride, mv.rows, mv.cols);
        fp_o.wr = span(mv.dst_space == MEM_ACC, mv.dst, mv.dst_stride, mv.rows, mv.cols);
        fp_o.ports = rd0_of(mv.src_space == MEM_ACC) | wr_of(mv.dst_space == MEM_ACC);
      end
      OPCODE_VBIN: begin
        fp_o.rd[0] = span(1'b1, vb.a, vb.a_stride, vb.rows, vb.cols);
        unique case (vb.bmode)
          BMODE_FULL: fp_o.rd[1] = span(1'b1, vb.b, vb.b_stride, vb.rows, vb.cols);
          BMODE_ROW:  fp_o.rd[1] = span(1'b1, vb.b, 20'd0, 16'd1, vb.cols);
          BMODE_COL:  fp_o.rd[1] = span(1'b1, vb.b, vb.b_stride, vb.rows, 16'd1);
          default:    fp_o.rd[1] = '0;  // BMODE_IMM: no second operand
        endcase
        fp_o.wr = span(1'b1, vb.dst, vb.dst_stride, vb.rows, vb.cols);
        fp_o.ports = rd0_of(1'b1) | wr_of(1'b1);
        fp_o.ports[PortAccRd1] = vb.bmode != BMODE_IMM;
      end
      OPCODE_VUNARY: begin
        fp_o.rd[0] = span(1'b1, vu.a, vu.a_stride, vu.rows, vu.cols);
        fp_o.wr = span(1'b1, vu.dst, vu.dst_stride, vu.rows, vu.cols);
        fp_o.ports = rd0_of(1'b1) | wr_of(1'b1);
      end
      OPCODE_VMASK: begin
        fp_o.rd[0] = span(1'b1, vk.a, vk.a_stride, vk.rows, vk.cols);
        fp_o.wr = span(1'b1, vk.dst, vk.dst_stride, vk.rows, vk.cols);
        fp_o.ports = rd0_of(1'b1) | wr_of(1'b1);
      end
      OPCODE_VREDUCE: begin
        fp_o.rd[0] = span(1'b1, vr.a, vr.a_stride, vr.rows, vr.cols);
        fp_o.wr = span(1'b1, vr.dst, vr.dst_stride, vr.rows, 16'd1);
        fp_o.ports = rd0_of(1'b1) | wr_of(1'b1);
      end
      default: fp_o = '0;  // control instructions touch no SRAM
    endcase
`ifdef LOOM_FAULT_INJECT
    if (fault_short && fp_o.wr.valid && fp_o.wr.hi - fp_o.wr.lo > 32'(Lanes)) begin
      fp_o.wr.hi = fp_o.wr.lo + 32'(Lanes);
    end
`endif
  end

  // ------------------------------------------------------------------ assertions
  // A valid span is a non-empty interval; only an instruction of a unit claims ports.
  `ASSERT(WriteSpanOrdered, fp_o.wr.valid |-> fp_o.wr.lo < fp_o.wr.hi)
  `ASSERT(ReadSpansOrdered, (!fp_o.rd[0].valid || fp_o.rd[0].lo < fp_o.rd[0].hi) &&
                            (!fp_o.rd[1].valid || fp_o.rd[1].lo < fp_o.rd[1].hi) &&
                            (!fp_o.rd[2].valid || fp_o.rd[2].lo < fp_o.rd[2].hi))
  `ASSERT(PortsOnlyForUnits, opcode_unit(opcode_e'(insn_i[7:0])) == UNIT_CTRL |-> fp_o.ports == '0)
  `ASSERT_KNOWN(FootprintKnown, fp_o)

endmodule
