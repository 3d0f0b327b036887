// Block-level testbench top for the floating-point functions of loom_fp_pkg (the ones the
// matrix and vector units instantiate): streams one operand pair per cycle out of the
// DPI-C DRAM and writes every result back, so a million vectors cost about a million
// cycles and no Python per vector.
//
// Record i (64 bytes at 64*i): a, b, u (inputs); a+b, a*b (fp32), bf16(a)*bf16(b) ->
// fp32, f32_to_bf16(a), max(a, b), min(a, b), a-b, exp(u), recip(u), rsqrt(u), tanh(u),
// erf(u) (outputs); one spare word.
module loom_fpu_tb (
  input  logic        clk,
  input  logic        rst_n,
  input  logic        start,
  input  logic [31:0] count,
  output logic        done
);
  import loom_fp_pkg::*;

  import "DPI-C" function int unsigned loom_dram_read32(input longint unsigned addr);
  import "DPI-C" function int loom_dram_write32(input longint unsigned addr,
                                                input int unsigned value);

  logic [31:0] index_q;
  logic running_q, done_q;

  always_ff @(posedge clk or negedge rst_n) begin
    if (!rst_n) begin
      index_q <= '0;
      running_q <= 1'b0;
      done_q <= 1'b0;
    end else if (start && !running_q) begin
      index_q <= '0;
      running_q <= 1'b1;
      done_q <= 1'b0;
    end else if (running_q) begin
      if (index_q == count) begin
        running_q <= 1'b0;
        done_q <= 1'b1;
      end else begin
        logic [63:0] base;
        logic [31:0] a, b, u;
        base = 64'(index_q) * 64'd64;
        a = loom_dram_read32(base);
        b = loom_dram_read32(base + 64'd4);
        u = loom_dram_read32(base + 64'd8);
        void'(loom_dram_write32(base + 64'd12, f32_add(a, b)));
        void'(loom_dram_write32(base + 64'd16, f32_mul(a, b)));
        void'(loom_dram_write32(base + 64'd20, bf16_mul(a[31:16], b[31:16])));
        void'(loom_dram_write32(base + 64'd24, {16'd0, f32_to_bf16(a)}));
        void'(loom_dram_write32(base + 64'd28, f32_max(a, b)));
        void'(loom_dram_write32(base + 64'd32, f32_min(a, b)));
        void'(loom_dram_write32(base + 64'd36, f32_sub(a, b)));
        void'(loom_dram_write32(base + 64'd40, f32_exp(u)));
        void'(loom_dram_write32(base + 64'd44, f32_recip(u)));
        void'(loom_dram_write32(base + 64'd48, f32_rsqrt(u)));
        void'(loom_dram_write32(base + 64'd52, f32_tanh(u)));
        void'(loom_dram_write32(base + 64'd56, f32_erf(u)));
        index_q <= index_q + 32'd1;
      end
    end
  end

  assign done = done_q;

endmodule
