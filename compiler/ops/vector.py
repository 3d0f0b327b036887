"""Helpers that emit vector-unit instructions on ACC regions of one tile."""

from __future__ import annotations

from compiler.context import LowerCtx
from compiler.tiles import SramTile
from contract.isa import BMode, VBinFunct, VReduceFunct, VUnaryFunct

NEG_FLT_MAX = -3.4028234663852886e38  # the most negative finite fp32


class Vec:
    """Vector instructions over [rows, cols] ACC regions (SramTiles of ctx.acc)."""

    def __init__(self, ctx: LowerCtx, rows: int, cols: int):
        self.ctx, self.rows, self.cols = ctx, rows, cols

    def alloc(self, cols: int | None = None) -> SramTile:
        return self.ctx.acc.alloc(self.rows, self.cols if cols is None else cols)

    def _emit(self, mnemonic: str, dst: SramTile, a: SramTile, **fields) -> SramTile:
        """One instruction dst <- f(a, ...) over the whole [rows, cols] tile."""
        self.ctx.emit(
            mnemonic,
            **fields,
            **dst.fields("dst"),
            **a.fields("a"),
            rows=self.rows,
            cols=self.cols,
        )
        return dst

    def bin(
        self, funct: VBinFunct, dst: SramTile, a: SramTile, b: SramTile, mode: BMode = BMode.FULL
    ) -> SramTile:
        return self._emit("vbin", dst, a, funct=funct, bmode=mode, **b.fields("b"))

    def imm(self, funct: VBinFunct, dst: SramTile, a: SramTile, value: float) -> SramTile:
        return self._emit("vbin", dst, a, funct=funct, bmode=BMode.IMM, imm=float(value))

    def select(
        self, funct: VBinFunct, dst: SramTile, a: SramTile, b: SramTile, imm: float
    ) -> SramTile:
        """dst = keep (b != 0 ? a : imm) or fill (b != 0 ? imm : a): the immediate is
        the select's third operand (ISA v5)."""
        assert funct in (VBinFunct.KEEP, VBinFunct.FILL), funct
        return self._emit("vbin", dst, a, funct=funct, bmode=BMode.FULL, imm=imm, **b.fields("b"))

    def unary(self, funct: VUnaryFunct, dst: SramTile, a: SramTile) -> SramTile:
        return self._emit("vunary", dst, a, funct=funct)

    def reduce(self, funct: VReduceFunct, dst: SramTile, a: SramTile) -> SramTile:
        return self._emit("vreduce", dst, a, funct=funct)

    def softmax_rows(self, x: SramTile, masked_rows_zero: bool = False) -> SramTile:
        """x <- softmax over each row, in place: max, subtract, exp, sum, recip, scale.

        masked_rows_zero: a row that is -inf throughout comes out 0 (PyTorch's sdpa), not
        NaN: the max is raised to -FLT_MAX (so exp gives 0) and the sum to 1, two
        instructions that change no other row (its max is finite, its sum >= 1)."""
        col = self.ctx.acc.alloc(self.rows, 1)
        col_rows = Vec(self.ctx, self.rows, 1)
        self.reduce(VReduceFunct.MAX, col, x)
        if masked_rows_zero:
            col_rows.imm(VBinFunct.MAX, col, col, NEG_FLT_MAX)
        self.bin(VBinFunct.SUB, x, x, col, BMode.COL)
        self.unary(VUnaryFunct.EXP, x, x)
        self.reduce(VReduceFunct.SUM, col, x)
        if masked_rows_zero:
            col_rows.imm(VBinFunct.MAX, col, col, 1.0)
        col_rows.unary(VUnaryFunct.RECIP, col, col)
        self.bin(VBinFunct.MUL, x, x, col, BMode.COL)
        return x
