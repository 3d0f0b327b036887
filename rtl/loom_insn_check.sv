// Static checks of one decoded instruction, before it issues: the same faults, in the
// same order, as the ISA model (contract/regions.py, resolve). Faults found only while
// executing (a gather index out of range, a DRAM bus error) are reported by the unit that
// finds them. Empty regions (no rows or no columns) touch no memory: never out of range,
// never overlapping (docs/isa.md, "Empty regions").
`include "loom_assert.svh"

module loom_insn_check
  import loom_pkg::*;
(
  input  logic                clk_i,  // assertions only
  input  logic                rst_ni,  // assertions only
  input  logic [InsnBits-1:0] insn_i,
  input  logic [31:0]         dram_limit_i,
  output fault_e              fault_o
);

  localparam longint LineElems = longint'(ArrayDim);

  // One on-chip region: element address, row stride, rows and columns.
  typedef struct packed {
    logic        space;  // mem_e
    logic [19:0] addr;
    logic [19:0] stride;
    logic [15:0] rows;
    logic [15:0] cols;
  } region_t;

  function automatic region_t region(logic space, logic [19:0] addr, logic [19:0] stride,
                                     logic [15:0] rows, logic [15:0] cols);
    region_t r;
    r.space = space;
    r.addr = addr;
    r.stride = stride;
    r.rows = rows;
    r.cols = cols;
    return r;
  endfunction

  function automatic logic region_empty(region_t r);
    return r.rows == 16'd0 || r.cols == 16'd0;
  endfunction

  // Element just past the last one of a non-empty region.
  function automatic longint region_end(region_t r);
    return longint'(r.addr) + (longint'(r.rows) - 1) * longint'(r.stride) + longint'(r.cols);
  endfunction

  function automatic fault_e sram_fault(region_t r);
    fault_e f;
    longint size;
    size = (r.space == MEM_ACC) ? longint'(AccElems) : longint'(SpadElems);
    f = FAULT_NONE;
    if ((longint'(r.addr) % LineElems) != 0 || (longint'(r.stride) % LineElems) != 0) begin
      f = FAULT_SRAM_ALIGN;
    end else if (r.rows > 16'd1 && 20'(r.cols) > r.stride) begin
      f = FAULT_SRAM_LAYOUT;
    end else if (!region_empty(r) && region_end(r) > size) begin
      f = FAULT_SRAM_RANGE;
    end
    return f;
  endfunction

  // The two address spans share an element (an empty region shares none).
  function automatic logic overlap(region_t a, region_t b);
    return a.space == b.space && !region_empty(a) && !region_empty(b) &&
           longint'(a.addr) < region_end(b) && longint'(b.addr) < region_end(a);
  endfunction

  // dst and src must be identical or disjoint.
  function automatic logic partial_overlap(region_t dst, region_t src);
    return dst != src && overlap(dst, src);
  endfunction

  function automatic fault_e dram_fault(logic is_bf16, logic [31:0] addr, logic [23:0] rs,
                                        logic [23:0] cs, logic [23:0] rows, logic [15:0] cols,
                                        logic [31:0] limit);
    fault_e f;
    longint size;
    longint last;
    size = is_bf16 ? 64'sd2 : 64'sd4;
    last = longint'(addr) +
           ((longint'(rows) - 1) * longint'(rs) + (longint'(cols) - 1) * longint'(cs)) * size +
           size;
    f = FAULT_NONE;
    if ((longint'(addr) % size) != 0) f = FAULT_DRAM_ALIGN;
    else if (rows != 24'd0 && cols != 16'd0 && last > longint'(limit)) f = FAULT_DRAM_RANGE;
    return f;
  endfunction

  // The first non-NONE fault of a sequence of checks.
  function automatic fault_e first(fault_e a, fault_e b);
    return (a != FAULT_NONE) ? a : b;
  endfunction

  dma_ld_insn_t  dma;  // DMA_LD and DMA_ST share a layout
  gather_insn_t  gat;
  matmul_insn_t  mm;
  move_insn_t    mv;
  vbin_insn_t    vb;
  vunary_insn_t  vu;
  vreduce_insn_t vr;
  vmask_insn_t   vm;

  assign dma = dma_ld_insn_t'(insn_i);
  assign gat = gather_insn_t'(insn_i);
  assign mm  = matmul_insn_t'(insn_i);
  assign mv  = move_insn_t'(insn_i);
  assign vb  = vbin_insn_t'(insn_i);
  assign vu  = vunary_insn_t'(insn_i);
  assign vr  = vreduce_insn_t'(insn_i);
  assign vm  = vmask_insn_t'(insn_i);

  region_t dst_r, a_r, b_r, c_r, bias_r;

  always_comb begin
    fault_o = FAULT_NONE;
    dst_r = '0;
    a_r = '0;
    b_r = '0;
    c_r = '0;
    bias_r = '0;
    if (!insn_legal(insn_i)) begin
      fault_o = FAULT_ILLEGAL_INSN;
    end else begin
      unique case (opcode_e'(insn_i[7:0]))
        OPCODE_DMA_LD: begin
          a_r = region(dma.space, dma.sram, dma.sram_stride, dma.rows, dma.cols);
          fault_o = first(dram_fault(dma.dtype, dma.dram, dma.dram_rs, 24'(dma.dram_cs),
                                     24'(dma.rows), dma.cols, dram_limit_i),
                          sram_fault(a_r));
        end
        OPCODE_DMA_ST: begin
          a_r = region(dma.space, dma.sram, dma.sram_stride, dma.rows, dma.cols);
          if ((dma.rows > 16'd1 && dma.dram_rs == 24'd0) ||
              (dma.cols > 16'd1 && dma.dram_cs == 16'd0)) begin
            fault_o = FAULT_BAD_OPERANDS;
          end else begin
            fault_o = first(sram_fault(a_r),
                            dram_fault(dma.dtype, dma.dram, dma.dram_rs, 24'(dma.dram_cs),
                                       24'(dma.rows), dma.cols, dram_limit_i));
            if (fault_o == FAULT_NONE && dma.dtype == DTYPE_FP32 && dma.space == MEM_SPAD) begin
              fault_o = FAULT_BAD_OPERANDS;
            end
          end
        end
        OPCODE_GATHER: begin
          a_r = region(gat.space, gat.sram, gat.sram_stride, gat.rows, gat.cols);
          if (gat.idx[1:0] != 2'd0) begin
            fault_o = FAULT_DRAM_ALIGN;
          end else if (gat.rows != 16'd0 && longint'(gat.idx) +
                       longint'(IndexBytes) * longint'(gat.rows) > longint'(dram_limit_i)) begin
            fault_o = FAULT_DRAM_RANGE;
          end else begin
            fault_o = first(dram_fault(gat.dtype, gat.table_addr, gat.table_rs, 24'd1, gat.table_rows,
                                       gat.cols, dram_limit_i),
                            sram_fault(a_r));
          end
        end
        OPCODE_MATMUL: begin
          a_r = region(MEM_SPAD, mm.a, mm.a_stride, mm.m, mm.k);
          b_r = mm.trans_b ? region(MEM_SPAD, mm.b, mm.b_stride, mm.n, mm.k)
                           : region(MEM_SPAD, mm.b, mm.b_stride, mm.k, mm.n);
          c_r = region(MEM_ACC, mm.dst, mm.dst_stride, mm.m, mm.n);
          bias_r = region(MEM_ACC, mm.bias, 20'd0, 16'd1, mm.n);
          if (mm.acc && mm.use_bias) begin
            fault_o = FAULT_BAD_OPERANDS;
          end else begin
            fault_o = first(sram_fault(a_r), first(sram_fault(b_r), sram_fault(c_r)));
            if (fault_o == FAULT_NONE && mm.use_bias) begin
              fault_o = sram_fault(bias_r);
              if (fault_o == FAULT_NONE && partial_overlap(c_r, bias_r)) fault_o = FAULT_ALIAS;
            end
          end
        end
        OPCODE_MOVE: begin
          a_r = region(mv.src_space, mv.src, mv.src_stride, mv.rows, mv.cols);
          dst_r = region(mv.dst_space, mv.dst, mv.dst_stride, mv.rows, mv.cols);
          fault_o = first(sram_fault(a_r), sram_fault(dst_r));
          if (fault_o == FAULT_NONE && partial_overlap(dst_r, a_r)) fault_o = FAULT_ALIAS;
        end
        OPCODE_VBIN: begin
          dst_r = region(MEM_ACC, vb.dst, vb.dst_stride, vb.rows, vb.cols);
          a_r = region(MEM_ACC, vb.a, vb.a_stride, vb.rows, vb.cols);
          fault_o = sram_fault(a_r);
          if (fault_o == FAULT_NONE && partial_overlap(dst_r, a_r)) fault_o = FAULT_ALIAS;
          if (fault_o == FAULT_NONE && vb.bmode != BMODE_IMM) begin
            unique case (vb.bmode)
              BMODE_FULL: b_r = region(MEM_ACC, vb.b, vb.b_stride, vb.rows, vb.cols);
              BMODE_ROW:  b_r = region(MEM_ACC, vb.b, 20'd0, 16'd1, vb.cols);
              default:    b_r = region(MEM_ACC, vb.b, vb.b_stride, vb.rows, 16'd1);
            endcase
            fault_o = sram_fault(b_r);
            if (fault_o == FAULT_NONE && partial_overlap(dst_r, b_r)) fault_o = FAULT_ALIAS;
          end
          fault_o = first(fault_o, sram_fault(dst_r));
        end
        OPCODE_VUNARY: begin
          dst_r = region(MEM_ACC, vu.dst, vu.dst_stride, vu.rows, vu.cols);
          a_r = region(MEM_ACC, vu.a, vu.a_stride, vu.rows, vu.cols);
          fault_o = sram_fault(a_r);
          if (fault_o == FAULT_NONE && partial_overlap(dst_r, a_r)) fault_o = FAULT_ALIAS;
          fault_o = first(fault_o, sram_fault(dst_r));
        end
        OPCODE_VREDUCE: begin
          a_r = region(MEM_ACC, vr.a, vr.a_stride, vr.rows, vr.cols);
          dst_r = region(MEM_ACC, vr.dst, vr.dst_stride, vr.rows, 16'd1);
          fault_o = first(sram_fault(a_r), sram_fault(dst_r));
          // Unlike the other ops, even an identical destination is an error here.
          if (fault_o == FAULT_NONE && overlap(dst_r, a_r)) fault_o = FAULT_ALIAS;
        end
        OPCODE_VMASK: begin
          dst_r = region(MEM_ACC, vm.dst, vm.dst_stride, vm.rows, vm.cols);
          a_r = region(MEM_ACC, vm.a, vm.a_stride, vm.rows, vm.cols);
          fault_o = sram_fault(a_r);
          if (fault_o == FAULT_NONE && partial_overlap(dst_r, a_r)) fault_o = FAULT_ALIAS;
          fault_o = first(fault_o, sram_fault(dst_r));
        end
        default: fault_o = FAULT_NONE;
      endcase
    end
  end

  // ------------------------------------------------------------------ assertions
  // Only static faults: a gather index and a bus error are found by executing.
  `ASSERT(OnlyStaticFaults, fault_o != FAULT_GATHER_INDEX && fault_o != FAULT_BUS_ERROR)
  `ASSERT_KNOWN(FaultKnown, fault_o)

endmodule
