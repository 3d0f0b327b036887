// Control unit: fetch, decode, static checks, in-order issue, retire.
//
// Fetch: a fetch buffer holds the last block of up to FetchInsns instructions the DMA
// engine fetched (one DRAM request per block, not per instruction); an instruction
// whose pc the block holds issues without a DRAM round trip. The code does not change
// while a segment runs (the ISA model executes the program's code, not DRAM), and the
// buffer is emptied at every start, so a block is never stale.
//
// Issue is blocking: an instruction issues when the previous one has retired, so every
// read-after-write, write-after-read and DRAM ordering dependency the ISA defines holds
// by construction and FENCE/CHECKPOINT find every unit idle. The unit that executes an
// instruction owns the on-chip memory ports until it reports done.
`include "loom_assert.svh"

module loom_ctrl
  import loom_pkg::*;
  import loom_mem_pkg::*;
(
  input  logic                clk_i,
  input  logic                rst_ni,
  // Host
  input  logic                start_i,
  input  logic [31:0]         pc_start_i,
  input  logic [31:0]         code_end_i,
  input  logic [31:0]         dram_limit_i,
  output logic                busy_o,
  output logic                done_o,
  output fault_e              fault_o,
  output logic [31:0]         fault_pc_o,
  output logic [31:0]         retired_o,
  output logic [15:0]         last_layer_o,
  // Fetch through the DMA engine: blocks of fetch_words_o instructions from fetch_addr_o
  output logic                                fetch_o,
  output logic [31:0]                         fetch_addr_o,
  output logic [FetchWordBits-1:0]            fetch_words_o,
  input  logic                                fetch_done_i,
  input  logic [FetchInsns-1:0]               fetch_err_i,
  input  logic [FetchInsns-1:0][InsnBits-1:0] fetch_block_i,
  // Units
  output logic [InsnBits-1:0] insn_o,
  output logic                dma_start_o,
  output logic                mxu_start_o,
  output logic                vpu_start_o,
  input  logic                dma_done_i,
  input  fault_e              dma_fault_i,
  input  logic                mxu_done_i,
  input  logic                vpu_done_i,
  output unit_e               active_o,
  output logic                fetching_o,
  // Events: a CHECKPOINT retired (layer id) and every retirement (index, pc)
  output logic                ckpt_valid_o,
  output logic [15:0]         ckpt_layer_o,
  output logic                retire_valid_o,
  output logic [31:0]         retire_index_o,
  output logic [31:0]         retire_pc_o
);

  typedef enum logic [2:0] {
    ST_IDLE,
    ST_FETCH_REQ,
    ST_FETCH_WAIT,
    ST_ISSUE,
    ST_EXEC,
    ST_DONE,
    ST_FAULT
  } state_e;

  localparam logic [31:0] InsnBytes = 32'(InsnBits / 8);
  localparam int unsigned InsnShift = $clog2(InsnBits / 8);
  localparam int unsigned FbIndexBits = FetchInsns > 1 ? $clog2(FetchInsns) : 1;

  state_e state_d, state_q;
  logic [31:0] pc_d, pc_q, index_d, index_q;
  logic [InsnBits-1:0] insn_d, insn_q;
  fault_e fault_d, fault_q;
  logic [31:0] fault_pc_d, fault_pc_q;
  logic [15:0] last_layer_d, last_layer_q;
  // Fetch buffer: the block at fb_base_q, fb_words_q instructions (0: empty).
  logic [31:0] fb_base_d, fb_base_q;
  logic [FetchWordBits-1:0] fb_words_d, fb_words_q, fetch_words_d, fetch_words_q;
  logic fb_hit;
  logic [FbIndexBits-1:0] fb_index;
  unit_e active_d, active_q;
  fault_e check_fault;
  // Requests to the units leave from registers: no combinational path from a unit's
  // done back into its own start (keeps the simulation's evaluation order flat).
  logic fetch_d, fetch_q, dma_start_d, dma_start_q, mxu_start_d, mxu_start_q;
  logic vpu_start_d, vpu_start_q;

  loom_insn_check u_check (
    .clk_i,
    .rst_ni,
    .insn_i      (insn_q),
    .dram_limit_i(dram_limit_i),
    .fault_o     (check_fault)
  );

  // The buffer holds pc when pc lies in [fb_base, fb_base + fb_words * InsnBytes).
  always_comb begin
    logic [32:0] off;
    off = {1'b0, pc_q} - {1'b0, fb_base_q};
    fb_hit = !off[32] && off < 33'(fb_words_q) << InsnShift;
    fb_index = FbIndexBits'(off >> InsnShift);  // < fb_words_q <= FetchInsns on a hit
  end

  opcode_e opcode;
  checkpoint_insn_t ckpt;
  assign opcode = opcode_e'(insn_q[7:0]);
  assign ckpt = checkpoint_insn_t'(insn_q);

`ifdef LOOM_FAULT_INJECT
  // Injected fault (+loom_fault_ctrl_pc_skip; debug-harness self-tests, docs/debug.md):
  // the pc skips the instruction after every MOVE.
  // Compiled in only with +define+LOOM_FAULT_INJECT.
  logic fault_pc_skip;
  initial fault_pc_skip = $test$plusargs("loom_fault_ctrl_pc_skip");
`endif

  always_comb begin
    state_d = state_q;
    pc_d = pc_q;
    index_d = index_q;
    insn_d = insn_q;
    fault_d = fault_q;
    fault_pc_d = fault_pc_q;
    last_layer_d = last_layer_q;
    fb_base_d = fb_base_q;
    fb_words_d = fb_words_q;
    fetch_words_d = fetch_words_q;
    active_d = active_q;
    fetch_d = 1'b0;
    dma_start_d = 1'b0;
    mxu_start_d = 1'b0;
    vpu_start_d = 1'b0;
    ckpt_valid_o = 1'b0;
    retire_valid_o = 1'b0;

    unique case (state_q)
      ST_IDLE, ST_DONE, ST_FAULT: begin
        if (start_i) begin
          pc_d = pc_start_i;
          index_d = '0;
          fault_d = FAULT_NONE;
          fb_words_d = '0;
          state_d = ST_FETCH_REQ;
        end
      end
      ST_FETCH_REQ: begin
        if (64'(pc_q) + 64'(InsnBytes) > 64'(code_end_i) || pc_q[4:0] != 5'd0) begin
          fault_d = FAULT_FETCH_RANGE;
          fault_pc_d = pc_q;
          state_d = ST_FAULT;
        end else if (fb_hit) begin
          insn_d = fetch_block_i[fb_index];
          if (fetch_err_i[fb_index]) begin
            fault_d = FAULT_BUS_ERROR;
            fault_pc_d = pc_q;
            state_d = ST_FAULT;
          end else begin
            state_d = ST_ISSUE;
          end
        end else begin
          // The next block: FetchInsns instructions, or as many as the code has left.
          logic [31:0] left;
          left = (code_end_i - pc_q) >> InsnShift;
          fetch_words_d = left < 32'(FetchInsns) ? FetchWordBits'(left)
                                                 : FetchWordBits'(FetchInsns);
          fetch_d = 1'b1;
          state_d = ST_FETCH_WAIT;
        end
      end
      ST_FETCH_WAIT: begin
        if (fetch_done_i) begin  // the block is in the DMA's registers from next cycle
          fb_base_d = pc_q;
          fb_words_d = fetch_words_q;
          state_d = ST_FETCH_REQ;
        end
      end
      ST_ISSUE: begin
        if (check_fault != FAULT_NONE) begin
          fault_d = check_fault;
          fault_pc_d = pc_q;
          state_d = ST_FAULT;
        end else begin
          // Each opcode's unit comes from the contract (loom_pkg::opcode_unit).
          unique case (opcode_unit(opcode))
            UNIT_DMA: begin
              dma_start_d = 1'b1;
              active_d = UNIT_DMA;
              state_d = ST_EXEC;
            end
            UNIT_MXU: begin
              mxu_start_d = 1'b1;
              active_d = UNIT_MXU;
              state_d = ST_EXEC;
            end
            UNIT_VPU: begin
              vpu_start_d = 1'b1;
              active_d = UNIT_VPU;
              state_d = ST_EXEC;
            end
            default: begin  // UNIT_CTRL: NOP, FENCE, CHECKPOINT, HALT retire at once
              retire_valid_o = 1'b1;
              index_d = index_q + 32'd1;
              pc_d = pc_q + InsnBytes;
              state_d = (opcode == OPCODE_HALT) ? ST_DONE : ST_FETCH_REQ;
              if (opcode == OPCODE_CHECKPOINT) begin
                ckpt_valid_o = 1'b1;
                last_layer_d = ckpt.layer;
              end
            end
          endcase
        end
      end
      ST_EXEC: begin
        if ((active_q == UNIT_DMA && dma_done_i) || (active_q == UNIT_MXU && mxu_done_i) ||
            (active_q == UNIT_VPU && vpu_done_i)) begin
          active_d = UNIT_CTRL;
          if (active_q == UNIT_DMA && dma_fault_i != FAULT_NONE) begin
            fault_d = dma_fault_i;
            fault_pc_d = pc_q;
            state_d = ST_FAULT;
          end else begin
            retire_valid_o = 1'b1;
            index_d = index_q + 32'd1;
            pc_d = pc_q + InsnBytes;
`ifdef LOOM_FAULT_INJECT
            if (fault_pc_skip && opcode == OPCODE_MOVE) pc_d = pc_q + 2 * InsnBytes;
`endif
            state_d = ST_FETCH_REQ;
          end
        end
      end
      default: state_d = ST_IDLE;
    endcase
  end

  assign fetch_o = fetch_q;
  assign dma_start_o = dma_start_q;
  assign mxu_start_o = mxu_start_q;
  assign vpu_start_o = vpu_start_q;
  assign busy_o = !(state_q inside {ST_IDLE, ST_DONE, ST_FAULT});
  assign done_o = state_q == ST_DONE;
  assign fault_o = fault_q;
  assign fault_pc_o = fault_pc_q;
  assign retired_o = index_q;
  assign last_layer_o = last_layer_q;
  assign fetch_addr_o = pc_q;
  assign fetch_words_o = fetch_words_q;
  assign insn_o = insn_q;
  assign active_o = active_q;
  assign fetching_o = state_q inside {ST_FETCH_REQ, ST_FETCH_WAIT};
  assign ckpt_layer_o = ckpt.layer;
  assign retire_index_o = index_q;
  assign retire_pc_o = pc_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= ST_IDLE;
      pc_q <= '0;
      index_q <= '0;
      insn_q <= '0;
      fault_q <= FAULT_NONE;
      fault_pc_q <= '0;
      last_layer_q <= '0;
      fb_base_q <= '0;
      fb_words_q <= '0;
      fetch_words_q <= '0;
      active_q <= UNIT_CTRL;
      fetch_q <= 1'b0;
      dma_start_q <= 1'b0;
      mxu_start_q <= 1'b0;
      vpu_start_q <= 1'b0;
    end else begin
      state_q <= state_d;
      pc_q <= pc_d;
      index_q <= index_d;
      insn_q <= insn_d;
      fault_q <= fault_d;
      fault_pc_q <= fault_pc_d;
      last_layer_q <= last_layer_d;
      fb_base_q <= fb_base_d;
      fb_words_q <= fb_words_d;
      fetch_words_q <= fetch_words_d;
      active_q <= active_d;
      fetch_q <= fetch_d;
      dma_start_q <= dma_start_d;
      mxu_start_q <= mxu_start_d;
      vpu_start_q <= vpu_start_d;
    end
  end

  // ------------------------------------------------------------------ assertions
  `ASSERT_KNOWN(StateKnown, state_q)
  `ASSERT(StateValid, state_q inside {ST_IDLE, ST_FETCH_REQ, ST_FETCH_WAIT, ST_ISSUE, ST_EXEC,
                                      ST_DONE, ST_FAULT})
  // One request at a time, each from the state that waits for its answer.
  `ASSERT(OneRequest, $onehot0({fetch_q, dma_start_q, mxu_start_q, vpu_start_q}))
  `ASSERT(FetchWhileWaiting, fetch_q |-> state_q == ST_FETCH_WAIT)
  `ASSERT(StartWhileExecuting, dma_start_q || mxu_start_q || vpu_start_q |-> state_q == ST_EXEC)
  // A unit owns the memory ports exactly while its instruction executes, and reports done
  // only then.
  `ASSERT(ActiveOnlyInExec, (active_q != UNIT_CTRL) == (state_q == ST_EXEC))
  `ASSERT(DmaDoneWhenActive, dma_done_i |-> active_q == UNIT_DMA)
  `ASSERT(MxuDoneWhenActive, mxu_done_i |-> active_q == UNIT_MXU)
  `ASSERT(VpuDoneWhenActive, vpu_done_i |-> active_q == UNIT_VPU)
  `ASSERT(FetchDoneWhenWaiting, fetch_done_i |-> state_q == ST_FETCH_WAIT)
  // A block request asks for 1 to FetchInsns instructions, all inside the code; the
  // buffer never holds more than a block.
  `ASSERT(FetchWordsValid, fetch_q |-> fetch_words_q != '0 && 32'(fetch_words_q) <= FetchInsns)
  `ASSERT(FetchInsideCode, fetch_q |->
      64'(pc_q) + (64'(fetch_words_q) << InsnShift) <= 64'(code_end_i))
  `ASSERT(BufferBounded, 32'(fb_words_q) <= FetchInsns)
  `ASSERT(IssueFromBuffer, state_q == ST_ISSUE |-> $past(fb_hit))
  // Retirement: from ISSUE (control instructions) or EXEC, in order, one at a time.
  `ASSERT(RetireFromIssueOrExec, retire_valid_o |-> state_q inside {ST_ISSUE, ST_EXEC})
  `ASSERT(RetireCountsOne, retire_valid_o |=> index_q == $past(index_q) + 32'd1)
  `ASSERT(RetiredNeverDrops, !start_i |=> index_q == $past(index_q) ||
                                         index_q == $past(index_q) + 32'd1)
  `ASSERT(PcAligned, state_q inside {ST_ISSUE, ST_EXEC} |-> pc_q % InsnBytes == 32'd0)
  // A fault code is reported exactly in the FAULT state.
  `ASSERT(FaultIffFaultState, (state_q == ST_FAULT) == (fault_q != FAULT_NONE))
  `ASSERT(CheckpointRetires, ckpt_valid_o |-> retire_valid_o && opcode == OPCODE_CHECKPOINT)

endmodule
