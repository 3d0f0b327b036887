// Floating-point arithmetic of the Loom numerics contract (contract/numerics.py,
// docs/isa.md "Numerics"): IEEE-754 binary32, round to nearest even, subnormals kept
// (no flush to zero), every NaN result is the canonical 0x7fc00000. The special
// functions are the same fixed sequences of fp32 operations as the Python contract, so
// the RTL and the ISA model agree bit for bit.
//
// Functions are written with a single exit and no early return: Verilator compiles that
// shape into straight-line code, which matters because every PE evaluates one every cycle.
//
// The arithmetic datapaths (add, multiply, the special functions) are marked
// no_inline_task: Verilator then emits each once, as a C++ function every PE and lane
// calls, instead of a copy per call site (256 PEs, 16 lanes x ~100 operations in the
// special functions). Measured on the default core (bench/verification.md): a scratch
// build 458 s -> 49 s, generated C++ ~42 MB -> ~4.5 MB, GPT-2 small through the RTL at
// the same speed (run 178.7 s vs 181.1 s, side by side on 2 cores).
package loom_fp_pkg;

  // Every constant (F32One, ExpC0..ExpC6, RecipMagic, ...) is the contract's, generated
  // into loom_pkg from contract/numerics.py.
  import loom_pkg::*;

  // ---------------------------------------------------------------- classification
  function automatic logic f32_is_nan(logic [31:0] x);
    return (x[30:23] == 8'hff) && (x[22:0] != 23'd0);
  endfunction

  function automatic logic f32_is_inf(logic [31:0] x);
    return (x[30:23] == 8'hff) && (x[22:0] == 23'd0);
  endfunction

  function automatic logic f32_is_zero(logic [31:0] x);
    return x[30:0] == 31'd0;
  endfunction

  function automatic logic [31:0] f32_canon(logic [31:0] x);
    return f32_is_nan(x) ? F32CanonNan : x;
  endfunction

  function automatic logic [31:0] f32_neg(logic [31:0] x);
    return {~x[31], x[30:0]};
  endfunction

  // ---------------------------------------------------------------- comparisons
  // IEEE ordered comparisons: false when either operand is NaN; -0 == +0.
  function automatic logic f32_lt(logic [31:0] a, logic [31:0] b);
    logic lt;
    lt = 1'b0;
    if (!f32_is_nan(a) && !f32_is_nan(b) && !(f32_is_zero(a) && f32_is_zero(b))) begin
      if (a[31] != b[31]) lt = a[31];
      else if (!a[31]) lt = a[30:0] < b[30:0];
      else lt = a[30:0] > b[30:0];
    end
    return lt;
  endfunction

  function automatic logic f32_ge(logic [31:0] a, logic [31:0] b);
    return !f32_is_nan(a) && !f32_is_nan(b) && !f32_lt(a, b);
  endfunction

  function automatic logic f32_eq(logic [31:0] a, logic [31:0] b);
    return !f32_is_nan(a) && !f32_is_nan(b) && (a == b || (f32_is_zero(a) && f32_is_zero(b)));
  endfunction

  // max(a, b) = a if a > b else b; NaN if either is NaN (so max(+0, -0) = -0).
  function automatic logic [31:0] f32_max(logic [31:0] a, logic [31:0] b);
    logic [31:0] r;
    if (f32_is_nan(a) || f32_is_nan(b)) r = F32CanonNan;
    else r = f32_lt(b, a) ? a : b;
    return r;
  endfunction

  function automatic logic [31:0] f32_min(logic [31:0] a, logic [31:0] b);
    logic [31:0] r;
    if (f32_is_nan(a) || f32_is_nan(b)) r = F32CanonNan;
    else r = f32_lt(a, b) ? a : b;
    return r;
  endfunction

  // ---------------------------------------------------------------- rounding
  // Round and pack a magnitude. sig is 1.23 significand bits followed by guard, round
  // and sticky ({hidden, fraction[22:0], g, r, s}); exp is the biased exponent, >= 1.
  // sig[26] == 0 only with exp == 1: a subnormal. Overflow goes to infinity.
  function automatic logic [31:0] f32_round_pack(logic sign, logic signed [11:0] exp,
                                                 logic [26:0] sig);
    logic round_up;
    logic [24:0] rounded;
    logic signed [11:0] e;
    logic [31:0] r;
    round_up = sig[2] & (sig[1] | sig[0] | sig[3]);
    rounded = {1'b0, sig[26:3]} + {24'd0, round_up};
    e = exp;
    if (rounded[24]) begin
      rounded = {1'b0, rounded[24:1]};
      e = e + 12'sd1;
    end
    if (e >= 12'sd255) r = {sign, 8'hff, 23'd0};
    else r = {sign, rounded[23] ? e[7:0] : 8'd0, rounded[22:0]};
    return r;
  endfunction

  // sig >> amount, the shifted-out bits ORed into bit 0 (sticky).
  function automatic logic [26:0] shift_right_sticky(logic [26:0] sig, logic [11:0] amount);
    logic [26:0] r;
    logic [26:0] lost_mask;
    if (amount >= 12'd27) begin
      r = {26'd0, sig != 27'd0};
    end else begin
      lost_mask = (27'd1 << amount[4:0]) - 27'd1;
      r = (sig >> amount[4:0]) | {26'd0, (sig & lost_mask) != 27'd0};
    end
    return r;
  endfunction

  // Number of leading zeros of a 64-bit value (64 when zero), by halving: six steps of
  // straight-line code where a bit-by-bit scan compiles to 64 conditional moves (every
  // PE's adder and multiplier normalises with it, every cycle).
  function automatic logic [6:0] clz64(logic [63:0] v);
    logic [6:0] n;
    logic [63:0] x;
    n = 7'd0;
    x = v;
    if (x[63:32] == 32'd0) begin
      n = n + 7'd32;
      x = x << 32;
    end
    if (x[63:48] == 16'd0) begin
      n = n + 7'd16;
      x = x << 16;
    end
    if (x[63:56] == 8'd0) begin
      n = n + 7'd8;
      x = x << 8;
    end
    if (x[63:60] == 4'd0) begin
      n = n + 7'd4;
      x = x << 4;
    end
    if (x[63:62] == 2'd0) begin
      n = n + 7'd2;
      x = x << 2;
    end
    if (!x[63]) n = n + (x[62] ? 7'd1 : 7'd2);
    return n;
  endfunction

  // Number of leading zeros of a 27-bit value (27 when zero): the ones below stop the count.
  function automatic logic [4:0] clz27(logic [26:0] v);
    return 5'(clz64({v, {37{1'b1}}}));
  endfunction

  // ---------------------------------------------------------------- add
  function automatic logic [31:0] f32_add(logic [31:0] a, logic [31:0] b);
    /*verilator no_inline_task*/
    logic [31:0] r, x, y;
    logic [7:0] ex, ey;
    logic [26:0] mx, my, aligned, sig;
    logic [27:0] sum;
    logic signed [11:0] e;
    logic [4:0] lz;
    logic [11:0] shift;
    if (f32_is_nan(a) || f32_is_nan(b) ||
        (f32_is_inf(a) && f32_is_inf(b) && (a[31] != b[31]))) begin
      r = F32CanonNan;
    end else if (f32_is_inf(a)) begin
      r = a;
    end else if (f32_is_inf(b)) begin
      r = b;
    end else begin
      // x is the operand of larger magnitude.
      if (a[30:0] >= b[30:0]) begin
        x = a;
        y = b;
      end else begin
        x = b;
        y = a;
      end
      ex = (x[30:23] == 8'd0) ? 8'd1 : x[30:23];
      ey = (y[30:23] == 8'd0) ? 8'd1 : y[30:23];
      mx = {x[30:23] != 8'd0, x[22:0], 3'b000};
      my = {y[30:23] != 8'd0, y[22:0], 3'b000};
      aligned = shift_right_sticky(my, {4'd0, ex - ey});
      if (x[31] == y[31]) sum = {1'b0, mx} + {1'b0, aligned};
      else sum = {1'b0, mx} - {1'b0, aligned};
      e = {4'd0, ex};
      if (sum == 28'd0) begin
        // Exact zero: -0 only when both operands are -0 (round to nearest).
        r = {x[31] & y[31], 31'd0};
      end else begin
        if (sum[27]) begin
          sig = {sum[27:2], sum[1] | sum[0]};
          e = e + 12'sd1;
        end else begin
          // Normalise left, but never below exponent 1 (the result is then subnormal).
          lz = clz27(sum[26:0]);
          shift = (12'(lz) < 12'(e - 12'sd1)) ? 12'(lz) : 12'(e - 12'sd1);
          sig = sum[26:0] << shift;
          e = e - $signed(shift);
        end
        r = f32_round_pack(x[31], e, sig);
      end
    end
    return r;
  endfunction

  function automatic logic [31:0] f32_sub(logic [31:0] a, logic [31:0] b);
    return f32_add(a, f32_neg(b));
  endfunction

  // ---------------------------------------------------------------- multiply
  // Round and pack an exact product: p holds the significand product with its leading
  // one at or below bit 47; the value is p * 2^(exp_sum - 126 - 47 - lz') with exp_sum
  // the sum of the operands' effective biased exponents (see f32_mul).
  function automatic logic [31:0] product_round_pack(logic sign, logic signed [11:0] exp_sum,
                                                     logic [47:0] p);
    logic [47:0] pn;
    logic [5:0] lz;
    logic signed [11:0] e;
    logic [26:0] sig;
    lz = 6'(clz64({p, 16'hffff}));  // 48 when p == 0
    pn = p << lz;
    e = exp_sum - 12'sd126 - $signed({6'd0, lz});
    sig = {pn[47:22], pn[21:0] != 22'd0};
    if (e < 12'sd1) begin
      sig = shift_right_sticky(sig, 12'(12'sd1 - e));
      e = 12'sd1;
    end
    return f32_round_pack(sign, e, sig);
  endfunction

  function automatic logic [31:0] f32_mul(logic [31:0] a, logic [31:0] b);
    /*verilator no_inline_task*/
    logic [31:0] r;
    logic sign;
    logic [23:0] ma, mb;
    logic signed [11:0] exp_sum;
    sign = a[31] ^ b[31];
    if (f32_is_nan(a) || f32_is_nan(b) || (f32_is_inf(a) && f32_is_zero(b)) ||
        (f32_is_zero(a) && f32_is_inf(b))) begin
      r = F32CanonNan;
    end else if (f32_is_inf(a) || f32_is_inf(b)) begin
      r = {sign, 8'hff, 23'd0};
    end else if (f32_is_zero(a) || f32_is_zero(b)) begin
      r = {sign, 31'd0};
    end else begin
      ma = {a[30:23] != 8'd0, a[22:0]};
      mb = {b[30:23] != 8'd0, b[22:0]};
      exp_sum = $signed({4'd0, (a[30:23] == 8'd0) ? 8'd1 : a[30:23]}) +
                $signed({4'd0, (b[30:23] == 8'd0) ? 8'd1 : b[30:23]});
      r = product_round_pack(sign, exp_sum, 48'(ma) * 48'(mb));
    end
    return r;
  endfunction

  // bf16 x bf16 -> fp32, the matrix unit's multiplier: the same result as f32_mul on the
  // widened operands (exact unless it under- or overflows), with an 8x8-bit product.
  function automatic logic [31:0] bf16_mul(logic [15:0] a, logic [15:0] b);
    /*verilator no_inline_task*/
    logic [31:0] r;
    logic sign;
    logic [7:0] ma, mb;
    logic signed [11:0] exp_sum, e_norm;
    logic [15:0] p;
    sign = a[15] ^ b[15];
    if (f32_is_nan({a, 16'd0}) || f32_is_nan({b, 16'd0}) ||
        (f32_is_inf({a, 16'd0}) && f32_is_zero({b, 16'd0})) ||
        (f32_is_zero({a, 16'd0}) && f32_is_inf({b, 16'd0}))) begin
      r = F32CanonNan;
    end else if (f32_is_inf({a, 16'd0}) || f32_is_inf({b, 16'd0})) begin
      r = {sign, 8'hff, 23'd0};
    end else if (a[14:0] == 15'd0 || b[14:0] == 15'd0) begin
      r = {sign, 31'd0};
    end else begin
      ma = {a[14:7] != 8'd0, a[6:0]};
      mb = {b[14:7] != 8'd0, b[6:0]};
      exp_sum = $signed({4'd0, (a[14:7] == 8'd0) ? 8'd1 : a[14:7]}) +
                $signed({4'd0, (b[14:7] == 8'd0) ? 8'd1 : b[14:7]});
      p = 16'(ma) * 16'(mb);
      // Two normal operands whose product is normal: the product is exact (8 x 8
      // significand bits fit in 24), so it packs without rounding; p is in [2^14, 2^16).
      // Everything else (subnormal operands or result, overflow) rounds the general way.
      e_norm = exp_sum - 12'sd127 + (p[15] ? 12'sd1 : 12'sd0);
      if (a[14:7] != 8'd0 && b[14:7] != 8'd0 && e_norm >= 12'sd1 && e_norm <= 12'sd254) begin
        r = {sign, e_norm[7:0], p[15] ? {p[14:0], 8'd0} : {p[13:0], 9'd0}};
      end else begin
        // Place the 16-bit product where the 48-bit one would be (2 x 16 fraction bits less).
        r = product_round_pack(sign, exp_sum, {p, 32'd0});
      end
    end
    return r;
  endfunction

  // ---------------------------------------------------------------- conversions
  // fp32 -> bf16, round to nearest even; NaN -> canonical; overflow -> inf.
  function automatic logic [15:0] f32_to_bf16(logic [31:0] x);
    logic [31:0] rounded;
    rounded = x + 32'h7fff + {31'd0, x[16]};
    return f32_is_nan(x) ? Bf16CanonNan : rounded[31:16];
  endfunction

  // An integral fp32 value with |x| <= 2^8 to a signed integer (exp's k).
  function automatic logic signed [31:0] f32_small_int(logic [31:0] x);
    logic [31:0] mag;
    logic [7:0] e;
    e = x[30:23];
    if (e < 8'd127) mag = 32'd0;
    else mag = {8'd0, 1'b1, x[22:0]} >> (8'd150 - e);
    return x[31] ? -$signed(mag) : $signed(mag);
  endfunction

  // 2^k as fp32 for k in [-126, 127].
  function automatic logic [31:0] f32_pow2(logic signed [31:0] k);
    logic [31:0] biased;
    biased = 32'(k + 32'sd127);
    return {1'b0, biased[7:0], 23'd0};
  endfunction

  // ---------------------------------------------------------------- special functions
  function automatic logic [31:0] f32_exp(logic [31:0] x);
    /*verilator no_inline_task*/
    logic [31:0] xc, k, r, p, y;
    logic signed [31:0] ki, k_half;
    if (f32_lt(ExpHi, x)) xc = ExpHi;
    else if (f32_lt(x, ExpLo)) xc = ExpLo;
    else if (f32_is_nan(x)) xc = 32'd0;
    else xc = x;
    k = f32_sub(f32_add(f32_mul(xc, Log2E), RoundMagic), RoundMagic);
    r = f32_sub(f32_sub(xc, f32_mul(k, Ln2Hi)), f32_mul(k, Ln2Lo));
    p = ExpC6;
    p = f32_add(f32_mul(p, r), ExpC5);
    p = f32_add(f32_mul(p, r), ExpC4);
    p = f32_add(f32_mul(p, r), ExpC3);
    p = f32_add(f32_mul(p, r), ExpC2);
    p = f32_add(f32_mul(p, r), ExpC1);
    p = f32_add(f32_mul(p, r), ExpC0);
    ki = f32_small_int(k);
    k_half = ki >>> 1;
    y = f32_mul(f32_mul(p, f32_pow2(k_half)), f32_pow2(ki - k_half));
    if (f32_lt(ExpHi, x)) y = F32PosInf;
    if (f32_lt(x, ExpLo)) y = 32'd0;
    return f32_is_nan(x) ? F32CanonNan : y;
  endfunction

  function automatic logic [31:0] f32_recip(logic [31:0] x);
    /*verilator no_inline_task*/
    logic [31:0] a, y;
    a = {1'b0, x[30:0]};
    y = RecipMagic - ((a < F32Big) ? a : F32Big);
    for (int i = 0; i < int'(RecipNewtonSteps); i++) begin
      y = f32_mul(y, f32_sub(F32Two, f32_mul(a, y)));
    end
    y = f32_add(y, f32_mul(y, f32_sub(F32One, f32_mul(a, y))));
    if (f32_lt(a, F32MinNormal)) y = F32PosInf;
    if (f32_ge(a, F32Big)) y = 32'd0;
    if (x[31]) y = f32_neg(y);
    return f32_is_nan(x) ? F32CanonNan : y;
  endfunction

  function automatic logic [31:0] f32_rsqrt(logic [31:0] x);
    /*verilator no_inline_task*/
    logic [31:0] a, y, h;
    a = f32_ge(x, F32MinNormal) ? x : F32One;
    if (f32_is_inf(a)) a = F32One;
    y = RsqrtMagic - {1'b0, a[31:1]};
    h = f32_mul(F32Half, a);
    for (int i = 0; i < int'(RsqrtNewtonSteps); i++) begin
      y = f32_mul(y, f32_sub(F32ThreeHalves, f32_mul(h, f32_mul(y, y))));
    end
    y = f32_add(y, f32_mul(y, f32_sub(F32Half, f32_mul(h, f32_mul(y, y)))));
    if (f32_lt(x, F32MinNormal)) y = F32PosInf;
    if (x == F32PosInf) y = 32'd0;
    return (f32_is_nan(x) || f32_lt(x, 32'd0)) ? F32CanonNan : y;
  endfunction

  function automatic logic [31:0] f32_tanh(logic [31:0] x);
    /*verilator no_inline_task*/
    logic [31:0] a, x2, p, near_zero, far_from_zero, y;
    a = {1'b0, x[30:0]};
    x2 = f32_mul(x, x);
    p = TanhC4;
    p = f32_add(f32_mul(p, x2), TanhC3);
    p = f32_add(f32_mul(p, x2), TanhC2);
    p = f32_add(f32_mul(p, x2), TanhC1);
    p = f32_add(f32_mul(p, x2), TanhC0);
    near_zero = f32_add(x, f32_mul(x, f32_mul(x2, p)));
    far_from_zero = f32_sub(F32One,
                            f32_mul(F32Two, f32_recip(f32_add(f32_exp(f32_add(a, a)), F32One))));
    if (x[31]) far_from_zero = f32_neg(far_from_zero);
    y = f32_lt(a, TanhSmall) ? near_zero : far_from_zero;
    return f32_is_nan(x) ? F32CanonNan : y;
  endfunction

  function automatic logic [31:0] f32_erf(logic [31:0] x);
    /*verilator no_inline_task*/
    logic [31:0] a, s, p, q, near_zero, far_from_zero, y;
    a = {1'b0, x[30:0]};
    s = f32_mul(x, x);
    p = ErfP6;
    p = f32_add(f32_mul(p, s), ErfP5);
    p = f32_add(f32_mul(p, s), ErfP4);
    p = f32_add(f32_mul(p, s), ErfP3);
    p = f32_add(f32_mul(p, s), ErfP2);
    p = f32_add(f32_mul(p, s), ErfP1);
    p = f32_add(f32_mul(p, s), ErfP0);
    near_zero = f32_add(x, f32_mul(x, p));
    q = ErfQ6;
    q = f32_add(f32_mul(q, a), ErfQ5);
    q = f32_add(f32_mul(q, a), ErfQ4);
    q = f32_add(f32_mul(q, a), ErfQ3);
    q = f32_add(f32_mul(q, a), ErfQ2);
    q = f32_add(f32_mul(q, a), ErfQ1);
    q = f32_add(f32_mul(q, a), ErfQ0);
    far_from_zero = f32_sub(F32One, f32_exp(q));
    if (f32_ge(a, ErfSat)) far_from_zero = F32One;
    if (x[31]) far_from_zero = f32_neg(far_from_zero);
    y = f32_lt(a, ErfSmall) ? near_zero : far_from_zero;
    return f32_is_nan(x) ? F32CanonNan : y;
  endfunction

endpackage
