"""The "torch" backend: Loom programs executed with PyTorch on a device-resident DRAM
image (CPU, or CUDA for production speed).

Same blob, same layer table, same checks as the other backends. A device segment is
planned once: every instruction's operands are resolved and checked in program order
(contract.regions, as the ISA model does: same fault codes, same instruction), the
compiler's tile loops are found and batched (loops.py: a loop body
instruction runs once for all iterations, over private per-iteration SRAM copies), and
each step becomes a closure over tensor views of the device DRAM, scratchpad,
accumulator and private copies made at plan time. Running it is a loop of a few tensor
operations per step and no per-element Python. On CUDA the loop is captured into a CUDA
graph on first use and replayed afterwards.

Numerics: element-wise work (DMA conversions, bf16 rounding, vector unit, special
functions, reductions, masks) uses numerics.py, bit-identical with the ISA
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

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from contract import numerics as nx
from contract.blob import DRAM_ELEMENTS, binding_span
from contract.hw import HwConfig
from contract.isa import (
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
from contract.regions import Dram, OperandError, Operands, Region, Sram, resolve
from sim.ref import ExecError, Retired, fetch_segment
from sim.torch_backend import numerics as tx
from sim.torch_backend.loops import Leaf, Loop, batch, sram_span

_UNARY = {
    VUnaryFunct.COPY: lambda a: a.clone(),
    VUnaryFunct.EXP: tx.exp,
    VUnaryFunct.RECIP: tx.recip,
    VUnaryFunct.RSQRT: tx.rsqrt,
    VUnaryFunct.TANH: tx.tanh,
    VUnaryFunct.ERF: tx.erf,
}
_BINARY = {
    VBinFunct.ADD: torch.add,
    VBinFunct.SUB: torch.sub,
    VBinFunct.MUL: torch.mul,
    VBinFunct.MAX: tx.vmax,
    VBinFunct.MIN: tx.vmin,
    **{VBinFunct[op.upper()]: partial(tx.compare, op) for op in nx.COMPARISONS},
}
# Selects: the immediate is their third operand.
_SELECT = {VBinFunct.KEEP: tx.keep, VBinFunct.FILL: tx.fill}


# The torch dtype that holds each stored numpy type (bf16 patterns as int16: torch has
# no arithmetic on uint16, and the bits are only moved).
_TORCH_STORAGE = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.uint16): torch.int16,
    np.dtype(np.int32): torch.int32,
}
CPU_BLOCK_ELEMS = 1 << 16  # elements per block of a batched step on a CPU (256 KiB fp32)


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
    loops: int = 0  # top-level batched loops
    depth: int = 0  # deepest loop nesting
    # The static fault the segment stops at (the steps are the instructions before it),
    # and whether a GATHER can fault at run time.
    fault: ExecError | None = None
    gathers: bool = False

    @property
    def constants_immutable(self) -> bool:
        """No store of this segment reaches the code or constants."""
        return self.sync_from > 0


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        hw: HwConfig,
        device: str = "cpu",
        trace: bool = False,
        graphs: bool | None = None,
        exact_matmul: bool = False,
        batching: bool = True,
    ):
        self.hw = hw
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device=cuda asked for, but torch sees no CUDA device")
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self.exact_matmul = exact_matmul
        self.batching = batching  # run tile loops as batched operations (loops.py)
        # A CPU runs big batched steps in blocks that stay in its caches; a GPU wants
        # the whole batch in one kernel.
        self.block_elems = CPU_BLOCK_ELEMS if self.device.type == "cpu" else None
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
        self._stats = {"retired": 0, "steps": 0, "macs": 0, "dma_bytes": 0}
        self._stats["device"] = str(self.device)
        # The matrix unit accumulates in fp32: never let the device use TF32 instead.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    # ------------------------------------------------------------------ Backend protocol
    def bind(self, program) -> None:
        if program is not self.program:
            self.const_tiles.clear()
        self.program = program
        self.mutable_from = program.meta["memory"]["io"][0]
        self.constants = tuple(program.meta["memory"]["constants"])
        self.layer_ranges = {
            la["id"]: [binding_span(b) for b in [la["output"], *la["inputs"]]]
            for la in program.layers
        }

    def new_dram(self, nbytes: int) -> np.ndarray:
        """The host image; the device keeps its own copy (uploaded per run)."""
        return np.zeros(nbytes, dtype=np.uint8)

    def close(self) -> None:
        """Device memory goes with the object; plans stay valid until then."""

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
        start = (self.spad.clone(), self.acc.clone()) if plan.gathers else None
        self._replay(plan)
        bad = int(self.gather_bad)
        if bad:
            # An index was out of range: the ISA model stops at that GATHER. Run the
            # segment again from its start up to it, for the state it leaves behind.
            index = bad - 1
            self.dram.copy_(torch.from_numpy(np.asarray(dram)))
            self.spad.copy_(start[0])
            self.acc.copy_(start[1])
            prefix = self._plan(code, pc, dram.size, stop=index)
            self._replay(prefix)
            self._finish(dram, prefix, on_checkpoint)
            at, insn = plan.insns[index]
            raise ExecError("gather index outside the table", index, at, insn, Fault.GATHER_INDEX)
        self._finish(dram, plan, on_checkpoint)
        if plan.fault is not None:  # after the instructions before it took effect
            raise plan.fault

    def _finish(self, dram: np.ndarray, plan: Plan, on_checkpoint) -> None:
        """The replayed plan's results into the host image, its checkpoints in order, and
        its counts."""
        lo = plan.sync_from
        final = self.dram[lo:].cpu().numpy()
        for layer, ranges, buffers in plan.checkpoints:
            for (a, b), buf in zip(ranges, buffers, strict=True):
                dram[a:b] = buf.cpu().numpy()
            on_checkpoint(layer)
        dram[lo:] = final
        self._stats["retired"] += len(plan.insns)
        self._stats["steps"] += len(plan.steps)
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

    # ------------------------------------------------------------------ planning
    def _plan(self, code: bytes, pc: int, dram_bytes: int, stop: int | None = None) -> Plan:
        """Steps for the segment at pc, up to HALT, the first static fault, or instruction
        `stop`. Every instruction's operands are checked first, in program order, so a
        bad program faults at the same instruction, with the same code, as on the ISA
        model, after the instructions before it have run."""
        leaves, fault = [], None
        try:
            for index, at, insn in fetch_segment(code, pc):
                if index == stop:
                    break
                try:
                    ops = resolve(insn, self.hw, dram_bytes)
                except OperandError as e:
                    fault = ExecError(e.reason, index, at, insn, e.fault)
                    break
                leaves.append(Leaf(index, at, insn, ops))
        except ExecError as e:  # an illegal word, or the pc leaving the code
            fault = e
        nodes = batch(self.hw, leaves) if self.batching else leaves
        plan = Plan([], [(leaf.pc, leaf.insn) for leaf in leaves], self.mutable_from, [])
        plan.fault = fault
        plan.gathers = any(leaf.insn.opcode == Opcode.GATHER for leaf in leaves)
        if self.program is None or any(
            leaf.insn.opcode == Opcode.DMA_ST and leaf.insn.dram < plan.sync_from for leaf in leaves
        ):
            plan.sync_from = 0  # the segment writes below: sync the whole image
        scratch = max((node.scratch for node in nodes if isinstance(node, Loop)), default=0)
        self._scratch = torch.empty(scratch, dtype=torch.float32, device=self.device)
        self._scratch_top = 0
        for node in nodes:
            self._plan_node(node, plan, [], [])
        plan.loops = sum(isinstance(node, Loop) for node in nodes)
        plan.depth = max((_depth(node) for node in nodes), default=0)
        return plan

    def _plan_node(self, node, plan: Plan, levels: list[_Level], steps: list[tuple]) -> None:
        """Steps for a node inside `levels` (enclosing loops, outermost first); steps[d]
        is the node's address-vector step per iteration of levels[d]."""
        if isinstance(node, Leaf):
            step = self._leaf_step(node, plan, levels, steps)
            if step is not None:
                plan.steps.append(step)
            return
        counts = [lv.count for lv in levels] + [node.count]
        level = _Level(node.count, {}, node.windows)
        mark = self._scratch_top
        for space, (lo, hi) in node.windows.items():
            numel = math.prod(counts) * (hi - lo)
            buf = self._scratch[self._scratch_top : self._scratch_top + numel]
            level.buffers[space] = buf.view(*counts, hi - lo)
            self._scratch_top += numel
        offset = 0
        for j, child in enumerate(node.body):
            width = len(child.addrs)
            inner = [s[offset : offset + width] for s in steps] + [node.deltas[j]]
            self._plan_node(child, plan, [*levels, level], inner)
            offset += width
        # Live-out: the last iteration's private values become the enclosing state.
        for acc in node.accesses:
            if not acc.write or not isinstance(acc.region, Sram) or acc.region in node.dead:
                continue
            r = acc.region
            buf = level.buffers[r.space]
            lo = node.windows[r.space][0]
            last = buf.storage_offset() + (node.count - 1) * buf.stride(len(levels)) + r.addr - lo
            src = buf.as_strided(
                [*counts[:-1], r.rows, r.cols],
                [*buf.stride()[: len(levels)], r.stride, 1],
                last,
            )
            dst = self._view(r, [0] * len(levels), levels)
            plan.steps.append(lambda dst=dst, src=src: dst.copy_(src))
        self._scratch_top = mark

    def _view(self, region: Region, deltas: list[int], levels: list[_Level]) -> torch.Tensor:
        """The region over every iteration of `levels` as one tensor [*counts, rows,
        cols]: a view of the private copy of the innermost loop whose written window it
        falls in, else of the shared SRAM or the DRAM image; deltas[d] is its address
        step per iteration of levels[d]."""
        counts = [lv.count for lv in levels]
        shape = [*counts, region.rows, region.cols]
        if isinstance(region, Dram):
            size = region.size
            typed = self.dram.view(_TORCH_STORAGE[DRAM_ELEMENTS[region.dtype].storage])
            strides = [d // size for d in deltas] + [region.rs, region.cs]
            return typed.as_strided(shape, strides, region.addr // size)
        for depth in reversed(range(len(levels))):
            window = levels[depth].windows.get(region.space)
            if window is None:
                continue
            inner = zip(counts[depth + 1 :], deltas[depth + 1 :], strict=True)
            lo, hi = sram_span(region, tuple(inner))
            if hi <= window[0] or window[1] <= lo:
                continue
            buf = levels[depth].buffers[region.space]
            strides = [*buf.stride()[: depth + 1], *deltas[depth + 1 :], region.stride, 1]
            return buf.as_strided(shape, strides, buf.storage_offset() + region.addr - window[0])
        mem = self.acc if region.space == Mem.ACC else self.spad
        return mem.as_strided(shape, [*deltas, region.stride, 1], region.addr)

    def _leaf_step(self, leaf: Leaf, plan: Plan, levels, steps) -> Callable[[], None] | None:
        i, op = leaf.insn, leaf.insn.opcode
        if op in (Opcode.NOP, Opcode.HALT, Opcode.FENCE):
            return None
        if op == Opcode.CHECKPOINT:
            return self._plan_checkpoint(i, plan)
        names = [*leaf.ops.reads, *leaf.ops.writes]
        regions = [*leaf.ops.reads.values(), *leaf.ops.writes.values()]

        def view(name: str) -> torch.Tensor:
            slot = names.index(name)
            return self._view(regions[slot], [s[slot] for s in steps], levels)

        planner = getattr(self, f"_plan_{op.name.lower()}")
        counts = [lv.count for lv in levels]
        elems = max(r.rows * r.cols for r in regions)
        blocks = _blocks(counts, elems, self.block_elems)
        if len(blocks) == 1:
            return planner(i, plan, view, _Batch(counts, steps, leaf.index, leaf.ops))
        # On a CPU a step whose working set overflows the caches runs block by block
        # (each block still a batch of iterations): the same values, computed in cache.
        parts = [
            planner(
                i,
                plan,
                lambda name, at=at: view(name)[at],
                _Batch(counts, steps, leaf.index, leaf.ops, at),
            )
            for at in blocks
        ]

        def run_blocks():
            for part in parts:
                part()

        return run_blocks

    def _plan_checkpoint(self, i: Insn, plan: Plan) -> Callable[[], None]:
        ranges = self.layer_ranges.get(i.layer, [])
        buffers = [torch.empty(hi - lo, dtype=torch.uint8, device=self.device) for lo, hi in ranges]
        plan.checkpoints.append((i.layer, ranges, buffers))
        sources = [self.dram[lo:hi] for lo, hi in ranges]

        def snapshot():
            for buf, src in zip(buffers, sources, strict=True):
                buf.copy_(src)

        return snapshot

    # One planner per opcode; `view(name)` is an operand over every iteration of the
    # enclosing loops, shaped [*batch.counts, rows, cols].
    def _plan_dma_ld(self, i: Insn, plan: Plan, view, batch: _Batch):
        src, dst = view("src"), view("dst")
        plan.dma_bytes += batch.dram_bytes
        bf16, to_spad = i.dtype == DType.BF16, i.space == Mem.SPAD

        def convert(out: torch.Tensor | None = None) -> torch.Tensor:
            return tx.load_values(src, bf16, to_spad, out)

        # Loads of the program's constants (weights) are converted once and kept: the
        # bytes cannot change while the plan lives (see Plan.constants_immutable).
        first, last = batch.span("src")
        lo, hi = self.constants
        key = (i.dtype, i.dram, i.dram_rs, i.dram_cs, i.rows, i.cols, to_spad, batch.key("src"))
        if not (lo <= first and last <= hi and i.rows and i.cols):
            return lambda: convert(dst)

        def step():
            if not plan.constants_immutable:
                convert(dst)
                return
            tile = self.const_tiles.get(key)
            if tile is None:
                tile = self.const_tiles[key] = convert()
            dst.copy_(tile)

        return step

    def _plan_dma_st(self, i: Insn, plan: Plan, view, batch: _Batch):
        src, dst = view("src"), view("dst")
        plan.dma_bytes += batch.dram_bytes
        if i.dtype == DType.BF16:
            return lambda: dst.copy_(tx.f32_to_bf16(src))
        return lambda: dst.copy_(src)

    def _plan_gather(self, i: Insn, plan: Plan, view, batch: _Batch):
        table, dst, idx = view("table"), view("dst"), view("idx")[:, 0]
        n, bf16, to_spad = i.table_rows, i.dtype == DType.BF16, i.space == Mem.SPAD
        tag = batch.index + 1
        plan.dma_bytes += batch.dram_bytes

        def step():
            # Out-of-range indices are recorded (the first faulting step wins) and
            # clamped so the device never reads outside the table; the run then fails.
            bad = (idx < 0) | (idx >= n)
            first = torch.where(bad.any() & (self.gather_bad == 0), tag, 0)
            self.gather_bad.add_(first)
            rows = table.index_select(0, idx.clamp(0, n - 1).to(torch.int64))
            tx.load_values(rows, bf16, to_spad, dst)

        return step

    def _plan_matmul(self, i: Insn, plan: Plan, view, batch: _Batch):
        a, b, c = view("a"), view("b"), view("dst")
        if i.trans_b:
            b = b.transpose(-1, -2)
        bias = view("bias") if i.use_bias else None
        plan.macs += i.m * i.n * i.k * batch.size
        accumulate, exact, k = bool(i.acc), self.exact_matmul, i.k

        def step():
            if exact:  # the matrix unit's order: acc <- acc + a[:, k] * b[k, :]
                if bias is not None:
                    acc = bias.expand(c.shape).clone()
                else:
                    acc = c.clone() if accumulate else torch.zeros_like(c)
                for kk in range(k):
                    acc = acc + a[..., kk : kk + 1] * b[..., kk : kk + 1, :]
            else:
                acc = torch.matmul(a, b)
                if bias is not None:
                    acc = acc.add_(bias)
                elif accumulate:
                    acc = acc.add_(c)
            tx.store_canon(c, acc)

        return step

    def _plan_move(self, i: Insn, plan: Plan, view, batch: _Batch):
        src, dst = view("src"), view("dst")
        rounding = i.dst_space == Mem.SPAD and i.src_space == Mem.ACC
        return lambda: dst.copy_(tx.round_bf16(src) if rounding else src.clone())

    def _plan_vbin(self, i: Insn, plan: Plan, view, batch: _Batch):
        a, dst = view("a"), view("dst")
        imm = torch.tensor(float(np.float32(i.imm)), dtype=torch.float32, device=self.device)
        b = imm if BMode(i.bmode) == BMode.IMM else view("b")
        funct = VBinFunct(i.funct)
        if funct in _SELECT:
            select = _SELECT[funct]
            return lambda: tx.store_canon(dst, select(a, b, imm))
        fn = _BINARY[funct]
        return lambda: tx.store_canon(dst, fn(a, b))

    def _plan_vunary(self, i: Insn, plan: Plan, view, batch: _Batch):
        a, dst = view("a"), view("dst")
        fn = _UNARY[VUnaryFunct(i.funct)]
        return lambda: tx.store_canon(dst, fn(a))

    def _plan_vreduce(self, i: Insn, plan: Plan, view, batch: _Batch):
        a, dst = view("a"), view("dst")[..., 0]
        op = "sum" if i.funct == VReduceFunct.SUM else "max"
        lanes = self.hw.line_elems
        return lambda: dst.copy_(tx.reduce_rows(a, lanes, op))

    def _plan_vmask(self, i: Insn, plan: Plan, view, batch: _Batch):
        a, dst = view("a"), view("dst")
        # The mask offset may step between iterations: one offset per iteration.
        offset = batch.values(i.offset, slot=-1, device=self.device)  # [*counts, 1, 1]
        r = torch.arange(i.rows, device=self.device)[:, None]
        col = torch.arange(i.cols, device=self.device)[None, :]
        masked = col > r + offset  # [*counts, rows, cols]
        imm = torch.tensor(float(np.float32(i.imm)), dtype=torch.float32, device=self.device)
        return lambda: tx.store_canon(dst, torch.where(masked, imm, a))


@dataclass
class _Level:
    """One enclosing loop while planning: its count, its private SRAM copies
    ([*counts of the loops down to it, window elements] per memory) and windows."""

    count: int
    buffers: dict[Mem, torch.Tensor]
    windows: dict[Mem, tuple[int, int]]


@dataclass
class _Batch:
    """The loop iterations an instruction runs over: counts per enclosing loop and its
    address-vector steps per loop; index is the instruction index of iteration 0."""

    counts: list[int]
    steps: list[tuple[int, ...]]
    index: int
    ops: Operands  # the instruction's regions at iteration 0
    at: tuple = ()  # the block of iterations this step runs (an index into the counts)

    @property
    def size(self) -> int:
        return math.prod(torch.empty(self.counts, device="meta")[self.at].shape)

    @property
    def dram_bytes(self) -> int:
        """DRAM bytes the instruction moves over the iterations of this step."""
        return (self.ops.dram_read_bytes + self.ops.dram_write_bytes) * self.size

    def _slot(self, name: str) -> int:
        return [*self.ops.reads, *self.ops.writes].index(name)

    def key(self, name: str) -> tuple:
        """What identifies operand `name` over the whole batch."""
        slot = self._slot(name)
        return tuple(self.counts), tuple(s[slot] for s in self.steps), repr(self.at)

    def span(self, name: str) -> tuple[int, int]:
        """[first, end) addresses operand `name` covers over every iteration."""
        region = {**self.ops.reads, **self.ops.writes}[name]
        slot = self._slot(name)
        moves = [(n - 1) * s[slot] for n, s in zip(self.counts, self.steps, strict=True)]
        lo = region.addr + sum(min(0, m) for m in moves)
        return lo, region.end + sum(max(0, m) for m in moves)

    def values(self, base: int, slot: int, device) -> torch.Tensor:
        """base + its step per iteration, as a tensor [*counts, 1, 1]."""
        out = torch.full((1,) * len(self.counts), base, dtype=torch.int64)
        for d, (n, s) in enumerate(zip(self.counts, self.steps, strict=True)):
            shape = [1] * len(self.counts)
            shape[d] = n
            out = out + s[slot] * torch.arange(n).view(shape)
        return out[self.at][..., None, None].to(device)


def _blocks(counts: list[int], elems: int, limit: int | None) -> list[tuple]:
    """Index tuples into a batch of iterations `counts` (elems elements each) that cut
    it into blocks of at most `limit` elements (whole iterations; row-major order)."""
    per_block = max(1, (limit or 0) // max(elems, 1))
    if limit is None or math.prod(counts) <= per_block:
        return [()]
    d = len(counts) - 1  # split dim: the outermost whose inner dims fit one block
    while d > 0 and math.prod(counts[d:]) <= per_block:
        d -= 1
    inner = math.prod(counts[d + 1 :])
    width = max(1, per_block // inner)
    out = []
    for outer in itertools.product(*(range(n) for n in counts[:d])):
        for lo in range(0, counts[d], width):
            out.append((*outer, slice(lo, min(lo + width, counts[d]))))
    return out


def _depth(node) -> int:
    return 0 if isinstance(node, Leaf) else 1 + max(_depth(c) for c in node.body)
