// Control unit: fetch, decode, static checks, in-order issue to overlapping units,
// in-order retire.
//
// Fetch: a fetch buffer holds the last block of up to FetchInsns instructions the DMA
// engine fetched (one DRAM request per block, not per instruction); an instruction
// whose pc the block holds issues without a DRAM round trip. The code does not change
// while a segment runs (the ISA model executes the program's code, not DRAM), and the
// buffer is emptied at every start, so a block is never stale. A block is fetched only
// while the DMA engine is not executing an instruction; so before a DMA instruction
// issues, the block after it is fetched if the buffer does not hold its successor (the
// engine is then busy with the transfer, and the instructions behind it, which can run
// under it, would otherwise wait for the transfer to end before they could be fetched).
//
// Issue is in order, one instruction at a time, and each unit (DMA, matrix, vector)
// holds at most one instruction from issue to retirement, so up to three run at once. An
// instruction issues when its unit is free, the memory ports it drives are not claimed
// by one in flight, and its SRAM footprint (loom_footprint) does not depend on the
// footprint of any instruction in flight (read-after-write, write-after-read,
// write-after-write); the footprints are checked by element span, the rule the ISA
// defines (docs/isa.md, "Sequential semantics"). DRAM order holds by itself: one DMA
// engine runs its instructions in program order, and the code is not written. So every
// program computes exactly what it computes one instruction at a time.
//
// Retirement is in program order (a queue of the instructions in flight): an instruction
// that finishes before an older one waits, so the retire trace, RETIRED and the
// lockstep checker see the sequential order. Control instructions (NOP, FENCE,
// CHECKPOINT, HALT), a static fault and a fetch fault wait until every instruction in
// flight has retired; nothing issues behind a GATHER until it retires (its index fault
// is found while it executes and is precise). A DMA bus error is found while the load
// or store executes; instructions already issued behind it finish (their SRAM writes
// stay, docs/rtl.md), nothing retires after it, and the core stops with the faulting
// instruction's pc and index once every unit is idle.
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
  // Who drives each memory port (UNIT_CTRL: nobody), what runs, why issue waits
  output unit_e [NumPorts-1:0] port_owner_o,
  output logic [2:0]          unit_busy_o,  // {VPU, MXU, DMA} executing
  output footprint_t [2:0]    unit_fp_o,  // each unit's instruction in flight ('0: none)
  output logic                fetching_o,
  output logic                stall_dep_o,
  output logic                stall_unit_o,
  output logic                stall_drain_o,
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
    ST_FETCH_NEXT,
    ST_DRAIN,
    ST_DONE,
    ST_FAULT
  } state_e;

  localparam logic [31:0] InsnBytes = 32'(InsnBits / 8);
  localparam int unsigned InsnShift = $clog2(InsnBits / 8);
  localparam int unsigned FbIndexBits = FetchInsns > 1 ? $clog2(FetchInsns) : 1;
  // The units that hold an instruction in flight, by index: DMA, MXU, VPU.
  localparam int unsigned NumUnits = 3;
  localparam int unsigned UDma = 0;
  localparam int unsigned UMxu = 1;
  localparam int unsigned UVpu = 2;

  function automatic logic [1:0] unit_index(unit_e u);
    logic [1:0] i;
    unique case (u)
      UNIT_MXU: i = 2'(UMxu);
      UNIT_VPU: i = 2'(UVpu);
      default:  i = 2'(UDma);
    endcase
    return i;
  endfunction

  state_e state_d, state_q;
  logic [31:0] pc_d, pc_q, index_d, index_q;
  logic [InsnBits-1:0] insn_d, insn_q;
  fault_e fault_d, fault_q;
  logic [31:0] fault_pc_d, fault_pc_q;
  logic [15:0] last_layer_d, last_layer_q;
  // Fetch buffer: the block at fb_base_q, fb_words_q instructions (0: empty).
  logic [31:0] fb_base_d, fb_base_q;
  logic [FetchWordBits-1:0] fb_words_d, fb_words_q, fetch_words_d, fetch_words_q;
  logic [31:0] fetch_addr_d, fetch_addr_q;  // the block being fetched
  logic fb_hit, next_hit, next_in_code;
  logic [FbIndexBits-1:0] fb_index;
  fault_e check_fault;
  footprint_t fp;
  // In flight, per unit: issued and not retired; complete: its unit has reported done.
  logic [NumUnits-1:0] inflight_d, inflight_q, complete_d, complete_q, unit_done;
  footprint_t [NumUnits-1:0] fp_d, fp_q;
  logic gather_d, gather_q;  // the DMA's instruction in flight is a GATHER
  fault_e dma_fault_d, dma_fault_q;  // the fault the DMA reported with its done
  // Retire queue, oldest first: the unit and pc of each instruction in flight.
  unit_e [NumUnits-1:0] rq_unit_d, rq_unit_q;
  logic [NumUnits-1:0][31:0] rq_pc_d, rq_pc_q;
  logic [1:0] rq_count_d, rq_count_q;
  // A fault found at the head of the queue, reported once every unit is idle.
  fault_e pend_fault_d, pend_fault_q;
  logic [31:0] pend_pc_d, pend_pc_q;
  // The unit of the last instruction issued (waveform views show it).
  unit_e issue_unit_d, issue_unit_q;
  // Requests to the units leave from registers: no combinational path from a unit's
  // done back into its own start (keeps the simulation's evaluation order flat).
  logic fetch_d, fetch_q, dma_start_d, dma_start_q, mxu_start_d, mxu_start_q;
  logic vpu_start_d, vpu_start_q;
  // Issue decision for the instruction in insn_q.
  unit_e unit;
  logic [1:0] uidx;
  logic drained, head_done, retire_head, retire_ctrl, dma_running;
  logic hazard, port_conflict;
  ports_t ports_claimed;
  logic [31:0] head_pc;
  unit_e head_unit;

  loom_insn_check u_check (
    .clk_i,
    .rst_ni,
    .insn_i      (insn_q),
    .dram_limit_i(dram_limit_i),
    .fault_o     (check_fault)
  );

  loom_footprint u_footprint (
    .clk_i,
    .rst_ni,
    .insn_i(insn_q),
    .fp_o  (fp)
  );

  // The buffer holds pc when pc lies in [fb_base, fb_base + fb_words * InsnBytes).
  always_comb begin
    logic [32:0] off;
    off = {1'b0, pc_q} - {1'b0, fb_base_q};
    fb_hit = !off[32] && off < 33'(fb_words_q) << InsnShift;
    fb_index = FbIndexBits'(off >> InsnShift);  // < fb_words_q <= FetchInsns on a hit
  end

  // Whether the buffer holds the instruction after pc (the next block is fetched before
  // a DMA instruction issues, so that what follows it can issue while it executes: the
  // DMA engine fetches only between its instructions).
  always_comb begin
    logic [32:0] off;
    off = {1'b0, pc_q} + 33'(InsnBytes) - {1'b0, fb_base_q};
    next_hit = !off[32] && off < 33'(fb_words_q) << InsnShift;
    next_in_code = 64'(pc_q) + 2 * 64'(InsnBytes) <= 64'(code_end_i);
  end

  // The request for the block at addr: FetchInsns instructions, or what the code has left.
  function automatic logic [FetchWordBits-1:0] block_words(logic [31:0] addr,
                                                           logic [31:0] code_end);
    logic [31:0] left;
    left = (code_end - addr) >> InsnShift;
    return left < 32'(FetchInsns) ? FetchWordBits'(left) : FetchWordBits'(FetchInsns);
  endfunction

  opcode_e opcode;
  checkpoint_insn_t ckpt;
  assign opcode = opcode_e'(insn_q[7:0]);
  assign ckpt = checkpoint_insn_t'(insn_q);
  assign unit = opcode_unit(opcode);
  assign uidx = unit_index(unit);
  assign unit_done[UDma] = dma_done_i;
  assign unit_done[UMxu] = mxu_done_i;
  assign unit_done[UVpu] = vpu_done_i;
  assign drained = rq_count_q == 2'd0;
  assign dma_running = inflight_q[UDma] && !complete_q[UDma];
  assign head_unit = rq_unit_q[0];
  assign head_pc = rq_pc_q[0];

`ifdef LOOM_FAULT_INJECT
  // Injected faults (debug-harness self-tests, docs/debug.md), compiled in only with
  // +define+LOOM_FAULT_INJECT: +loom_fault_ctrl_pc_skip, the pc skips the instruction
  // after every MOVE; +loom_fault_ctrl_no_hazard, issue ignores SRAM dependencies on the
  // instructions in flight (tests/test_rtl_hazards.py proves its tests catch that).
  logic fault_pc_skip, fault_no_hazard;
  initial fault_pc_skip = $test$plusargs("loom_fault_ctrl_pc_skip");
  initial fault_no_hazard = $test$plusargs("loom_fault_ctrl_no_hazard");
`endif

  // Against the instructions in flight: a dependency, and a port one of them drives.
  always_comb begin
    hazard = 1'b0;
    ports_claimed = '0;
    for (int u = 0; u < int'(NumUnits); u++) begin
      if (inflight_q[u]) begin
        hazard = hazard || depends_on(fp_q[u], fp);
        ports_claimed = ports_claimed | fp_q[u].ports;
      end
    end
    port_conflict = (ports_claimed & fp.ports) != '0;
`ifdef LOOM_FAULT_INJECT
    if (fault_no_hazard) hazard = 1'b0;
`endif
  end

  // Each memory port's owner: the unit in flight whose instruction claimed it.
  always_comb begin
    for (int p = 0; p < int'(NumPorts); p++) begin
      port_owner_o[p] = UNIT_CTRL;
      if (inflight_q[UDma] && fp_q[UDma].ports[p]) port_owner_o[p] = UNIT_DMA;
      if (inflight_q[UMxu] && fp_q[UMxu].ports[p]) port_owner_o[p] = UNIT_MXU;
      if (inflight_q[UVpu] && fp_q[UVpu].ports[p]) port_owner_o[p] = UNIT_VPU;
    end
  end

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
    fetch_addr_d = fetch_addr_q;
    inflight_d = inflight_q;
    complete_d = complete_q | (inflight_q & unit_done);
    fp_d = fp_q;
    gather_d = gather_q;
    dma_fault_d = dma_done_i ? dma_fault_i : dma_fault_q;
    rq_unit_d = rq_unit_q;
    rq_pc_d = rq_pc_q;
    rq_count_d = rq_count_q;
    pend_fault_d = pend_fault_q;
    pend_pc_d = pend_pc_q;
    issue_unit_d = issue_unit_q;
    fetch_d = 1'b0;
    dma_start_d = 1'b0;
    mxu_start_d = 1'b0;
    vpu_start_d = 1'b0;
    ckpt_valid_o = 1'b0;
    retire_valid_o = 1'b0;
    retire_pc_o = head_pc;
    stall_dep_o = 1'b0;
    stall_unit_o = 1'b0;
    stall_drain_o = 1'b0;

    // ---------------- retire: the oldest instruction in flight, once its unit is done
    head_done = !drained && (complete_q[unit_index(head_unit)] ||
                             unit_done[unit_index(head_unit)]);
    retire_head = 1'b0;
    retire_ctrl = 1'b0;
    if (head_done && pend_fault_q == FAULT_NONE) begin
      fault_e f;
      f = FAULT_NONE;
      if (head_unit == UNIT_DMA) f = complete_q[UDma] ? dma_fault_q : dma_fault_i;
      if (f != FAULT_NONE) begin
        pend_fault_d = f;  // nothing retires after it; report once the units are idle
        pend_pc_d = head_pc;
      end else begin
        retire_head = 1'b1;
        retire_valid_o = 1'b1;
        index_d = index_q + 32'd1;
        inflight_d[unit_index(head_unit)] = 1'b0;
        complete_d[unit_index(head_unit)] = 1'b0;
        if (head_unit == UNIT_DMA) gather_d = 1'b0;
        rq_unit_d[0] = rq_unit_q[1];
        rq_unit_d[1] = rq_unit_q[2];
        rq_unit_d[2] = UNIT_CTRL;
        rq_pc_d[0] = rq_pc_q[1];
        rq_pc_d[1] = rq_pc_q[2];
        rq_pc_d[2] = '0;
        rq_count_d = rq_count_q - 2'd1;
      end
    end

    // ---------------- fetch and issue
    unique case (state_q)
      ST_IDLE, ST_DONE, ST_FAULT: begin
        if (start_i) begin
          pc_d = pc_start_i;
          index_d = '0;
          fault_d = FAULT_NONE;
          fb_words_d = '0;
          inflight_d = '0;
          complete_d = '0;
          gather_d = 1'b0;
          rq_count_d = '0;
          pend_fault_d = FAULT_NONE;
          state_d = ST_FETCH_REQ;
        end
      end
      ST_FETCH_REQ: begin
        if (pend_fault_q != FAULT_NONE) begin
          state_d = ST_DRAIN;
        end else if (64'(pc_q) + 64'(InsnBytes) > 64'(code_end_i) || pc_q[4:0] != 5'd0 ||
                     (fb_hit && fetch_err_i[fb_index])) begin
          // Sequentially, every older instruction retires before this one faults.
          if (drained) begin
            fault_d = fb_hit && fetch_err_i[fb_index] ? FAULT_BUS_ERROR : FAULT_FETCH_RANGE;
            fault_pc_d = pc_q;
            state_d = ST_FAULT;
          end
        end else if (fb_hit) begin
          insn_d = fetch_block_i[fb_index];
          state_d = ST_ISSUE;
        end else if (!dma_running) begin
          fetch_addr_d = pc_q;
          fetch_words_d = block_words(pc_q, code_end_i);
          fetch_d = 1'b1;
          state_d = ST_FETCH_WAIT;
        end
      end
      ST_FETCH_WAIT, ST_FETCH_NEXT: begin
        if (fetch_done_i) begin  // the block is in the DMA's registers from next cycle
          fb_base_d = fetch_addr_q;
          fb_words_d = fetch_words_q;
          state_d = state_q == ST_FETCH_WAIT ? ST_FETCH_REQ : ST_ISSUE;
        end
      end
      ST_ISSUE: begin
        if (pend_fault_q != FAULT_NONE) begin
          state_d = ST_DRAIN;
        end else if (check_fault != FAULT_NONE || unit == UNIT_CTRL) begin
          stall_drain_o = !drained;
          if (drained && check_fault != FAULT_NONE) begin
            fault_d = check_fault;
            fault_pc_d = pc_q;
            state_d = ST_FAULT;
          end else if (drained) begin  // NOP, FENCE, CHECKPOINT, HALT retire at once
            retire_ctrl = 1'b1;
            retire_valid_o = 1'b1;
            retire_pc_o = pc_q;
            index_d = index_q + 32'd1;
            pc_d = pc_q + InsnBytes;
            state_d = (opcode == OPCODE_HALT) ? ST_DONE : ST_FETCH_REQ;
            if (opcode == OPCODE_CHECKPOINT) begin
              ckpt_valid_o = 1'b1;
              last_layer_d = ckpt.layer;
            end
          end
        end else if (gather_q) begin
          stall_drain_o = 1'b1;
        end else if (unit == UNIT_DMA && !next_hit && next_in_code) begin
          // Fetch the block after this DMA instruction first, while the engine is free.
          if (dma_running) begin
            stall_unit_o = 1'b1;
          end else begin
            fetch_addr_d = pc_q + InsnBytes;
            fetch_words_d = block_words(pc_q + InsnBytes, code_end_i);
            fetch_d = 1'b1;
            state_d = ST_FETCH_NEXT;
          end
        end else if (inflight_q[uidx]) begin
          stall_unit_o = 1'b1;
        end else if (hazard) begin
          stall_dep_o = 1'b1;
        end else if (port_conflict) begin
          stall_unit_o = 1'b1;
        end else begin
          // Issue: start the unit, record the footprint, enter the retire queue.
          unique case (unit)
            UNIT_DMA: dma_start_d = 1'b1;
            UNIT_MXU: mxu_start_d = 1'b1;
            default:  vpu_start_d = 1'b1;
          endcase
          inflight_d[uidx] = 1'b1;
          complete_d[uidx] = 1'b0;
          fp_d[uidx] = fp;
          if (unit == UNIT_DMA) gather_d = opcode == OPCODE_GATHER;
          issue_unit_d = unit;
          rq_unit_d[retire_head ? rq_count_q - 2'd1 : rq_count_q] = unit;
          rq_pc_d[retire_head ? rq_count_q - 2'd1 : rq_count_q] = pc_q;
          rq_count_d = rq_count_d + 2'd1;
          pc_d = pc_q + InsnBytes;
`ifdef LOOM_FAULT_INJECT
          if (fault_pc_skip && opcode == OPCODE_MOVE) pc_d = pc_q + 2 * InsnBytes;
`endif
          state_d = ST_FETCH_REQ;
        end
      end
      ST_DRAIN: begin
        // A unit's fault stops the run once the instructions issued behind it finish.
        stall_drain_o = 1'b1;
        if ((inflight_q & ~(complete_q | unit_done)) == '0) begin
          fault_d = pend_fault_q;
          fault_pc_d = pend_pc_q;
          inflight_d = '0;
          complete_d = '0;
          gather_d = 1'b0;
          rq_count_d = '0;
          state_d = ST_FAULT;
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
  assign fetch_addr_o = fetch_addr_q;
  assign fetch_words_o = fetch_words_q;
  assign insn_o = insn_q;
  always_comb begin
    for (int u = 0; u < int'(NumUnits); u++) unit_fp_o[u] = inflight_q[u] ? fp_q[u] : '0;
  end
  assign unit_busy_o = {inflight_q[UVpu] && !complete_q[UVpu],
                        inflight_q[UMxu] && !complete_q[UMxu],
                        inflight_q[UDma] && !complete_q[UDma]};
  assign fetching_o = state_q inside {ST_FETCH_REQ, ST_FETCH_WAIT, ST_FETCH_NEXT};
  assign ckpt_layer_o = ckpt.layer;
  assign retire_index_o = index_q;

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
      fetch_addr_q <= '0;
      inflight_q <= '0;
      complete_q <= '0;
      fp_q <= '0;
      gather_q <= 1'b0;
      dma_fault_q <= FAULT_NONE;
      rq_unit_q <= {NumUnits{UNIT_CTRL}};
      rq_pc_q <= '0;
      rq_count_q <= '0;
      pend_fault_q <= FAULT_NONE;
      pend_pc_q <= '0;
      issue_unit_q <= UNIT_CTRL;
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
      fetch_addr_q <= fetch_addr_d;
      inflight_q <= inflight_d;
      complete_q <= complete_d;
      fp_q <= fp_d;
      gather_q <= gather_d;
      dma_fault_q <= dma_fault_d;
      rq_unit_q <= rq_unit_d;
      rq_pc_q <= rq_pc_d;
      rq_count_q <= rq_count_d;
      pend_fault_q <= pend_fault_d;
      pend_pc_q <= pend_pc_d;
      issue_unit_q <= issue_unit_d;
      fetch_q <= fetch_d;
      dma_start_q <= dma_start_d;
      mxu_start_q <= mxu_start_d;
      vpu_start_q <= vpu_start_d;
    end
  end

  // ------------------------------------------------------------------ assertions
  `ASSERT_KNOWN(StateKnown, state_q)
  `ASSERT(StateValid, state_q inside {ST_IDLE, ST_FETCH_REQ, ST_FETCH_WAIT, ST_ISSUE,
                                      ST_FETCH_NEXT, ST_DRAIN, ST_DONE, ST_FAULT})
  // One request at a time: a fetch never meets a DMA start.
  `ASSERT(OneRequest, $onehot0({fetch_q, dma_start_q, mxu_start_q, vpu_start_q}))
  `ASSERT(FetchWhileWaiting, fetch_q |-> state_q inside {ST_FETCH_WAIT, ST_FETCH_NEXT})
  `ASSERT(FetchWithDmaIdle, fetch_q |-> !dma_running)
  // A unit starts only on an instruction just put in flight, and reports done only while
  // it holds one.
  `ASSERT(DmaStartInFlight, dma_start_q |-> inflight_q[UDma] && !complete_q[UDma])
  `ASSERT(MxuStartInFlight, mxu_start_q |-> inflight_q[UMxu] && !complete_q[UMxu])
  `ASSERT(VpuStartInFlight, vpu_start_q |-> inflight_q[UVpu] && !complete_q[UVpu])
  `ASSERT(StartSeesIssuedInsn, dma_start_q || mxu_start_q || vpu_start_q |->
                               insn_q == $past(insn_q))
  `ASSERT(DoneOnlyInFlight, (unit_done & ~(inflight_q & ~complete_q)) == '0)
  `ASSERT(FetchDoneWhenWaiting, fetch_done_i |-> state_q inside {ST_FETCH_WAIT, ST_FETCH_NEXT})
  // The retire queue holds exactly the instructions in flight, each unit once.
  `ASSERT(QueueCountsInFlight, 32'(rq_count_q) == 32'($countones(inflight_q)))
  `ASSERT(QueueHeadInFlight, !drained |-> inflight_q[unit_index(head_unit)])
  `ASSERT(QueueUnitsDistinct, rq_count_q >= 2'd2 |-> rq_unit_q[0] != rq_unit_q[1] &&
                              (rq_count_q < 2'd3 || (rq_unit_q[0] != rq_unit_q[2] &&
                                                     rq_unit_q[1] != rq_unit_q[2])))
  // Two instructions in flight never drive the same memory port, and a later one never
  // depends on an earlier one still in flight.
  `ASSERT(PortsDisjoint, (!(inflight_q[UDma] && inflight_q[UMxu]) ||
                          (fp_q[UDma].ports & fp_q[UMxu].ports) == '0) &&
                         (!(inflight_q[UDma] && inflight_q[UVpu]) ||
                          (fp_q[UDma].ports & fp_q[UVpu].ports) == '0) &&
                         (!(inflight_q[UMxu] && inflight_q[UVpu]) ||
                          (fp_q[UMxu].ports & fp_q[UVpu].ports) == '0))
  `ASSERT(IssueIndependent, dma_start_d || mxu_start_d || vpu_start_d |->
                            !hazard && !port_conflict && !inflight_q[uidx] && !gather_q)
  // The same from the footprints in flight alone, not through the issue logic's hazard
  // signal: no two instructions in flight depend on each other.
  `ASSERT(InFlightIndependent,
          !(inflight_q[UDma] && inflight_q[UMxu] && depends_on(fp_q[UDma], fp_q[UMxu])) &&
          !(inflight_q[UDma] && inflight_q[UVpu] && depends_on(fp_q[UDma], fp_q[UVpu])) &&
          !(inflight_q[UMxu] && inflight_q[UVpu] && depends_on(fp_q[UMxu], fp_q[UVpu])))
  // Control instructions and faults find every unit idle (FENCE and CHECKPOINT order).
  `ASSERT(ControlRetiresDrained, retire_ctrl |-> drained)
  `ASSERT(FaultDrained, state_q == ST_FAULT |-> inflight_q == '0)
  `ASSERT(GatherAlone, gather_q |-> inflight_q[UDma])
  // A block request asks for 1 to FetchInsns instructions, all inside the code; the
  // buffer never holds more than a block.
  `ASSERT(FetchWordsValid, fetch_q |-> fetch_words_q != '0 && 32'(fetch_words_q) <= FetchInsns)
  `ASSERT(FetchInsideCode, fetch_q |->
      64'(fetch_addr_q) + (64'(fetch_words_q) << InsnShift) <= 64'(code_end_i))
  `ASSERT(BufferBounded, 32'(fb_words_q) <= FetchInsns)
  `ASSERT(IssueFromBuffer, state_q == ST_ISSUE && $past(state_q) == ST_FETCH_REQ |->
                           $past(fb_hit))
  // Retirement: in order, one at a time.
  `ASSERT(RetireCountsOne, retire_valid_o |=> index_q == $past(index_q) + 32'd1)
  `ASSERT(RetiredNeverDrops, !start_i |=> index_q == $past(index_q) ||
                                         index_q == $past(index_q) + 32'd1)
  `ASSERT(RetireOnePerCycle, !(retire_head && retire_ctrl))
  `ASSERT(PcAligned, state_q == ST_ISSUE |-> pc_q % InsnBytes == 32'd0)
  // A fault code is reported exactly in the FAULT state.
  `ASSERT(FaultIffFaultState, (state_q == ST_FAULT) == (fault_q != FAULT_NONE))
  `ASSERT(CheckpointRetires, ckpt_valid_o |-> retire_valid_o && opcode == OPCODE_CHECKPOINT)

endmodule
