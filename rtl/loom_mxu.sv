// Matrix unit: an ArrayDim x ArrayDim output-stationary systolic array, bf16 x bf16 ->
// fp32, each PE accumulating its C element strictly in k order (the numerics contract).
//
// MATMUL is computed one C tile (up to D x D) at a time:
//   INIT   accumulators <- 0, the bias row, or the current C tile (acc=1);
//   STREAM A and B stream through the array; row i of A enters at the left edge skewed
//          by i cycles and moves right, column j of B enters at the top skewed by j
//          cycles and moves down, so PE(i,j) sees A[i,k] and B[k,j] in the same cycle.
//          Operand blocks of D k-steps are double-buffered: line l of block kb+1 is read
//          from SPAD while block kb streams, so the array takes one k-step per cycle;
//   WRITE  the tile's rows go back to ACC, one line per cycle.
// The PE state is a set of unpacked arrays updated by one loop, not D*D module instances:
// that shape compiles to tight C++ (one machine word per PE operand, read and written
// directly; packed D*D vectors cost a shift and a mask per access), which keeps full-model
// simulation fast.
`include "loom_assert.svh"

module loom_mxu
  import loom_pkg::*;
  import loom_mem_pkg::*;
(
  input  logic                clk_i,
  input  logic                rst_ni,
  input  logic                start_i,
  input  logic [InsnBits-1:0] insn_i,
  output logic                done_o,
  output logic [31:0]         macs_o,  // MACs of the tile finished this cycle
  output mem_req_t            mem_req_o,
  input  mem_rsp_t            mem_rsp_i
);

  localparam int unsigned D = ArrayDim;
  localparam int unsigned LogD = $clog2(D);

  typedef enum logic [2:0] {
    PH_IDLE,
    PH_INIT,
    PH_STREAM,
    PH_WRITE,
    PH_FINISH  // empty product: report done one cycle after start
  } phase_e;

  typedef logic [D-1:0][15:0] bf16_line_t;

  phase_e phase_d, phase_q;
  matmul_insn_t mm_d, mm_q;
  logic [15:0] mt_d, mt_q;  // first row of the current tile
  logic [15:0] nt_d, nt_q;  // first column of the current tile
  logic [31:0] step_d, step_q;  // cycle within the phase

  // PE(i,j): its accumulator, the A and B operands it holds and their valid bits.
  // Left out of toggle coverage (8192 state bits with no coverage target on them).
  /*verilator coverage_off*/
  logic [31:0] acc_d[D][D], acc_q[D][D];
  logic [15:0] a_d[D][D], a_q[D][D], b_d[D][D], b_q[D][D];
  logic va_d[D][D], va_q[D][D], vb_d[D][D], vb_q[D][D];
  /*verilator coverage_on*/
  // Operand block buffers [block parity][line][lane]: small memories written one line per
  // cycle through a write port (no next-state copy of all 2 x 2 x D lines every cycle).
  logic [15:0] abuf_q[2][D][D], bbuf_q[2][D][D];
  logic abuf_we, bbuf_we;
  bf16_line_t abuf_wdata, bbuf_wdata;
  // Operand line reads in flight: target buffer, block parity and line.
  logic ld_a_d, ld_a_q, ld_b_d, ld_b_q;
  logic ld_par_d, ld_par_q;
  logic [LogD-1:0] ld_line_d, ld_line_q;

  logic [15:0] mrows, ncols;
  logic [31:0] nblocks;
  logic [31:0] stream_len;

  function automatic bf16_line_t upper_halves(line_t line);
    bf16_line_t out;
    for (int l = 0; l < D; l++) out[l] = line[l*32+16 +: 16];
    return out;
  endfunction

`ifdef LOOM_FAULT_INJECT
  // Injected fault (+loom_fault_mxu_acc_flip; debug-harness self-tests, docs/debug.md):
  // MATMUL's accumulate enable is inverted.
  // Compiled in only with +define+LOOM_FAULT_INJECT.
  logic fault_acc_flip;
  initial fault_acc_flip = $test$plusargs("loom_fault_mxu_acc_flip");
`endif

  // The accumulate enable as the datapath sees it (inverted only by the injected fault).
  logic acc_flip;
`ifdef LOOM_FAULT_INJECT
  assign acc_flip = fault_acc_flip;
`else
  assign acc_flip = 1'b0;
`endif

  always_comb begin
    mrows = (mm_q.m - mt_q) < 16'(D) ? mm_q.m - mt_q : 16'(D);
    ncols = (mm_q.n - nt_q) < 16'(D) ? mm_q.n - nt_q : 16'(D);
    nblocks = (32'(mm_q.k) + 32'(D) - 32'd1) >> LogD;
    // Block 0 loads during the first D cycles; the last k-step reaches PE(mrows-1, ncols-1)
    // mrows + ncols - 2 cycles after it enters.
    stream_len = 32'(D) + 32'(mm_q.k) + 32'(mrows) + 32'(ncols) - 32'd2;
  end

  mem_req_t mem;
  logic [D-1:0][15:0] edge_a, edge_b;
  logic [D-1:0] edge_va, edge_vb;

  logic [31:0] kb, l, krow, f, kk;  // STREAM temporaries

  always_comb begin
    kb = '0;
    l = '0;
    krow = '0;
    f = '0;
    kk = '0;
    phase_d = phase_q;
    mm_d = mm_q;
    mt_d = mt_q;
    nt_d = nt_q;
    step_d = step_q + 32'd1;
    acc_d = acc_q;
    a_d = a_q;
    b_d = b_q;
    va_d = va_q;
    vb_d = vb_q;
    abuf_we = 1'b0;
    bbuf_we = 1'b0;
    abuf_wdata = '0;
    bbuf_wdata = '0;
    ld_a_d = 1'b0;
    ld_b_d = 1'b0;
    ld_par_d = ld_par_q;
    ld_line_d = ld_line_q;
    mem = '0;
    done_o = 1'b0;
    macs_o = '0;
    edge_a = '0;
    edge_b = '0;
    edge_va = '0;
    edge_vb = '0;

    unique case (phase_q)
      PH_IDLE: begin
        step_d = '0;
        if (start_i) begin
          mm_d = matmul_insn_t'(insn_i);
          mt_d = '0;
          nt_d = '0;
          // An empty product writes nothing.
          phase_d = (mm_d.m == 16'd0 || mm_d.n == 16'd0) ? PH_FINISH : PH_INIT;
        end
      end

      PH_INIT: begin
        if (mm_q.acc != acc_flip) begin
          // C rows: read row step, receive row step-1.
          if (step_q < 32'(mrows)) begin
            mem.acc.rd_en[1] = 1'b1;
            mem.acc.rd_line[1] = line_addr_t'((32'(mm_q.dst) + (32'(mt_q) + step_q) *
                                               32'(mm_q.dst_stride)) >> LogD) +
                                 (line_addr_t'(nt_q) >> LogD);
          end
          if (step_q >= 32'd1) begin
            for (int j = 0; j < D; j++) begin
              acc_d[LogD'(step_q - 32'd1)][j] = mem_rsp_i.acc.rd_data[1][j*32 +: 32];
            end
          end
          if (step_q == 32'(mrows)) begin
            phase_d = PH_STREAM;
            step_d = '0;
          end
        end else if (mm_q.use_bias) begin
          if (step_q == 32'd0) begin
            mem.acc.rd_en[1] = 1'b1;
            mem.acc.rd_line[1] = line_addr_t'(mm_q.bias >> LogD) + (line_addr_t'(nt_q) >> LogD);
          end else begin
            for (int i = 0; i < D; i++) begin
              for (int j = 0; j < D; j++) acc_d[i][j] = mem_rsp_i.acc.rd_data[1][j*32 +: 32];
            end
            phase_d = PH_STREAM;
            step_d = '0;
          end
        end else begin
          acc_d = '{default: '0};
          phase_d = PH_STREAM;
          step_d = '0;
        end
        va_d = '{default: 1'b0};
        vb_d = '{default: 1'b0};
      end

      PH_STREAM: begin
        // Operand lines of the next block arriving from SPAD.
        abuf_we = ld_a_q;
        bbuf_we = ld_b_q;
        abuf_wdata = upper_halves(mem_rsp_i.spad.rd_data[0]);
        bbuf_wdata = upper_halves(mem_rsp_i.spad.rd_data[1]);
        // Read line l of block kb = step / D (one block ahead of the array).
        begin
          kb = step_q >> LogD;
          l = step_q & 32'(D - 1);
          ld_par_d = kb[0];
          ld_line_d = LogD'(l);
          if (kb < nblocks) begin
            if (l < 32'(mrows)) begin
              ld_a_d = 1'b1;
              mem.spad.rd_en[0] = 1'b1;
              mem.spad.rd_line[0] = line_addr_t'((32'(mm_q.a) + (32'(mt_q) + l) *
                                                  32'(mm_q.a_stride)) >> LogD) +
                                    line_addr_t'(kb);
            end
            krow = (kb << LogD) + l;
            if (mm_q.trans_b ? l < 32'(ncols) : krow < 32'(mm_q.k)) begin
              ld_b_d = 1'b1;
              mem.spad.rd_en[1] = 1'b1;
              mem.spad.rd_line[1] = mm_q.trans_b ?
                  line_addr_t'((32'(mm_q.b) + (32'(nt_q) + l) * 32'(mm_q.b_stride)) >> LogD) +
                      line_addr_t'(kb) :
                  line_addr_t'((32'(mm_q.b) + krow * 32'(mm_q.b_stride)) >> LogD) +
                      (line_addr_t'(nt_q) >> LogD);
            end
          end
        end
        // Skewed edge inputs for feed cycle f = step - D.
        begin
          f = step_q - 32'(D);
          for (int i = 0; i < D; i++) begin
            kk = f - 32'(i);
            if (step_q >= 32'(D) && f >= 32'(i) && kk < 32'(mm_q.k) && i < int'(mrows)) begin
              edge_va[i] = 1'b1;
              edge_a[i] = abuf_q[kk[LogD]][i][kk[LogD-1:0]];
            end
          end
          for (int j = 0; j < D; j++) begin
            kk = f - 32'(j);
            if (step_q >= 32'(D) && f >= 32'(j) && kk < 32'(mm_q.k) && j < int'(ncols)) begin
              edge_vb[j] = 1'b1;
              edge_b[j] = mm_q.trans_b ? bbuf_q[kk[LogD]][j][kk[LogD-1:0]]
                                       : bbuf_q[kk[LogD]][kk[LogD-1:0]][j];
            end
          end
        end
        // The array: A moves right, B moves down, PE(i,j) accumulates when both are valid.
        for (int i = 0; i < D; i++) begin
          a_d[i][0] = edge_a[i];
          va_d[i][0] = edge_va[i];
          b_d[0][i] = edge_b[i];
          vb_d[0][i] = edge_vb[i];
          for (int j = 1; j < D; j++) begin
            a_d[i][j] = a_q[i][j-1];
            va_d[i][j] = va_q[i][j-1];
            b_d[j][i] = b_q[j-1][i];
            vb_d[j][i] = vb_q[j-1][i];
          end
        end
        for (int i = 0; i < D; i++) begin
          for (int j = 0; j < D; j++) begin
            if (va_d[i][j] && vb_d[i][j]) begin
              acc_d[i][j] = loom_fp_pkg::f32_add(acc_q[i][j],
                                                 loom_fp_pkg::bf16_mul(a_d[i][j], b_d[i][j]));
            end
          end
        end
        if (step_q + 32'd1 == stream_len) begin
          phase_d = PH_WRITE;
          step_d = '0;
        end
      end

      PH_WRITE: begin
        mem.acc.wr_en = 1'b1;
        mem.acc.wr_line = line_addr_t'((32'(mm_q.dst) + (32'(mt_q) + step_q) *
                                        32'(mm_q.dst_stride)) >> LogD) +
                          (line_addr_t'(nt_q) >> LogD);
        mem.acc.wr_mask = D'((64'd1 << ncols) - 64'd1);
        for (int j = 0; j < D; j++) mem.acc.wr_data[j*32 +: 32] = acc_q[LogD'(step_q)][j];
        if (step_q + 32'd1 == 32'(mrows)) begin
          macs_o = 32'(mrows) * 32'(ncols) * 32'(mm_q.k);
          step_d = '0;
          if (32'(nt_q) + 32'(D) < 32'(mm_q.n)) begin
            nt_d = nt_q + 16'(D);
            phase_d = PH_INIT;
          end else if (32'(mt_q) + 32'(D) < 32'(mm_q.m)) begin
            nt_d = '0;
            mt_d = mt_q + 16'(D);
            phase_d = PH_INIT;
          end else begin
            phase_d = PH_IDLE;
            done_o = 1'b1;
          end
        end
      end

      default: begin  // PH_FINISH
        phase_d = PH_IDLE;
        done_o = 1'b1;
      end
    endcase
  end

  assign mem_req_o = mem;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      phase_q <= PH_IDLE;
      mm_q <= '0;
      mt_q <= '0;
      nt_q <= '0;
      step_q <= '0;
      acc_q <= '{default: '0};
      a_q <= '{default: '0};
      b_q <= '{default: '0};
      va_q <= '{default: 1'b0};
      vb_q <= '{default: 1'b0};
      ld_a_q <= 1'b0;
      ld_b_q <= 1'b0;
      ld_par_q <= 1'b0;
      ld_line_q <= '0;
    end else begin
      phase_q <= phase_d;
      mm_q <= mm_d;
      mt_q <= mt_d;
      nt_q <= nt_d;
      step_q <= step_d;
      acc_q <= acc_d;
      a_q <= a_d;
      b_q <= b_d;
      va_q <= va_d;
      vb_q <= vb_d;
      ld_a_q <= ld_a_d;
      ld_b_q <= ld_b_d;
      ld_par_q <= ld_par_d;
      ld_line_q <= ld_line_d;
    end
  end

  // The operand buffers: one line written per cycle (a line is read only after STREAM has
  // written it in the same tile: block kb is read D cycles after it is loaded).
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      abuf_q <= '{default: '0};
      bbuf_q <= '{default: '0};
    end else begin
      if (abuf_we) begin
        for (int lane = 0; lane < D; lane++) abuf_q[ld_par_q][ld_line_q][lane] <= abuf_wdata[lane];
      end
      if (bbuf_we) begin
        for (int lane = 0; lane < D; lane++) bbuf_q[ld_par_q][ld_line_q][lane] <= bbuf_wdata[lane];
      end
    end
  end

  // ------------------------------------------------------------------ assertions
  `ASSERT_KNOWN(PhaseKnown, phase_q)
  `ASSERT(PhaseValid, phase_q inside {PH_IDLE, PH_INIT, PH_STREAM, PH_WRITE, PH_FINISH})
  `ASSERT(StartOnlyWhenIdle, start_i |-> phase_q == PH_IDLE)
  `ASSERT(DoneEndsInstruction, done_o |=> phase_q == PH_IDLE)
  `ASSERT(DoneFromWriteOrFinish, done_o |-> phase_q inside {PH_WRITE, PH_FINISH})
  // Each phase uses only its own ports: C/bias reads in INIT, operand reads in STREAM,
  // result writes in WRITE; the matrix unit never writes the scratchpad.
  `ASSERT(AccReadsInInit, mem_req_o.acc.rd_en != '0 |-> phase_q == PH_INIT)
  `ASSERT(SpadReadsInStream, mem_req_o.spad.rd_en != '0 |-> phase_q == PH_STREAM)
  `ASSERT(AccWritesInWrite, mem_req_o.acc.wr_en |-> phase_q == PH_WRITE)
  `ASSERT(NoSpadWrites, !mem_req_o.spad.wr_en)
  `ASSERT(MacsWithTileWrite, macs_o != '0 |-> phase_q == PH_WRITE)
  // The current tile lies inside the product.
  `ASSERT(TileInsideProduct, phase_q inside {PH_INIT, PH_STREAM, PH_WRITE} |->
                             mt_q < mm_q.m && nt_q < mm_q.n)
  `ASSERT(WriteRowInTile, phase_q == PH_WRITE |-> step_q < 32'(mrows))

endmodule
