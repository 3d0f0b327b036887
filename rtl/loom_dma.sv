// DMA engine: the core's only AXI4 manager. Executes DMA_LD, DMA_ST and GATHER, and
// fetches blocks of up to FetchInsns instructions for the control unit's fetch buffer.
//
// A transfer is a walk over the pieces of a 2-D DRAM region: one burst per run of
// contiguous bytes of a row (column stride 1; at most MaxBurstBeats beats, never across
// a 4 KiB boundary), or one single-beat access per element (any other column stride).
// Reads: an issuer sends one AR per piece and queues a descriptor (first byte offset,
// byte count); the R side appends the described bytes of each beat to a byte stream; a
// packer pops elements, converts them and writes SRAM lines. Writes mirror it: SRAM
// lines are converted into the byte stream and the W side cuts beats with strobes.
// Several bursts are in flight, so strided (e.g. transposing) transfers stream at one
// element per beat rather than one per DRAM latency.
`include "loom_assert.svh"

module loom_dma
  import loom_pkg::*;
  import loom_axi_pkg::*;
  import loom_mem_pkg::*;
(
  input  logic                clk_i,
  input  logic                rst_ni,
  // Instruction execution
  input  logic                start_i,
  input  logic [InsnBits-1:0] insn_i,
  output logic                done_o,
  output fault_e              fault_o,
  // Instruction fetch: fetch_words_i instructions from fetch_addr_i into the block
  // (held until the next fetch), a bus error flag per instruction
  input  logic                                fetch_i,
  input  logic [31:0]                         fetch_addr_i,
  input  logic [FetchWordBits-1:0]            fetch_words_i,
  output logic                                fetch_done_o,
  output logic [FetchInsns-1:0]               fetch_err_o,
  output logic [FetchInsns-1:0][InsnBits-1:0] fetch_block_o,
  // DRAM
  output axi_req_t            axi_req_o,
  input  axi_rsp_t            axi_rsp_i,
  // On-chip memories
  output mem_req_t            mem_req_o,
  input  mem_rsp_t            mem_rsp_i,
  // Data bytes moved this cycle (instruction fetch excluded): the byte counters
  output logic [15:0]         rd_bytes_o,
  output logic [15:0]         wr_bytes_o
);

  localparam int unsigned BusBytes = StrbBits;
  localparam int unsigned MaxBurstBeats = 16;
  // A store holds what is left of a bus beat while it reads the next SRAM line, so the
  // stream must take one fp32 line beside a partial beat (else an unaligned store of wide
  // lines waits forever: 32 lanes are 128 bytes a line).
  localparam int unsigned StreamMin = Lanes * 4 + BusBytes;
  localparam int unsigned StreamBytes = 4 * BusBytes > StreamMin ? 4 * BusBytes : StreamMin;
  localparam int unsigned StreamBits = StreamBytes * 8;
  localparam int unsigned CntBits = $clog2(StreamBytes + 1);
  localparam int unsigned DescDepth = DmaBursts;  // bursts in flight, sized from the latency
  localparam int unsigned InsnBytes = InsnBits / 8;
  localparam int unsigned FetchBytes = FetchInsns * InsnBytes;
  localparam int unsigned OffBits = $clog2(BusBytes);

  typedef enum logic [2:0] {
    MODE_IDLE,
    MODE_FETCH,
    MODE_LOAD,
    MODE_GATHER,
    MODE_STORE
  } mode_e;

  // What the bytes of a read burst are for.
  typedef enum logic [1:0] {
    KIND_DATA,
    KIND_INDEX,
    KIND_FETCH
  } kind_e;

  typedef struct packed {
    kind_e kind;
    logic [OffBits-1:0] first_off;
    logic [12:0] nbytes;  // at most MaxBurstBeats * BusBytes
  } desc_t;

  typedef enum logic [1:0] {
    ISS_ROW,       // issuing the pieces of row iss_row
    ISS_INDEX,     // GATHER: issue the index read of row iss_row
    ISS_WAIT_IDX,  // GATHER: waiting for that index
    ISS_DONE
  } iss_e;

`ifdef LOOM_FAULT_INJECT
  // Injected fault (+loom_fault_dma_stride; debug-harness self-tests, docs/debug.md):
  // loads and stores step DRAM rows by one element too many.
  // Compiled in only with +define+LOOM_FAULT_INJECT.
  logic fault_stride;
  initial fault_stride = $test$plusargs("loom_fault_dma_stride");
  // +loom_fault_dma_burst_4k: row bursts are not split at 4 KiB boundaries (the data is
  // right; only the DRAM port's AXI4 rule checker sees it).
  logic fault_burst_4k;
  initial fault_burst_4k = $test$plusargs("loom_fault_dma_burst_4k");
`endif

  // ------------------------------------------------------------------ registers
  mode_e mode_d, mode_q;
  dma_ld_insn_t ld_d, ld_q;  // DMA_LD / DMA_ST fields (same layout)
  gather_insn_t ga_d, ga_q;
  logic [31:0] fetch_addr_d, fetch_addr_q;
  logic [FetchWordBits-1:0] fetch_words_d, fetch_words_q;
  fault_e fault_d, fault_q;

  iss_e iss_d, iss_q;
  logic [15:0] iss_row_d, iss_row_q;
  logic [31:0] iss_pos_d, iss_pos_q;  // byte offset in the row (contiguous) or column (strided)
  logic [31:0] gidx_d, gidx_q;  // GATHER: current row's table index

  desc_t [DescDepth-1:0] desc_d, desc_q;
  logic [$clog2(DescDepth):0] desc_cnt_d, desc_cnt_q;
  logic [12:0] rd_left_d, rd_left_q;  // bytes still to take from the head burst
  logic rd_first_d, rd_first_q;  // next beat is the head burst's first

  logic [StreamBits-1:0] sbuf_d, sbuf_q;
  logic [CntBits-1:0] scnt_d, scnt_q;

  logic [15:0] pk_row_d, pk_row_q;  // packer (load) or SRAM reader (store) row
  logic [15:0] pk_col_d, pk_col_q;  // first column not yet packed / read
  line_t lbuf_d, lbuf_q;
  logic [$clog2(Lanes+1)-1:0] lfill_d, lfill_q;
  logic st_rd_pend_d, st_rd_pend_q;  // store: a line read is in flight
  logic [15:0] st_rd_cols_d, st_rd_cols_q;  // ... holding this many columns

  logic [FetchBytes-1:0][7:0] fblk_d, fblk_q;  // the fetched block, byte by byte
  logic [FetchInsns-1:0] ferr_d, ferr_q;  // a bus error in that instruction's bytes
  logic [$clog2(FetchBytes+1)-1:0] fcnt_d, fcnt_q;  // bytes of the block received

  logic [15:0] b_pend_d, b_pend_q;  // write bursts awaiting their B response

  // ------------------------------------------------------------------ transfer geometry
  logic is_bf16, is_acc, strided;
  logic [2:0] esize;
  logic [15:0] rows, cols;
  logic [31:0] row_base;
  logic [31:0] row_bytes;
  logic [19:0] sram_line0, sram_stride_lines;

  always_comb begin
    is_bf16 = (mode_q == MODE_GATHER) ? ga_q.dtype == DTYPE_BF16 : ld_q.dtype == DTYPE_BF16;
    is_acc = (mode_q == MODE_GATHER) ? ga_q.space == MEM_ACC : ld_q.space == MEM_ACC;
    esize = is_bf16 ? 3'd2 : 3'd4;
    rows = (mode_q == MODE_GATHER) ? ga_q.rows : ld_q.rows;
    cols = (mode_q == MODE_GATHER) ? ga_q.cols : ld_q.cols;
    sram_line0 = ((mode_q == MODE_GATHER) ? ga_q.sram : ld_q.sram) / 20'(Lanes);
    sram_stride_lines = ((mode_q == MODE_GATHER) ? ga_q.sram_stride : ld_q.sram_stride) /
                        20'(Lanes);
    strided = (mode_q == MODE_LOAD || mode_q == MODE_STORE) && ld_q.dram_cs != 16'd1 &&
              ld_q.cols != 16'd1;
    row_bytes = 32'(cols) * 32'(esize);
    unique case (mode_q)
      MODE_FETCH: row_base = fetch_addr_q;
      MODE_GATHER: row_base = 32'(64'(ga_q.table_addr) + 64'(gidx_q) * 64'(ga_q.table_rs) * 64'(esize));
      default: row_base = 32'(64'(ld_q.dram) + 64'(iss_row_q) * 64'(ld_q.dram_rs) * 64'(esize));
    endcase
`ifdef LOOM_FAULT_INJECT
    if (fault_stride && mode_q != MODE_FETCH && mode_q != MODE_GATHER) begin
      row_base = 32'(64'(ld_q.dram) + 64'(iss_row_q) * (64'(ld_q.dram_rs) + 64'd1) * 64'(esize));
    end
`endif
    if (mode_q == MODE_FETCH) row_bytes = 32'(fetch_words_q) * 32'(InsnBytes);
  end

  // The piece the issuer sends next.
  logic [31:0] pc_addr;
  logic [12:0] pc_nbytes;
  logic [7:0] pc_len;
  logic pc_row_end;

  always_comb begin
    logic [31:0] left, by_burst, by_4k, n;
    left = '0;
    by_burst = '0;
    by_4k = '0;
    if (strided) begin
      pc_addr = row_base + iss_pos_q * 32'(ld_q.dram_cs) * 32'(esize);
      n = 32'(esize);
      pc_row_end = iss_pos_q + 32'd1 >= 32'(cols);
    end else begin
      pc_addr = row_base + iss_pos_q;
      left = row_bytes - iss_pos_q;
      by_burst = 32'(MaxBurstBeats * BusBytes) - 32'(pc_addr[OffBits-1:0]);
      by_4k = 32'd4096 - {20'd0, pc_addr[11:0]};
      n = left < by_burst ? left : by_burst;
`ifdef LOOM_FAULT_INJECT
      if (fault_burst_4k) by_4k = 32'hFFFF_FFFF;
`endif
      n = n < by_4k ? n : by_4k;
      pc_row_end = iss_pos_q + n >= row_bytes;
    end
    pc_nbytes = 13'(n);
    pc_len = 8'((32'(pc_addr[OffBits-1:0]) + n + 32'(BusBytes) - 32'd1) / 32'(BusBytes) - 32'd1);
  end

  // ------------------------------------------------------------------ element conversion
  // DRAM element (low esize bytes of raw) -> SRAM lane value.
  function automatic logic [31:0] to_lane(logic [31:0] raw, logic bf16, logic acc);
    logic [31:0] v;
    v = bf16 ? {raw[15:0], 16'd0} : raw;
    if (!acc && !bf16) v = {loom_fp_pkg::f32_to_bf16(raw), 16'd0};
    return loom_fp_pkg::f32_canon(v);
  endfunction

  // SRAM lane value -> DRAM element bytes.
  function automatic logic [31:0] to_dram(logic [31:0] lane, logic bf16);
    return bf16 ? {16'd0, loom_fp_pkg::f32_to_bf16(lane)} : lane;
  endfunction

  // ------------------------------------------------------------------ main logic
  axi_req_t axi;
  mem_req_t mem;
  logic ar_fire, r_fire, aw_fire, w_fire, b_fire;
  logic [CntBits-1:0] pop_bytes, push_bytes;
  logic [StreamBits-1:0] push_data;

  always_comb begin
    // defaults: hold state
    mode_d = mode_q;
    ld_d = ld_q;
    ga_d = ga_q;
    fetch_addr_d = fetch_addr_q;
    fetch_words_d = fetch_words_q;
    fault_d = fault_q;
    iss_d = iss_q;
    iss_row_d = iss_row_q;
    iss_pos_d = iss_pos_q;
    gidx_d = gidx_q;
    desc_d = desc_q;
    desc_cnt_d = desc_cnt_q;
    rd_left_d = rd_left_q;
    rd_first_d = rd_first_q;
    pk_row_d = pk_row_q;
    pk_col_d = pk_col_q;
    lbuf_d = lbuf_q;
    lfill_d = lfill_q;
    st_rd_pend_d = st_rd_pend_q;
    st_rd_cols_d = st_rd_cols_q;
    fblk_d = fblk_q;
    ferr_d = ferr_q;
    fcnt_d = fcnt_q;
    b_pend_d = b_pend_q;
    axi = '0;
    mem = '0;
    done_o = 1'b0;
    fetch_done_o = 1'b0;
    rd_bytes_o = '0;
    wr_bytes_o = '0;
    pop_bytes = '0;
    push_bytes = '0;
    push_data = '0;

    // ---------------- start
    if (mode_q == MODE_IDLE) begin
      iss_row_d = '0;
      iss_pos_d = '0;
      pk_row_d = '0;
      pk_col_d = '0;
      lfill_d = '0;
      fcnt_d = '0;
      fault_d = FAULT_NONE;
      rd_first_d = 1'b1;
      if (fetch_i) begin
        mode_d = MODE_FETCH;
        fetch_addr_d = fetch_addr_i;
        fetch_words_d = fetch_words_i;
        ferr_d = '0;
        iss_d = ISS_ROW;
      end else if (start_i) begin
        ld_d = dma_ld_insn_t'(insn_i);
        ga_d = gather_insn_t'(insn_i);
        unique case (opcode_e'(insn_i[7:0]))
          OPCODE_DMA_ST: mode_d = MODE_STORE;
          OPCODE_GATHER: mode_d = MODE_GATHER;
          default: mode_d = MODE_LOAD;
        endcase
        // Empty regions move nothing: nothing to issue, every row already done.
        if ((opcode_e'(insn_i[7:0]) == OPCODE_GATHER) ? (ga_d.rows == 16'd0 || ga_d.cols == 16'd0)
                                                      : (ld_d.rows == 16'd0 || ld_d.cols == 16'd0))
        begin
          iss_d = ISS_DONE;
          pk_row_d = 16'hffff;
        end else begin
          iss_d = (opcode_e'(insn_i[7:0]) == OPCODE_GATHER) ? ISS_INDEX : ISS_ROW;
        end
      end
    end

    // ---------------- issuer: AR (reads) or AW (store)
    if (mode_q != MODE_IDLE && 32'(desc_cnt_q) < DescDepth && fault_q == FAULT_NONE) begin
      if (iss_q == ISS_ROW) begin
        if (mode_q == MODE_STORE) begin
          axi.aw_valid = 1'b1;
          axi.aw_addr = {pc_addr[31:OffBits], OffBits'(0)};
          axi.aw_len = pc_len;
        end else begin
          axi.ar_valid = 1'b1;
          axi.ar_addr = {pc_addr[31:OffBits], OffBits'(0)};
          axi.ar_len = pc_len;
        end
      end else if (iss_q == ISS_INDEX) begin
        axi.ar_valid = 1'b1;
        axi.ar_addr = 32'(64'(ga_q.idx) + 64'(iss_row_q) * 64'd4) & ~32'(BusBytes - 1);
        axi.ar_len = 8'd0;
      end
    end
    ar_fire = axi.ar_valid && axi_rsp_i.ar_ready;
    aw_fire = axi.aw_valid && axi_rsp_i.aw_ready;
    if (ar_fire || aw_fire) begin
      desc_d[desc_cnt_q] = '{
          kind: (mode_q == MODE_FETCH) ? KIND_FETCH : (iss_q == ISS_INDEX) ? KIND_INDEX : KIND_DATA,
          first_off: (iss_q == ISS_INDEX) ? OffBits'(ga_q.idx + 32'(iss_row_q) * 32'd4)
                                          : pc_addr[OffBits-1:0],
          nbytes: (iss_q == ISS_INDEX) ? 13'd4 : pc_nbytes};
      desc_cnt_d = desc_cnt_q + 1'b1;
      if (aw_fire) b_pend_d = b_pend_q + 16'd1;
      if (iss_q == ISS_INDEX) begin
        iss_d = ISS_WAIT_IDX;
      end else if (pc_row_end) begin
        iss_pos_d = '0;
        iss_row_d = iss_row_q + 16'd1;
        if (mode_q == MODE_FETCH || iss_row_q + 16'd1 >= rows) iss_d = ISS_DONE;
        else if (mode_q == MODE_GATHER) iss_d = ISS_INDEX;
      end else begin
        iss_pos_d = strided ? iss_pos_q + 32'd1 : iss_pos_q + 32'(pc_nbytes);
      end
    end

    // ---------------- R: append described bytes to the stream (or index / fetch word)
    begin
      desc_t head;
      logic [OffBits:0] off, take;
      logic [12:0] left;
      logic [CntBits-1:0] room;
      head = desc_q[0];
      off = rd_first_q ? {1'b0, head.first_off} : '0;
      left = rd_first_q ? head.nbytes : rd_left_q;
      take = (13'(BusBytes) - 13'(off) < left) ? (OffBits+1)'(BusBytes) - off
                                                : (OffBits+1)'(left);
      room = CntBits'(StreamBytes) - scnt_q;
      axi.r_ready = desc_cnt_q != '0 && mode_q != MODE_STORE &&
                    (head.kind != KIND_DATA || room >= CntBits'(BusBytes));
      r_fire = axi.r_ready && axi_rsp_i.r_valid;
      if (r_fire) begin
        // A fetch's bus error marks the instructions of the beat (the control unit
        // faults only if it reaches one); the fetch's other bursts still issue.
        if (axi_rsp_i.r_resp != RespOkay && fault_d == FAULT_NONE && head.kind != KIND_FETCH) begin
          fault_d = FAULT_BUS_ERROR;
        end
        unique case (head.kind)
          KIND_DATA: begin
            push_bytes = CntBits'(take);
            push_data = StreamBits'(axi_rsp_i.r_data >> (32'(off) * 8));
            rd_bytes_o = 16'(take);
          end
          KIND_INDEX: begin
            gidx_d = 32'(axi_rsp_i.r_data >> (32'(off) * 8));
            rd_bytes_o = 16'(take);
            iss_d = ISS_ROW;
            if ($signed(gidx_d) < 0 || gidx_d >= 32'(ga_q.table_rows)) begin
              if (fault_d == FAULT_NONE) fault_d = FAULT_GATHER_INDEX;
            end
          end
          default: begin  // KIND_FETCH
            for (int b = 0; b < BusBytes; b++) begin
              if (b >= int'(off) && b < int'(off) + int'(take)) begin
                fblk_d[int'(fcnt_q) + b - int'(off)] = axi_rsp_i.r_data[b*8 +: 8];
              end
            end
            for (int w = 0; w < FetchInsns; w++) begin
              if (axi_rsp_i.r_resp != RespOkay && w * InsnBytes < int'(fcnt_q) + int'(take) &&
                  (w + 1) * InsnBytes > int'(fcnt_q)) begin
                ferr_d[w] = 1'b1;
              end
            end
            fcnt_d = fcnt_q + ($clog2(FetchBytes+1))'(take);
          end
        endcase
        rd_left_d = left - 13'(take);
        rd_first_d = axi_rsp_i.r_last;
        if (axi_rsp_i.r_last) begin
          desc_d = desc_d >> $bits(desc_t);
          desc_cnt_d = desc_cnt_d - 1'b1;
        end
      end
    end

    // ---------------- load: pack stream elements into SRAM lines
    if (mode_q == MODE_LOAD || mode_q == MODE_GATHER) begin
      logic [15:0] avail, n, room_lanes, left_cols, line_in_row;
      line_t line;
      avail = 16'(scnt_q) / 16'(esize);
      room_lanes = 16'(Lanes) - 16'(lfill_q);
      left_cols = cols - pk_col_q;
      n = avail < room_lanes ? avail : room_lanes;
      n = n < left_cols ? n : left_cols;
      line = lbuf_q;
      // Element l - lfill of the stream, selected in place (a part-select of one word;
      // shifting the whole stream per lane costs a StreamBits-wide shift each). In range:
      // at most Lanes elements of at most 4 bytes, and StreamBytes >= 4 * Lanes + BusBytes.
      for (int l = 0; l < Lanes; l++) begin
        if (l >= int'(lfill_q) && l < int'(lfill_q) + int'(n)) begin
          line[l*32 +: 32] = to_lane(
              is_bf16 ? {16'd0, sbuf_q[(l - int'(lfill_q)) * 16 +: 16]}
                      : sbuf_q[(l - int'(lfill_q)) * 32 +: 32],
              is_bf16, is_acc);
        end
      end
      if (n != 16'd0 && pk_row_q < rows) begin
        pop_bytes = CntBits'(n * 16'(esize));
        pk_col_d = pk_col_q + n;
        lfill_d = lfill_q + ($clog2(Lanes+1))'(n);
        lbuf_d = line;
        line_in_row = (pk_col_d - 16'd1) / 16'(Lanes);
        if (32'(lfill_q) + 32'(n) == Lanes || pk_col_d == cols) begin
          if (is_acc) begin
            mem.acc.wr_en = 1'b1;
            mem.acc.wr_line = sram_line0 + 20'(pk_row_q) * sram_stride_lines + 20'(line_in_row);
            mem.acc.wr_mask = Lanes'((64'd1 << (32'(lfill_q) + 32'(n))) - 64'd1);
            mem.acc.wr_data = line;
          end else begin
            mem.spad.wr_en = 1'b1;
            mem.spad.wr_line = sram_line0 + 20'(pk_row_q) * sram_stride_lines + 20'(line_in_row);
            mem.spad.wr_mask = Lanes'((64'd1 << (32'(lfill_q) + 32'(n))) - 64'd1);
            mem.spad.wr_data = line;
          end
          lfill_d = '0;
          lbuf_d = '0;
          if (pk_col_d == cols) begin
            pk_col_d = '0;
            pk_row_d = pk_row_q + 16'd1;
          end
        end
      end
    end

    // ---------------- store: SRAM lines -> converted bytes in the stream
    if (mode_q == MODE_STORE) begin
      logic [15:0] ncols;
      logic [CntBits:0] inflight;
      // Data of the line read issued last cycle.
      if (st_rd_pend_q) begin
        line_t src;
        logic [31:0] elem;
        src = is_acc ? mem_rsp_i.acc.rd_data[0] : mem_rsp_i.spad.rd_data[0];
        for (int l = 0; l < Lanes; l++) begin
          if (l < int'(st_rd_cols_q)) begin
            // In place, as the packer reads (no StreamBits-wide shift per lane).
            elem = to_dram(src[l*32 +: 32], is_bf16);
            if (is_bf16) push_data[l*16 +: 16] = elem[15:0];
            else push_data[l*32 +: 32] = elem;
          end
        end
        push_bytes = CntBits'(st_rd_cols_q * 16'(esize));
      end
      st_rd_pend_d = 1'b0;
      ncols = (cols - pk_col_q) < 16'(Lanes) ? cols - pk_col_q : 16'(Lanes);
      inflight = (CntBits+1)'(scnt_q) + (CntBits+1)'(push_bytes) +
                 (CntBits+1)'(ncols * 16'(esize));
      if (pk_row_q < rows && cols != 16'd0 && inflight <= (CntBits+1)'(StreamBytes)) begin
        if (is_acc) begin
          mem.acc.rd_en[0] = 1'b1;
          mem.acc.rd_line[0] = sram_line0 + 20'(pk_row_q) * sram_stride_lines +
                               20'(pk_col_q / 16'(Lanes));
        end else begin
          mem.spad.rd_en[0] = 1'b1;
          mem.spad.rd_line[0] = sram_line0 + 20'(pk_row_q) * sram_stride_lines +
                                20'(pk_col_q / 16'(Lanes));
        end
        st_rd_pend_d = 1'b1;
        st_rd_cols_d = ncols;
        pk_col_d = pk_col_q + ncols;
        if (pk_col_d == cols) begin
          pk_col_d = '0;
          pk_row_d = pk_row_q + 16'd1;
        end
      end
    end

    // ---------------- W: cut beats with strobes from the stream
    w_fire = 1'b0;
    if (mode_q == MODE_STORE && desc_cnt_q != '0) begin
      desc_t head;
      logic [OffBits:0] off, take;
      logic [12:0] left;
      head = desc_q[0];
      off = rd_first_q ? {1'b0, head.first_off} : '0;
      left = rd_first_q ? head.nbytes : rd_left_q;
      take = (13'(BusBytes) - 13'(off) < left) ? (OffBits+1)'(BusBytes) - off
                                                : (OffBits+1)'(left);
      if (scnt_q >= CntBits'(take)) begin
        axi.w_valid = 1'b1;
        axi.w_data = DataBits'(sbuf_q) << (32'(off) * 8);
        axi.w_strb = StrbBits'(((65'd1 << take) - 65'd1) << off);
        axi.w_last = left == 13'(take);
      end
      w_fire = axi.w_valid && axi_rsp_i.w_ready;
      if (w_fire) begin
        pop_bytes = CntBits'(take);
        wr_bytes_o = 16'(take);
        rd_left_d = left - 13'(take);
        rd_first_d = axi.w_last;
        if (axi.w_last) begin
          desc_d = desc_d >> $bits(desc_t);
          desc_cnt_d = desc_cnt_d - 1'b1;
        end
      end
    end
    axi.b_ready = 1'b1;
    b_fire = axi_rsp_i.b_valid;
    if (b_fire) begin
      b_pend_d = b_pend_d - 16'd1;
      if (axi_rsp_i.b_resp != RespOkay && fault_d == FAULT_NONE) fault_d = FAULT_BUS_ERROR;
    end

    // ---------------- completion
    unique case (mode_q)
      MODE_FETCH: begin
        if (iss_q == ISS_DONE && desc_cnt_d == '0) begin
          fetch_done_o = 1'b1;
          mode_d = MODE_IDLE;
        end
      end
      MODE_LOAD, MODE_GATHER: begin
        // A fault stops issuing; finish once the bursts in flight have drained.
        if (desc_cnt_d == '0 &&
            (fault_d != FAULT_NONE || (iss_q == ISS_DONE && pk_row_d >= rows))) begin
          done_o = 1'b1;
          mode_d = MODE_IDLE;
        end
      end
      MODE_STORE: begin
        if (desc_cnt_d == '0 && b_pend_d == '0 && !st_rd_pend_q &&
            (fault_d != FAULT_NONE || (iss_q == ISS_DONE && pk_row_d >= rows))) begin
          done_o = 1'b1;
          mode_d = MODE_IDLE;
        end
      end
      default: ;
    endcase
  end

  // Byte stream: pop from the front, then append.
  always_comb begin
    logic [StreamBits-1:0] kept, mask;
    logic [CntBits-1:0] kept_cnt;
    kept = sbuf_q >> (32'(pop_bytes) * 8);
    kept_cnt = scnt_q - pop_bytes;
    mask = (StreamBits'(1) << (32'(push_bytes) * 8)) - StreamBits'(1);
    if (32'(push_bytes) * 8 >= StreamBits) mask = '1;
    sbuf_d = kept | ((push_data & mask) << (32'(kept_cnt) * 8));
    scnt_d = kept_cnt + push_bytes;
    if (mode_q == MODE_IDLE) begin
      sbuf_d = '0;
      scnt_d = '0;
    end
  end

  assign axi_req_o = axi;
  assign mem_req_o = mem;
  assign fault_o = fault_d;  // final in the done cycle (a fault found by the last beat)
  // The block and its error flags are registers: the control unit reads them from the
  // cycle after fetch_done_o until it requests the next block.
  assign fetch_err_o = ferr_q;
  assign fetch_block_o = fblk_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      mode_q <= MODE_IDLE;
      ld_q <= '0;
      ga_q <= '0;
      fetch_addr_q <= '0;
      fetch_words_q <= '0;
      fault_q <= FAULT_NONE;
      iss_q <= ISS_DONE;
      iss_row_q <= '0;
      iss_pos_q <= '0;
      gidx_q <= '0;
      desc_q <= '0;
      desc_cnt_q <= '0;
      rd_left_q <= '0;
      rd_first_q <= 1'b1;
      sbuf_q <= '0;
      scnt_q <= '0;
      pk_row_q <= '0;
      pk_col_q <= '0;
      lbuf_q <= '0;
      lfill_q <= '0;
      st_rd_pend_q <= 1'b0;
      st_rd_cols_q <= '0;
      fblk_q <= '0;
      ferr_q <= '0;
      fcnt_q <= '0;
      b_pend_q <= '0;
    end else begin
      mode_q <= mode_d;
      ld_q <= ld_d;
      ga_q <= ga_d;
      fetch_addr_q <= fetch_addr_d;
      fetch_words_q <= fetch_words_d;
      fault_q <= fault_d;
      iss_q <= iss_d;
      iss_row_q <= iss_row_d;
      iss_pos_q <= iss_pos_d;
      gidx_q <= gidx_d;
      desc_q <= desc_d;
      desc_cnt_q <= desc_cnt_d;
      rd_left_q <= rd_left_d;
      rd_first_q <= rd_first_d;
      sbuf_q <= sbuf_d;
      scnt_q <= scnt_d;
      pk_row_q <= pk_row_d;
      pk_col_q <= pk_col_d;
      lbuf_q <= lbuf_d;
      lfill_q <= lfill_d;
      st_rd_pend_q <= st_rd_pend_d;
      st_rd_cols_q <= st_rd_cols_d;
      fblk_q <= fblk_d;
      ferr_q <= ferr_d;
      fcnt_q <= fcnt_d;
      b_pend_q <= b_pend_d;
    end
  end

  // ------------------------------------------------------------------ assertions
  // The bytes of the W beat its strobes enable: what must hold still while W waits.
  logic [DataBits-1:0] w_strobed;
  always_comb begin
    for (int b = 0; b < BusBytes; b++) begin
      w_strobed[b*8 +: 8] = axi_req_o.w_strb[b] ? axi_req_o.w_data[b*8 +: 8] : 8'd0;
    end
  end

  `ASSERT_KNOWN(ModeKnown, mode_q)
  `ASSERT(ModeValid, mode_q inside {MODE_IDLE, MODE_FETCH, MODE_LOAD, MODE_GATHER, MODE_STORE})
  `ASSERT(StartOnlyWhenIdle, start_i || fetch_i |-> mode_q == MODE_IDLE)
  `ASSERT(FetchDoneInFetch, fetch_done_o |-> mode_q == MODE_FETCH)
  `ASSERT(FetchWordsInRange, fetch_i |-> fetch_words_i != '0 && 32'(fetch_words_i) <= FetchInsns)
  `ASSERT(FetchBlockFilled, fetch_done_o |-> 32'(fcnt_d) == 32'(fetch_words_q) * InsnBytes)
  `ASSERT(DoneOnlyForData, done_o |-> mode_q inside {MODE_LOAD, MODE_GATHER, MODE_STORE})
  `ASSERT(DrainedWhenIdle, mode_q == MODE_IDLE |-> desc_cnt_q == '0 && b_pend_q == '0)
  `ASSERT(DescriptorsBounded, 32'(desc_cnt_q) <= DescDepth)
  `ASSERT(StreamBounded, 32'(scnt_q) <= StreamBytes)
  // AXI4 on the DRAM port (the simulated DRAM checks the same rules from outside:
  // sim/rtl/hdl/loom_axi_check.cc): requests and W beats held until accepted, bursts
  // aligned, at most MaxBurstBeats beats, inside one 4 KiB page.
  `ASSERT_HELD(ArHeld, axi_req_o.ar_valid, axi_rsp_i.ar_ready,
               {axi_req_o.ar_addr, axi_req_o.ar_len})
  `ASSERT_HELD(AwHeld, axi_req_o.aw_valid, axi_rsp_i.aw_ready,
               {axi_req_o.aw_addr, axi_req_o.aw_len})
  `ASSERT_HELD(WHeld, axi_req_o.w_valid, axi_rsp_i.w_ready,
               {w_strobed, axi_req_o.w_strb, axi_req_o.w_last})
  `ASSERT(ArAligned, axi_req_o.ar_valid |-> axi_req_o.ar_addr[OffBits-1:0] == '0)
  `ASSERT(AwAligned, axi_req_o.aw_valid |-> axi_req_o.aw_addr[OffBits-1:0] == '0)
  `ASSERT(ArBurstLength, axi_req_o.ar_valid |-> 32'(axi_req_o.ar_len) < MaxBurstBeats)
  `ASSERT(AwBurstLength, axi_req_o.aw_valid |-> 32'(axi_req_o.aw_len) < MaxBurstBeats)
  `ASSERT(ArWithinPage, axi_req_o.ar_valid |->
      32'(axi_req_o.ar_addr[11:0]) + (32'(axi_req_o.ar_len) + 32'd1) * BusBytes <= 32'd4096)
  `ASSERT(AwWithinPage, axi_req_o.aw_valid |->
      32'(axi_req_o.aw_addr[11:0]) + (32'(axi_req_o.aw_len) + 32'd1) * BusBytes <= 32'd4096)
  `ASSERT(WOnlyForStores, axi_req_o.w_valid |-> mode_q == MODE_STORE)
  `ASSERT(BResponseExpected, axi_rsp_i.b_valid |-> b_pend_q != '0)
  // SRAM: loads write, stores read, nothing else touches it.
  `ASSERT(SramWritesInLoads, mem_req_o.spad.wr_en || mem_req_o.acc.wr_en |->
                             mode_q inside {MODE_LOAD, MODE_GATHER})
  `ASSERT(SramReadsInStores, mem_req_o.spad.rd_en != '0 || mem_req_o.acc.rd_en != '0 |->
                             mode_q == MODE_STORE)
  `ASSERT(BytesOnlyForData, rd_bytes_o != '0 || wr_bytes_o != '0 |->
                            mode_q inside {MODE_LOAD, MODE_GATHER, MODE_STORE})

endmodule
