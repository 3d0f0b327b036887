// Vector unit: MOVE, VBIN, VUNARY, VREDUCE and VMASK over 2-D regions, one line of
// ArrayDim fp32 lanes per cycle. Two stages: READ issues the operand lines of (row,
// chunk); EXEC computes the lanes one cycle later and writes the destination line.
// The ISA forbids partial overlap of destination and sources, so a line is never read
// after the pipeline has written it. VREDUCE keeps one partial per lane across a row's
// chunks and combines the lanes with a fixed pairwise tree (contract.numerics.reduce_rows).
// Empty regions move nothing, except that VREDUCE over zero columns still writes each
// row's identity (docs/isa.md, "Empty regions"): one chunk of no columns per row, read
// from nowhere.
`include "loom_assert.svh"

module loom_vpu
  import loom_pkg::*;
  import loom_mem_pkg::*;
  import loom_fp_pkg::*;
(
  input  logic                clk_i,
  input  logic                rst_ni,
  input  logic                start_i,
  input  logic [InsnBits-1:0] insn_i,
  output logic                done_o,
  output mem_req_t            mem_req_o,
  input  mem_rsp_t            mem_rsp_i
);

  localparam int unsigned D = ArrayDim;
  localparam int unsigned LogD = $clog2(D);

  // The fields every vector instruction is reduced to.
  typedef struct packed {
    opcode_e op;
    logic [3:0] funct;
    bmode_e bmode;
    logic src_acc;  // MOVE source space (others read ACC)
    logic dst_acc;  // MOVE destination space (others write ACC)
    logic [19:0] dst, dst_stride, a, a_stride, b, b_stride;
    logic [15:0] rows, cols;
    logic [31:0] imm;
    logic signed [19:0] offset;
  } vop_t;

`ifdef LOOM_FAULT_INJECT
  // Injected fault (+loom_fault_vpu_add_round; debug-harness self-tests, docs/debug.md):
  // VBIN ADD truncates the last mantissa bit of its result.
  // Compiled in only with +define+LOOM_FAULT_INJECT.
  logic fault_add_round;
  initial fault_add_round = $test$plusargs("loom_fault_vpu_add_round");
  // +loom_fault_vpu_mask_spill: a partial line's ACC write also writes the lane after
  // the last column (outside the destination: only a whole-SRAM comparison sees it).
  logic fault_mask_spill;
  initial fault_mask_spill = $test$plusargs("loom_fault_vpu_mask_spill");
`endif

  function automatic vop_t unpack(logic [InsnBits-1:0] w);
    vop_t v;
    move_insn_t mv;
    vbin_insn_t vb;
    vunary_insn_t vu;
    vreduce_insn_t vr;
    vmask_insn_t vm;
    mv = move_insn_t'(w);
    vb = vbin_insn_t'(w);
    vu = vunary_insn_t'(w);
    vr = vreduce_insn_t'(w);
    vm = vmask_insn_t'(w);
    v = '0;
    v.op = opcode_e'(w[7:0]);
    v.src_acc = 1'b1;
    v.dst_acc = 1'b1;
    unique case (v.op)
      OPCODE_MOVE: begin
        v.src_acc = mv.src_space == MEM_ACC;
        v.dst_acc = mv.dst_space == MEM_ACC;
        {v.dst, v.dst_stride, v.a, v.a_stride} = {mv.dst, mv.dst_stride, mv.src, mv.src_stride};
        {v.rows, v.cols} = {mv.rows, mv.cols};
      end
      OPCODE_VBIN: begin
        v.funct = 4'(vb.funct);
        v.bmode = vb.bmode;
        {v.dst, v.dst_stride, v.a, v.a_stride} = {vb.dst, vb.dst_stride, vb.a, vb.a_stride};
        {v.b, v.b_stride, v.rows, v.cols, v.imm} = {vb.b, vb.b_stride, vb.rows, vb.cols, vb.imm};
      end
      OPCODE_VUNARY: begin
        v.funct = 4'(vu.funct);
        {v.dst, v.dst_stride, v.a, v.a_stride} = {vu.dst, vu.dst_stride, vu.a, vu.a_stride};
        {v.rows, v.cols} = {vu.rows, vu.cols};
      end
      OPCODE_VREDUCE: begin
        v.funct = 4'(vr.funct);
        {v.dst, v.dst_stride, v.a, v.a_stride} = {vr.dst, vr.dst_stride, vr.a, vr.a_stride};
        {v.rows, v.cols} = {vr.rows, vr.cols};
      end
      default: begin  // OPCODE_VMASK
        {v.dst, v.dst_stride, v.a, v.a_stride} = {vm.dst, vm.dst_stride, vm.a, vm.a_stride};
        {v.rows, v.cols, v.imm, v.offset} = {vm.rows, vm.cols, vm.imm, vm.offset};
      end
    endcase
    return v;
  endfunction

  // VBIN. Comparisons give 1.0 / +0.0; keep and fill select between a and `fill` (the
  // immediate) by b != 0 (a NaN b is nonzero) and pass a NaN a on as the canonical NaN.
  function automatic logic [31:0] binary(logic [3:0] funct, logic [31:0] a, logic [31:0] b,
                                         logic [31:0] fill);
    logic [31:0] r;
    logic lt, eq, nz;
    lt = f32_lt(a, b);
    eq = f32_eq(a, b);
    nz = !f32_is_zero(b);
    unique case (vbinfunct_e'(funct))
      VBINFUNCT_ADD: r = f32_add(a, b);
      VBINFUNCT_SUB: r = f32_sub(a, b);
      VBINFUNCT_MUL: r = f32_mul(a, b);
      VBINFUNCT_MAX: r = f32_max(a, b);
      VBINFUNCT_MIN: r = f32_min(a, b);
      VBINFUNCT_EQ: r = eq ? F32One : 32'd0;
      VBINFUNCT_NE: r = eq ? 32'd0 : F32One;
      VBINFUNCT_LT: r = lt ? F32One : 32'd0;
      VBINFUNCT_LE: r = lt || eq ? F32One : 32'd0;
      VBINFUNCT_GT: r = f32_lt(b, a) ? F32One : 32'd0;
      VBINFUNCT_GE: r = f32_ge(a, b) ? F32One : 32'd0;
      VBINFUNCT_KEEP: r = f32_canon(nz ? a : fill);
      default: r = f32_canon(nz ? fill : a);  // VBINFUNCT_FILL
    endcase
    return r;
  endfunction

  function automatic logic [31:0] unary(logic [3:0] funct, logic [31:0] a);
    logic [31:0] r;
    unique case (vunaryfunct_e'(funct))
      VUNARYFUNCT_EXP: r = f32_exp(a);
      VUNARYFUNCT_RECIP: r = f32_recip(a);
      VUNARYFUNCT_RSQRT: r = f32_rsqrt(a);
      VUNARYFUNCT_TANH: r = f32_tanh(a);
      VUNARYFUNCT_ERF: r = f32_erf(a);
      default: r = f32_canon(a);
    endcase
    return r;
  endfunction

  // Reduction combine: sum, or max (vmax rule).
  function automatic logic [31:0] combine(logic is_max, logic [31:0] a, logic [31:0] b);
    return is_max ? f32_max(a, b) : f32_add(a, b);
  endfunction

  logic busy_d, busy_q;
  vop_t op_d, op_q;
  logic [15:0] row_d, row_q, chunk_d, chunk_q;  // READ stage position
  logic rd_done_d, rd_done_q;  // every line has been read
  // EXEC stage
  logic ex_valid_d, ex_valid_q;
  logic [15:0] ex_row_d, ex_row_q, ex_chunk_d, ex_chunk_q;
  logic [D-1:0][31:0] part_d, part_q;  // VREDUCE lane partials

  logic [15:0] nchunks;
  assign nchunks = (op_q.cols == 16'd0) ? 16'd1 : 16'((32'(op_q.cols) + 32'(D) - 32'd1) >> LogD);

  function automatic line_addr_t line_of(logic [19:0] base, logic [19:0] stride, logic [15:0] row,
                                         logic [15:0] chunk);
    return line_addr_t'((32'(base) + 32'(row) * 32'(stride)) >> LogD) + line_addr_t'(chunk);
  endfunction

  mem_req_t mem;

  always_comb begin
    busy_d = busy_q;
    op_d = op_q;
    row_d = row_q;
    chunk_d = chunk_q;
    rd_done_d = rd_done_q;
    ex_valid_d = 1'b0;
    ex_row_d = row_q;
    ex_chunk_d = chunk_q;
    part_d = part_q;
    mem = '0;
    done_o = 1'b0;

    if (!busy_q) begin
      if (start_i) begin
        op_d = unpack(insn_i);
        busy_d = 1'b1;
        row_d = '0;
        chunk_d = '0;
        rd_done_d = op_d.rows == 16'd0 || (op_d.cols == 16'd0 && op_d.op != OPCODE_VREDUCE);
      end
    end else begin
      // ---------------- READ
      if (!rd_done_q) begin
        // (VREDUCE of no columns reads nothing: the lanes hold the identity.)
        if (op_q.cols != 16'd0 && op_q.src_acc) begin
          mem.acc.rd_en[0] = 1'b1;
          mem.acc.rd_line[0] = line_of(op_q.a, op_q.a_stride, row_q, chunk_q);
        end else if (op_q.cols != 16'd0) begin
          mem.spad.rd_en[0] = 1'b1;
          mem.spad.rd_line[0] = line_of(op_q.a, op_q.a_stride, row_q, chunk_q);
        end
        if (op_q.op == OPCODE_VBIN && op_q.bmode != BMODE_IMM) begin
          mem.acc.rd_en[1] = 1'b1;
          unique case (op_q.bmode)
            BMODE_FULL: mem.acc.rd_line[1] = line_of(op_q.b, op_q.b_stride, row_q, chunk_q);
            BMODE_ROW: mem.acc.rd_line[1] = line_of(op_q.b, 20'd0, 16'd0, chunk_q);
            default: mem.acc.rd_line[1] = line_of(op_q.b, op_q.b_stride, row_q, 16'd0);
          endcase
        end
        ex_valid_d = 1'b1;
        if (chunk_q + 16'd1 < nchunks) begin
          chunk_d = chunk_q + 16'd1;
        end else begin
          chunk_d = '0;
          row_d = row_q + 16'd1;
          rd_done_d = row_q + 16'd1 >= op_q.rows;
        end
      end

      // ---------------- EXEC
      if (ex_valid_q) begin
        line_t a_line, b_line, out;
        logic [15:0] first_col, ncols;
        logic is_max;
        logic [31:0] ident;
        a_line = op_q.src_acc ? mem_rsp_i.acc.rd_data[0] : mem_rsp_i.spad.rd_data[0];
        b_line = mem_rsp_i.acc.rd_data[1];
        first_col = ex_chunk_q << LogD;
        ncols = (op_q.cols - first_col) < 16'(D) ? op_q.cols - first_col : 16'(D);
        is_max = op_q.funct[0];
        ident = is_max ? 32'hff80_0000 : 32'h8000_0000;  // -inf, -0.0
        out = '0;
        unique case (op_q.op)
          OPCODE_MOVE: begin
            for (int l = 0; l < D; l++) begin
              out[l*32 +: 32] = (!op_q.dst_acc && op_q.src_acc) ?
                  {f32_to_bf16(a_line[l*32 +: 32]), 16'd0} : a_line[l*32 +: 32];
            end
          end
          OPCODE_VBIN: begin
            for (int l = 0; l < D; l++) begin
              logic [31:0] b;
              unique case (op_q.bmode)
                BMODE_IMM: b = op_q.imm;
                BMODE_COL: b = b_line[31:0];
                default: b = b_line[l*32 +: 32];
              endcase
              if (l < int'(ncols)) begin
                out[l*32 +: 32] = binary(op_q.funct, a_line[l*32 +: 32], b, op_q.imm);
              end
`ifdef LOOM_FAULT_INJECT
              if (fault_add_round && op_q.funct == 4'(VBINFUNCT_ADD)) out[l*32] = 1'b0;
`endif
            end
          end
          OPCODE_VUNARY: begin
            for (int l = 0; l < D; l++) begin
              if (l < int'(ncols)) out[l*32 +: 32] = unary(op_q.funct, a_line[l*32 +: 32]);
            end
          end
          OPCODE_VMASK: begin
            // Row r keeps columns c <= r + offset (signed).
            for (int l = 0; l < D; l++) begin
              int col, last_kept;
              col = int'(first_col) + l;
              last_kept = int'(ex_row_q) + int'(op_q.offset);
              out[l*32 +: 32] = f32_canon(col > last_kept ? op_q.imm : a_line[l*32 +: 32]);
            end
          end
          default: begin  // OPCODE_VREDUCE
            logic [D-1:0][31:0] tree;
            for (int l = 0; l < D; l++) begin
              part_d[l] = combine(is_max, (ex_chunk_q == 16'd0) ? ident : part_q[l],
                                  (l < int'(ncols)) ? a_line[l*32 +: 32] : ident);
            end
            // Pairwise tree over the lanes: p[i] = p[2i] op p[2i+1].
            tree = part_d;
            for (int w = D / 2; w >= 1; w = w / 2) begin
              for (int i = 0; i < w; i++) tree[i] = combine(is_max, tree[2*i], tree[2*i+1]);
            end
            out[31:0] = f32_canon(tree[0]);
          end
        endcase
        if (op_q.op == OPCODE_VREDUCE) begin
          if (ex_chunk_q + 16'd1 == nchunks) begin
            mem.acc.wr_en = 1'b1;
            mem.acc.wr_line = line_of(op_q.dst, op_q.dst_stride, ex_row_q, 16'd0);
            mem.acc.wr_mask = D'(1);
            mem.acc.wr_data = out;
          end
        end else if (op_q.dst_acc) begin
          mem.acc.wr_en = 1'b1;
          mem.acc.wr_line = line_of(op_q.dst, op_q.dst_stride, ex_row_q, ex_chunk_q);
          mem.acc.wr_mask = D'((64'd1 << ncols) - 64'd1);
`ifdef LOOM_FAULT_INJECT
          if (fault_mask_spill) mem.acc.wr_mask = D'((64'd1 << (ncols + 1)) - 64'd1);
`endif
          mem.acc.wr_data = out;
        end else begin
          mem.spad.wr_en = 1'b1;
          mem.spad.wr_line = line_of(op_q.dst, op_q.dst_stride, ex_row_q, ex_chunk_q);
          mem.spad.wr_mask = D'((64'd1 << ncols) - 64'd1);
          mem.spad.wr_data = out;
        end
      end

      if (rd_done_q && !ex_valid_q) begin
        busy_d = 1'b0;
        done_o = 1'b1;
      end
    end
  end

  assign mem_req_o = mem;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      busy_q <= 1'b0;
      op_q <= '0;
      row_q <= '0;
      chunk_q <= '0;
      rd_done_q <= 1'b1;
      ex_valid_q <= 1'b0;
      ex_row_q <= '0;
      ex_chunk_q <= '0;
      part_q <= '0;
    end else begin
      busy_q <= busy_d;
      op_q <= op_d;
      row_q <= row_d;
      chunk_q <= chunk_d;
      rd_done_q <= rd_done_d;
      ex_valid_q <= ex_valid_d;
      ex_row_q <= ex_row_d;
      ex_chunk_q <= ex_chunk_d;
      part_q <= part_d;
    end
  end

  // ------------------------------------------------------------------ assertions
  // The columns of the chunk in EXEC: what a destination write's lane mask must cover.
  logic [15:0] ex_cols;
  assign ex_cols = (op_q.cols - (ex_chunk_q << LogD)) < 16'(D) ? op_q.cols - (ex_chunk_q << LogD)
                                                               : 16'(D);

  `ASSERT(StartOnlyWhenIdle, start_i |-> !busy_q)
  `ASSERT(DoneOnlyWhenBusy, done_o |-> busy_q)
  `ASSERT(IdleDrivesNothing, !busy_q |-> mem_req_o == '0)
  `ASSERT(WritesFromExec, mem_req_o.spad.wr_en || mem_req_o.acc.wr_en |-> ex_valid_q)
  `ASSERT(ReadPositionInRegion, busy_q && !rd_done_q |-> row_q < op_q.rows && chunk_q < nchunks)
  // A destination write covers exactly the chunk's columns (one lane for VREDUCE).
  `ASSERT(AccMaskIsChunk, mem_req_o.acc.wr_en |->
      mem_req_o.acc.wr_mask == (op_q.op == OPCODE_VREDUCE ? D'(1) : D'((64'd1 << ex_cols) - 64'd1)))
  `ASSERT(SpadMaskIsChunk, mem_req_o.spad.wr_en |->
      mem_req_o.spad.wr_mask == D'((64'd1 << ex_cols) - 64'd1))
  `ASSERT(SpadWritesOnlyByMove, mem_req_o.spad.wr_en |-> op_q.op == OPCODE_MOVE && !op_q.dst_acc)

endmodule
