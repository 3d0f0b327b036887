"""The "torch" backend: Loom programs executed with PyTorch on a device-resident DRAM
image (CPU, or CUDA for production speed).

Same blob, same layer table, same checks as the other backends. A device segment is
planned once: every instruction becomes one step, a closure over tensor views of the
device DRAM, scratchpad and accumulator made at plan time (operands checked then, with
the ISA model's own checks and fault codes), so running it is a loop of a few tensor
operations per instruction and no per-element Python. On CUDA the loop is captured into
a CUDA graph on first use and replayed afterwards.

Numerics: element-wise work (DMA conversions, bf16 rounding, vector unit, special
functions, reductions, masks) uses sim/torch_numerics.py, bit-identical with the ISA
model. MATMUL uses the device's fp32 matrix multiply (TF32 off), whose summation order
is not the matrix unit's k order: results agree with the ISA model within the tolerance
in docs/torch_backend.md, and later bf16 roundings can turn that into bf16-ulp
differences downstream. exact_matmul=True accumulates in k order instead (slow, for
tests): the whole program is then bit-identical with the ISA model.

Checkpoints: each CHECKPOINT step copies the layer's output and input bytes into device
buffers; after the segment the host image is updated and on_checkpoint is called per
checkpoint with those bytes in place, so golden checks see each layer as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from compiler.hw import HwConfig
from compiler.isa import (
    BMode,
    DType,
    Fault,
    Insn,
    Mem,
    Opcode,
    VBinFunct,
    VReduceFunct,
    VUnaryFunct,
)
from sim import torch_numerics as tx
from sim.ref import ExecError, RefMachine, Retired, fetch_segment

_UNARY = {
    VUnaryFunct.COPY: lambda a: a.clone(),
    VUnaryFunct.EXP: tx.exp,
    VUnaryFunct.RECIP: tx.recip,
    VUnaryFunct.RSQRT: tx.rsqrt,
    VUnaryFunct.TANH: tx.tanh,
}
_BINARY = {
    VBinFunct.ADD: torch.add,
    VBinFunct.SUB: torch.sub,
    VBinFunct.MUL: torch.mul,
    VBinFunct.MAX: tx.vmax,
    VBinFunct.MIN: tx.vmin,
}


@dataclass
class Plan:
    """One device segment, ready to run: a step per instruction up to HALT."""

    steps: list[Callable[[], None]]
    insns: list[tuple[int, Insn]]  # (pc, instruction) per step
    sync_from: int  # DRAM bytes below this are never written by the segment
    # (layer, byte ranges, device buffers the CHECKPOINT step copies them into), in order
    checkpoints: list[tuple[int, list[tuple[int, int]], list[torch.Tensor]]]
    graph: object = None  # torch.cuda.CUDAGraph once captured
    macs: int = 0  # per run, as the ISA model counts them
    dma_bytes: int = 0

    @property
    def constants_immutable(self) -> bool:
        """No store of this segment reaches the code or constants."""
        return self.sync_from > 0


def binding_bytes(b: dict) -> tuple[int, int]:
    """[first, last) DRAM bytes a bound tensor occupies."""
    size = {"float32": 4, "bfloat16": 2, "int32": 4, "bool": 1}[b["dtype"]]
    extent = sum((n - 1) * s for n, s in zip(b["shape"], b["strides"], strict=True)) + 1
    if any(n == 0 for n in b["shape"]):
        extent = 0
    base = b["addr"] + b["offset"] * size
    return base, base + extent * size


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        hw: HwConfig,
        device: str = "cpu",
        trace: bool = False,
        graphs: bool | None = None,
        exact_matmul: bool = False,
    ):
        self.hw = hw
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device=cuda asked for, but torch sees no CUDA device")
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.exact_matmul = exact_matmul
        self.trace: list[Retired] | None = [] if trace else None
        self.layer_ranges: dict[int, list[tuple[int, int]]] = {}
        # Bytes below `mutable_from` (code, constants) are the program's own and never
        # change between runs of it: uploaded once per program, never downloaded.
        self.program = None
        self.mutable_from = 0
        self.constants = (0, 0)  # [first, last) byte of the program's constants
        self.const_tiles: dict[tuple, torch.Tensor] = {}
        self._image_of = None
        self.plans: dict[tuple[int, int], Plan] = {}
        self.dram: torch.Tensor | None = None
        self.spad = torch.zeros(hw.spad_elems, dtype=torch.float32, device=self.device)
        self.acc = torch.zeros(hw.acc_elems, dtype=torch.float32, device=self.device)
        self.gather_bad = torch.zeros((), dtype=torch.int64, device=self.device)
        self._stats = {"retired": 0, "macs": 0, "dma_bytes": 0, "device": str(self.device)}
        # The matrix unit accumulates in fp32: never let the device use TF32 instead.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    # ------------------------------------------------------------------ hooks for sim.run
    def bind_program(self, program) -> None:
        if program is not self.program:
            self.const_tiles.clear()
        self.program = program
        self.mutable_from = program.meta["memory"]["io"][0]
        self.constants = tuple(program.meta["memory"]["constants"])
        self.layer_ranges = {
            la["id"]: [binding_bytes(b) for b in [la["output"], *la["inputs"]]]
            for la in program.layers
        }

    @property
    def stats(self) -> dict:
        return dict(self._stats)

    # ------------------------------------------------------------------ running
    def run_segment(
        self, dram: np.ndarray, code: bytes, pc: int, on_checkpoint: Callable[[int], None]
    ) -> None:
        key = (id(self.program), hash(code), len(code), pc)
        fresh = self._upload(dram)
        plan = None if fresh else self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self._plan(code, pc, dram.size)
        self._replay(plan)
        lo = plan.sync_from
        final = self.dram[lo:].cpu().numpy()
        self._check_gathers(plan)
        for layer, ranges, buffers in plan.checkpoints:
            for (a, b), buf in zip(ranges, buffers, strict=True):
                dram[a:b] = buf.cpu().numpy()
            on_checkpoint(layer)
        dram[lo:] = final
        self._stats["retired"] += len(plan.steps)
        self._stats["macs"] += plan.macs
        self._stats["dma_bytes"] += plan.dma_bytes
        if self.trace is not None:
            for pc_, insn in plan.insns:
                self.trace.append(Retired(len(self.trace), pc_, insn.opcode.name, dict(insn.args)))

    def _upload(self, dram: np.ndarray) -> bool:
        """Bring the device image up to date; True when it was rebuilt (plans made on
        an old image are then void)."""
        host = torch.from_numpy(np.asarray(dram))
        if self.dram is None or self.dram.numel() != host.numel():
            self.dram = torch.empty(host.numel(), dtype=torch.uint8, device=self.device)
            self.plans.clear()  # views were made on the old storage
            self.const_tiles.clear()
            self._image_of = None
        if self._image_of is not self.program or self.program is None:
            self.dram.copy_(host)
            self._image_of = self.program
            return not self.plans
        self.dram[self.mutable_from :].copy_(host[self.mutable_from :])
        return False

    def _replay(self, plan: Plan) -> None:
        self.gather_bad.zero_()
        if not (self.graphs and self.device.type == "cuda"):
            for step in plan.steps:
                step()
            return
        if plan.graph is None:
            plan.graph = self._capture(plan)  # its warm-up run is this run
        else:
            plan.graph.replay()
        torch.cuda.synchronize(self.device)

    def _capture(self, plan: Plan):
        """Record the segment as a CUDA graph: one warm-up run on a side stream (which
        is this run's result), then the capture, replayed by later runs."""
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for step in plan.steps:
                step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records the kernels; runs nothing
            for step in plan.steps:
                step()
        return graph

    def _check_gathers(self, plan: Plan) -> None:
        bad = int(self.gather_bad)
        if bad:
            pc, insn = plan.insns[bad - 1]
            raise ExecError("gather index outside the table", bad - 1, pc, insn, Fault.GATHER_INDEX)

    # ------------------------------------------------------------------ planning
    def _plan(self, code: bytes, pc: int, dram_bytes: int) -> Plan:
        # A dry ISA model: its operand checks (alignment, ranges, aliasing) are the spec.
        self._checker = RefMachine(self.hw, np.zeros(dram_bytes, dtype=np.uint8))
        plan = Plan([], [], self.mutable_from if self.program is not None else 0, [])
        for index, at, insn in fetch_segment(code, pc):
            try:
                step = self._step(insn, plan, index)
            except ExecError as e:
                raise ExecError(e.reason, index, at, insn, e.fault) from None
            plan.steps.append(step)
            plan.insns.append((at, insn))
            if insn.opcode == Opcode.DMA_ST and insn.dram < plan.sync_from:
                plan.sync_from = 0  # the segment writes below: sync the whole image
        return plan

    def _sram(self, space, addr, stride, rows, cols, what) -> torch.Tensor:
        self._checker._sram(space, addr, stride, rows, cols, what)
        mem = self.acc if space == Mem.ACC else self.spad
        return mem.as_strided((rows, cols), (stride, 1), addr)

    def _dram(self, dtype, addr, rs, cs, rows, cols, what) -> torch.Tensor:
        self._checker._dram(dtype, addr, rs, cs, rows, cols, what)
        typed = self.dram.view(torch.float32 if dtype == DType.FP32 else torch.int16)
        size = 4 if dtype == DType.FP32 else 2
        return typed.as_strided((rows, cols), (rs, cs), addr // size)

    def _step(self, i: Insn, plan: Plan, index: int) -> Callable[[], None]:
        op = i.opcode
        if op in (Opcode.NOP, Opcode.HALT, Opcode.FENCE):
            return lambda: None
        if op == Opcode.CHECKPOINT:
            ranges = self.layer_ranges.get(i.layer, [])
            buffers = [
                torch.empty(hi - lo, dtype=torch.uint8, device=self.device) for lo, hi in ranges
            ]
            plan.checkpoints.append((i.layer, ranges, buffers))
            sources = [self.dram[lo:hi] for lo, hi in ranges]

            def snapshot():
                for buf, src in zip(buffers, sources, strict=True):
                    buf.copy_(src)

            return snapshot
        return getattr(self, f"_plan_{op.name.lower()}")(i, plan, index)

    # One planner per opcode, in the ISA model's order of checks (sim/ref.py).
    def _plan_dma_ld(self, i: Insn, plan: Plan, index: int):
        src = self._dram(i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "source")
        dst = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
        plan.dma_bytes += src.numel() * src.element_size()
        bf16, to_spad = i.dtype == DType.BF16, i.space == Mem.SPAD

        def convert() -> torch.Tensor:
            vals = tx.bf16_to_f32(src) if bf16 else src
            return tx.round_bf16(vals) if to_spad and not bf16 else vals

        # Loads of the program's constants (weights) are converted once and kept: the
        # bytes cannot change while the plan lives (see Plan.constants_immutable).
        size = 4 if i.dtype == DType.FP32 else 2
        last = i.dram + ((i.rows - 1) * i.dram_rs + (i.cols - 1) * i.dram_cs) * size + size
        lo, hi = self.constants
        key = (i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, to_spad)
        if not (lo <= i.dram and last <= hi and i.rows and i.cols):
            return lambda: tx.store_canon(dst, convert())

        def step():
            if not plan.constants_immutable:
                tx.store_canon(dst, convert())
                return
            tile = self.const_tiles.get(key)
            if tile is None:
                tile = self.const_tiles[key] = tx.canon_nan(convert())
            dst.copy_(tile)

        return step

    def _plan_dma_st(self, i: Insn, plan: Plan, index: int):
        if i.rows > 1 and i.dram_rs == 0 or i.cols > 1 and i.dram_cs == 0:
            raise ExecError(
                "store with a zero stride writes one address twice", fault=Fault.BAD_OPERANDS
            )
        src = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "source")
        dst = self._dram(i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, "destination")
        if i.dtype != DType.BF16 and i.space == Mem.SPAD:
            raise ExecError("SPAD holds bf16: store it as bf16, not fp32", fault=Fault.BAD_OPERANDS)
        plan.dma_bytes += dst.numel() * dst.element_size()
        if i.dtype == DType.BF16:
            return lambda: dst.copy_(tx.f32_to_bf16(src))
        return lambda: dst.copy_(src)

    def _plan_gather(self, i: Insn, plan: Plan, index: int):
        if i.idx % 4:
            raise ExecError(
                f"index address {i.idx:#x} not aligned to 4 bytes", fault=Fault.DRAM_ALIGN
            )
        if i.idx + 4 * i.rows > self.dram.numel():
            raise ExecError(f"index array at {i.idx:#x} out of range", fault=Fault.DRAM_RANGE)
        table = self._dram(i.dtype, i.table_addr, i.table_rs, 1, i.table_rows, i.cols, "table")
        dst = self._sram(i.space, i.sram, i.sram_stride, i.rows, i.cols, "destination")
        idx = self.dram.view(torch.int32)[i.idx // 4 : i.idx // 4 + i.rows]
        n, bf16, to_spad = i.table_rows, i.dtype == DType.BF16, i.space == Mem.SPAD
        tag = index + 1
        plan.dma_bytes += i.rows * i.cols * table.element_size() + 4 * i.rows

        def step():
            # Out-of-range indices are recorded (the first faulting step wins) and
            # clamped so the device never reads outside the table; the run then fails.
            bad = (idx < 0) | (idx >= n)
            first = torch.where(bad.any() & (self.gather_bad == 0), tag, 0)
            self.gather_bad.add_(first)
            rows = table.index_select(0, idx.clamp(0, n - 1).to(torch.int64))
            vals = tx.bf16_to_f32(rows) if bf16 else rows
            if to_spad and not bf16:
                vals = tx.round_bf16(vals)
            tx.store_canon(dst, vals)

        return step

    def _plan_matmul(self, i: Insn, plan: Plan, index: int):
        if i.acc and i.use_bias:
            raise ExecError("acc and use_bias are exclusive", fault=Fault.BAD_OPERANDS)
        a = self._sram(Mem.SPAD, i.a, i.a_stride, i.m, i.k, "A")
        if i.trans_b:
            b = self._sram(Mem.SPAD, i.b, i.b_stride, i.n, i.k, "B^T").t()
        else:
            b = self._sram(Mem.SPAD, i.b, i.b_stride, i.k, i.n, "B")
        c = self._sram(Mem.ACC, i.dst, i.dst_stride, i.m, i.n, "C")
        bias = None
        if i.use_bias:
            bias = self._sram(Mem.ACC, i.bias, 0, 1, i.n, "bias")
            RefMachine._check_alias(
                (Mem.ACC, i.dst, i.dst_stride, i.m, i.n), (Mem.ACC, i.bias, 0, 1, i.n), "C/bias"
            )
        plan.macs += i.m * i.n * i.k
        accumulate, exact, k = bool(i.acc), self.exact_matmul, i.k

        def step():
            if bias is not None:
                acc = bias.expand(c.shape[0], -1).clone()
            elif accumulate:
                acc = c.clone()
            else:
                acc = torch.zeros_like(c)
            if exact:  # the matrix unit's order: acc <- acc + a[:, k] * b[k, :]
                for kk in range(k):
                    acc = acc + a[:, kk : kk + 1] * b[kk : kk + 1, :]
            else:
                acc = torch.addmm(acc, a, b)
            tx.store_canon(c, acc)

        return step

    def _plan_move(self, i: Insn, plan: Plan, index: int):
        src = self._sram(i.src_space, i.src, i.src_stride, i.rows, i.cols, "source")
        dst = self._sram(i.dst_space, i.dst, i.dst_stride, i.rows, i.cols, "destination")
        RefMachine._check_alias(
            (i.dst_space, i.dst, i.dst_stride, i.rows, i.cols),
            (i.src_space, i.src, i.src_stride, i.rows, i.cols),
            "move",
        )
        rounding = i.dst_space == Mem.SPAD and i.src_space == Mem.ACC
        return lambda: dst.copy_(tx.round_bf16(src) if rounding else src.clone())

    def _plan_vbin(self, i: Insn, plan: Plan, index: int):
        region = (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols)
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        RefMachine._check_alias(region, (Mem.ACC, i.a, i.a_stride, i.rows, i.cols), "a")
        mode = BMode(i.bmode)
        if mode == BMode.IMM:
            b = torch.tensor(float(np.float32(i.imm)), dtype=torch.float32, device=self.device)
        elif mode == BMode.FULL:
            b = self._sram(Mem.ACC, i.b, i.b_stride, i.rows, i.cols, "b")
            RefMachine._check_alias(region, (Mem.ACC, i.b, i.b_stride, i.rows, i.cols), "b")
        elif mode == BMode.ROW:
            b = self._sram(Mem.ACC, i.b, 0, 1, i.cols, "b")
            RefMachine._check_alias(region, (Mem.ACC, i.b, 0, 1, i.cols), "b (row)")
        else:
            b = self._sram(Mem.ACC, i.b, i.b_stride, i.rows, 1, "b")
            RefMachine._check_alias(region, (Mem.ACC, i.b, i.b_stride, i.rows, 1), "b (column)")
        fn = _BINARY[VBinFunct(i.funct)]
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        return lambda: tx.store_canon(dst, fn(a, b))

    def _plan_vunary(self, i: Insn, plan: Plan, index: int):
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        RefMachine._check_alias(
            (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols),
            (Mem.ACC, i.a, i.a_stride, i.rows, i.cols),
            "a",
        )
        fn = _UNARY[VUnaryFunct(i.funct)]
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        return lambda: tx.store_canon(dst, fn(a))

    def _plan_vreduce(self, i: Insn, plan: Plan, index: int):
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, 1, "dst")
        d0, d1 = i.dst, i.dst + max(i.rows - 1, 0) * i.dst_stride + 1
        a0, a1 = i.a, i.a + max(i.rows - 1, 0) * i.a_stride + i.cols
        if d0 < a1 and a0 < d1:
            raise ExecError("reduction destination overlaps its source", fault=Fault.ALIAS)
        op = "sum" if i.funct == VReduceFunct.SUM else "max"
        lanes = self.hw.line_elems
        return lambda: dst[:, 0].copy_(tx.reduce_rows(a, lanes, op))

    def _plan_vmask(self, i: Insn, plan: Plan, index: int):
        a = self._sram(Mem.ACC, i.a, i.a_stride, i.rows, i.cols, "a")
        RefMachine._check_alias(
            (Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols),
            (Mem.ACC, i.a, i.a_stride, i.rows, i.cols),
            "a",
        )
        r = torch.arange(i.rows, device=self.device)[:, None]
        col = torch.arange(i.cols, device=self.device)[None, :]
        masked = col > r + i.offset  # [rows, cols]
        imm = torch.tensor(float(np.float32(i.imm)), dtype=torch.float32, device=self.device)
        dst = self._sram(Mem.ACC, i.dst, i.dst_stride, i.rows, i.cols, "dst")
        return lambda: tx.store_canon(dst, torch.where(masked, imm, a))
