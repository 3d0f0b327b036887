"""Helpers that emit vector-unit instructions on ACC regions of one tile."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.registry import LowerCtx
from contract.isa import BMode, VBinFunct, VReduceFunct, VUnaryFunct


@dataclass(frozen=True)
class Reg:
    """An ACC region: address and row stride (rows x cols come from the tile)."""

    addr: int
    stride: int


class Vec:
    def __init__(self, ctx: LowerCtx, rows: int, cols: int):
        self.ctx, self.rows, self.cols = ctx, rows, cols

    def alloc(self, cols: int | None = None) -> Reg:
        return Reg(*self.ctx.acc.alloc(self.rows, self.cols if cols is None else cols))

    def bin(self, funct: VBinFunct, dst: Reg, a: Reg, b: Reg, mode: BMode = BMode.FULL) -> Reg:
        self.ctx.emit(
            "vbin",
            funct=funct,
            bmode=mode,
            dst=dst.addr,
            dst_stride=dst.stride,
            a=a.addr,
            a_stride=a.stride,
            b=b.addr,
            b_stride=b.stride,
            rows=self.rows,
            cols=self.cols,
        )
        return dst

    def imm(self, funct: VBinFunct, dst: Reg, a: Reg, value: float) -> Reg:
        self.ctx.emit(
            "vbin",
            funct=funct,
            bmode=BMode.IMM,
            dst=dst.addr,
            dst_stride=dst.stride,
            a=a.addr,
            a_stride=a.stride,
            rows=self.rows,
            cols=self.cols,
            imm=float(value),
        )
        return dst

    def unary(self, funct: VUnaryFunct, dst: Reg, a: Reg) -> Reg:
        self.ctx.emit(
            "vunary",
            funct=funct,
            dst=dst.addr,
            dst_stride=dst.stride,
            a=a.addr,
            a_stride=a.stride,
            rows=self.rows,
            cols=self.cols,
        )
        return dst

    def reduce(self, funct: VReduceFunct, dst: Reg, a: Reg) -> Reg:
        self.ctx.emit(
            "vreduce",
            funct=funct,
            dst=dst.addr,
            dst_stride=dst.stride,
            a=a.addr,
            a_stride=a.stride,
            rows=self.rows,
            cols=self.cols,
        )
        return dst

    def softmax_rows(self, x: Reg) -> Reg:
        """x <- softmax over each row, in place: max, subtract, exp, sum, recip, scale."""
        col = Reg(*self.ctx.acc.alloc(self.rows, 1))
        self.reduce(VReduceFunct.MAX, col, x)
        self.bin(VBinFunct.SUB, x, x, col, BMode.COL)
        self.unary(VUnaryFunct.EXP, x, x)
        self.reduce(VReduceFunct.SUM, col, x)
        col_rows = Vec(self.ctx, self.rows, 1)
        col_rows.unary(VUnaryFunct.RECIP, col, col)
        self.bin(VBinFunct.MUL, x, x, col, BMode.COL)
        return x
