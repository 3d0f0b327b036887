"""The "verilator" backend: device segments run on the RTL, simulated by Verilator under
the cocotb + pyuvm testbench (testbench/).

The simulator is a separate process (cocotb embeds Python in it). This class starts it
once, then sends one request per device segment over a local socket. DRAM is a file
both processes map: the RTL's simulated DRAM (DPI-C) and numpy here see the same bytes,
so checkpoints are read without copies. Small images are streamed through the host
port (front door); large ones are written straight into the mapping (back door).

Every retired instruction is checked against the ISA model as it retires (lockstep:
testbench/lockstep.py and hdl/loom_lockstep.cc); the first divergence stops the run
with a DivergenceError that names the instruction, layer and cycle and holds the
differing values. At every checkpoint
the scoreboard also compares the layer's tensor bit for bit, then hands control here so
the golden checks can read the layer; the run goes on when on_checkpoint returns.

Debug options use the "debug" build (FST tracing and the fault-injection sites
compiled in): waves= records a windowed FST, faults= arms injected faults. plusargs=
passes more to the simulator (the simulation top's +loom_tb_csr_slverr, for one).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Listener
from pathlib import Path

import numpy as np

from contract.blob import Listing
from contract.hw import HwConfig
from contract.isa import INSN_BYTES, Fault, Mem, Opcode
from contract.lockstep import AXI_CHANNELS, AXI_RULE_TEXT, AxiRule, Reason
from contract.regions import Dram, OperandError, Sram, resolve
from sim.ref import Retired
from sim.rtl import build as rtl_build
from sim.rtl import faults as fault_catalog
from sim.rtl.waves import Window
from testbench.lockstep import Divergence, format_divergence

# The cocotb test module the simulator runs (the testbench's side of the socket).
TESTBENCH_MODULE = "testbench.serve"

FRONTDOOR_MAX_BYTES = 16 * 1024
# Verilator's run-time switch that turns the RTL's assertions off (they are compiled into
# every build): to prove what the checks outside the core find on their own.
NO_ASSERTIONS = "+verilator+noassert"
START_TIMEOUT_S = 120


class RtlError(RuntimeError):
    """The RTL faulted, hung, or disagreed with the ISA model."""

    def __init__(
        self,
        message: str,
        fault: Fault | None = None,
        index: int | None = None,
        pc: int | None = None,
    ):
        super().__init__(message)
        self.fault = fault
        self.index = index
        self.pc = pc  # the instruction it happened at, when known


class HangError(RtlError):
    """No HALT within the watchdog's cycle budget."""


class ProtocolError(RtlError):
    """The core broke an AXI4 rule on its DRAM port (contract.lockstep.AxiRule)."""


class AssertionFailure(RtlError):
    """An RTL assertion (rtl/loom_assert.svh) failed, or a `unique case` matched no item."""

    def __init__(self, message: str, name: str, module: str, index: int, pc: int):
        super().__init__(message, index=index, pc=pc)
        self.name = name  # the assertion's name, or "unique case"
        self.module = module


def assertion_site(file: str, line: int) -> tuple[str, str, str]:
    """(name, module, location) of the assertion at file:line: the ASSERT macro's first
    argument (or "unique case"), the enclosing module and "rtl/<file>:<line>"."""
    path = Path(file)
    if not path.is_absolute():
        path = next((p for p in (rtl_build.ROOT / file, rtl_build.RTL_DIR / path.name)
                     if p.exists()), path)  # fmt: skip
    lines = path.read_text().splitlines() if path.exists() else []
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    name = "unique case" if re.search(r"\bcase\b", text) else "$stop"
    # Verilator names the last line of a macro call that spans several: look up.
    for back in range(line, max(0, line - 8) if name != "unique case" else line, -1):
        if named := re.search(r"`ASSERT\w*\(\s*(\w+)", lines[back - 1]):
            name, line = named.group(1), back
            break
    module = next(
        (m.group(1) for t in reversed(lines[:line])
         if (m := re.match(r"\s*module\s+(\w+)", t))), "?"
    )  # fmt: skip
    with contextlib.suppress(ValueError):
        path = path.relative_to(rtl_build.ROOT)
    return name, module, f"{path}:{line}"


class DivergenceError(RtlError):
    """The RTL's retire trace first departed from the ISA model's at `divergence`."""

    def __init__(self, divergence: Divergence):
        super().__init__(
            format_divergence(divergence),
            index=divergence.index,
            pc=divergence.insn_number * INSN_BYTES,
        )
        self.divergence = divergence


def cycle_budget(listing: Listing, pc: int, hw: HwConfig, dram_bytes: int) -> tuple[int, int]:
    """(watchdog budget in cycles, instructions until HALT) for the segment at pc: a
    generous upper bound per instruction from its operand regions (contract.regions),
    so only a real hang trips it."""
    line = hw.line_elems
    lat = hw.dram_latency_cycles
    bus = hw.dram_bus_bits // 8
    total, count = 0, 0
    for ln in listing.lines[pc // INSN_BYTES :]:
        if ln.insn is None:
            break
        count += 1
        cost = 2 * lat + 64  # fetch and issue
        try:
            ops = resolve(ln.insn, hw, dram_bytes)
        except OperandError:  # it faults at issue
            ops = None
        if ops is not None:
            sram = [r for r in ops.regions() if isinstance(r, Sram)]
            rows = max((r.rows for r in sram), default=0)
            if ln.unit == "dma":
                # One beat per element at worst (strided columns), the row bursts, and a
                # DRAM latency per row for each DRAM region read or written.
                dram = [r for r in ops.regions() if isinstance(r, Dram)]
                moved = ops.dram_read_bytes + ops.dram_write_bytes
                beats = rows * -(-moved // max(rows, 1) // bus) if rows else 0
                elems = sum(r.rows * r.cols for r in sram)
                cost += elems + beats + 4 * rows + (rows + 2) * lat * len(dram)
            elif ln.unit == "mxu":
                # Per output tile: the reduction streamed through (at most the longest
                # operand row) plus fill and drain.
                (out,) = ops.writes.values()
                depth = max((r.cols for r in sram if r.space == Mem.SPAD), default=0)
                cost += -(-out.rows // line) * -(-out.cols // line) * (depth + 6 * line + 8)
            elif ln.unit == "vpu":
                cost += max((r.rows * (-(-r.cols // line) + 2) for r in sram), default=0)
        total += cost
        if ln.insn.opcode == Opcode.HALT:
            break
    return 2 * total + 100_000, count


class VerilatorBackend:
    name = "verilator"

    def __init__(
        self,
        hw: HwConfig,
        trace: bool = False,
        progress: bool = False,
        defines: dict | None = None,
        workdir: str | Path | None = None,
        waves: str | Path | None = None,
        window: Window | None = None,
        faults: list[str] | tuple[str, ...] = (),
        plusargs: list[str] | tuple[str, ...] = (),
        dram_limit: int | None = None,
    ):
        self.hw = hw
        # DRAM_LIMIT as the host programs it; None: the image's size. A larger one lets
        # accesses past the simulated DRAM reach it, which answers SLVERR, so the core
        # reports BUS_ERROR (the ISA model, whose DRAM ends at the limit, cannot).
        self.dram_limit = dram_limit
        self.progress = progress
        self.trace: list[Retired] | None = [] if trace else None
        self.faults = fault_catalog.check(list(faults))
        self.plusargs = fault_catalog.plusargs(self.faults) + list(plusargs)
        self.waves = Path(waves).resolve() if waves else None
        self.window = window or Window("all")
        debug = self.waves is not None or bool(self.faults)
        defines = dict(defines or {})
        if debug:
            defines[fault_catalog.DEFINE] = 1
        # Code coverage (LOOM_RTL_COVERAGE) counts the product design: not the debug build,
        # whose fault-injection sites would count as code nothing runs.
        coverage = False if debug else None
        self.build = rtl_build.build(hw, waves=debug, defines=defines, coverage=coverage)
        self.listing: Listing | None = None
        self.workdir = Path(workdir or self.build.dir / f"run-{os.getpid()}-{id(self):x}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dram_path = self.workdir / "dram.bin"
        self.layers: dict[int, dict] = {}
        self.layer_paths: dict[int, str] = {}
        self._conn = None
        self._thread: threading.Thread | None = None
        self._sim_error: BaseException | None = None
        self._shared: np.memmap | None = None
        self._stats = {
            "cycles": 0,
            "retired": 0,
            "layer_cycles": {},
            # Layer id -> the cycle (since the run's first segment) its CHECKPOINT retired:
            # what a failing layer's heatmap and a waveform window name.
            "checkpoint_cycles": {},
            "isa_mismatches": [],
            "build_s": round(self.build.seconds, 2),
            "rebuilt": self.build.built,
        }
        self._counters: dict[str, int] = {}
        self._progress_origin: tuple[float, float, int] | None = None

    # ------------------------------------------------------------------ Backend protocol
    def bind(self, program) -> None:
        self.layers = {la["id"]: {"output": la["output"]} for la in program.layers}
        self.layer_paths = {la["id"]: la["path"] for la in program.layers}
        self.listing = program.listing

    def _listing(self, code: bytes) -> Listing:
        """The bound program's listing, or one of raw code run without a program."""
        if self.listing is None or self.listing.code is not code:
            self.listing = Listing(
                code, [{"id": k, "path": p} for k, p in self.layer_paths.items()]
            )
        return self.listing

    def new_dram(self, nbytes: int) -> np.ndarray:
        """The DRAM image: the shared file itself when it is too large for the front door."""
        if nbytes <= FRONTDOOR_MAX_BYTES:
            return np.zeros(nbytes, dtype=np.uint8)
        return self._map(nbytes)

    def _map(self, nbytes: int) -> np.memmap:
        if self._shared is None or self._shared.size != nbytes:
            with open(self.dram_path, "wb") as f:
                f.truncate(nbytes)
            self._shared = np.memmap(self.dram_path, dtype=np.uint8, mode="r+", shape=(nbytes,))
        return self._shared

    # ------------------------------------------------------------------ simulator process
    def _start(self) -> None:
        key = secrets.token_hex(16)
        # A socket path is limited to ~107 bytes (sun_path), which a build directory under
        # a deep checkout can exceed: the socket lives in a short private directory.
        sock_dir = tempfile.mkdtemp(prefix="loom-tb-")
        sock = os.path.join(sock_dir, "tb.sock")
        try:
            self._connect(sock, key)
        finally:  # the simulator connects once: neither the socket nor its directory stay
            shutil.rmtree(sock_dir, ignore_errors=True)
        hello = self._conn.recv()
        if hello.get("event") == "error":  # reset or the register map check failed
            self.close()
            raise RtlError(f"testbench: {hello['message']}")
        assert hello.get("event") == "ready", hello

    def _connect(self, sock: str, key: str) -> None:
        """Start the simulator and accept its connection on socket path sock."""
        listener = Listener(sock, family="AF_UNIX", authkey=key.encode())
        env = {
            "LOOM_TB_SOCKET": sock,
            "LOOM_TB_KEY": key,
            "LOOM_HW": json.dumps(self.hw.to_dict()),
            # Only our test module gets cocotb's assertion rewriting (import cost).
            "COCOTB_REWRITE_ASSERTION_FILES": "serve.py",
        }
        if self.waves is not None:
            self.waves.parent.mkdir(parents=True, exist_ok=True)
            if self.waves.exists():
                self.waves.unlink()
            env["LOOM_WAVES_FILE"] = str(self.waves)
        self._thread = threading.Thread(target=self._simulate, args=(env,), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        raw = listener._listener._socket  # poll, so a simulator that dies is noticed
        while True:
            ready, _, _ = select.select([raw], [], [], 0.5)
            if ready:
                break
            if not self._thread.is_alive() or time.monotonic() > deadline:
                listener.close()
                raise RtlError(
                    f"the simulator did not start ({self._sim_error or 'timeout'});"
                    f" see {self.workdir}/sim.log"
                )
        self._conn = listener.accept()
        listener.close()

    def _simulate(self, env: dict) -> None:
        from cocotb_tools.runner import get_runner

        rtl_build.apply_toolchain_env()
        try:
            runner = get_runner("verilator")
            log = self.workdir / "sim.log"
            runner.test(
                test_module=TESTBENCH_MODULE,
                hdl_toplevel=self.build.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=self.build.dir,
                test_dir=self.workdir,
                extra_env=env,
                plusargs=self.plusargs,
                results_xml=str(self.workdir / "results.xml"),
                log_file=log,
            )
        except BaseException as e:  # reported by _start / run_segment
            self._sim_error = e

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send({"cmd": "quit"})
            self._conn.close()
            self._conn = None
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------ running
    def _recv(self):
        while not self._conn.poll(1.0):
            if self._thread is None or not self._thread.is_alive():
                raise RtlError(
                    f"the simulator exited unexpectedly; see {self.workdir}/sim.log"
                    f" ({self._sim_error})"
                )
        return self._conn.recv()

    def run_segment(
        self, dram: np.ndarray, code: bytes, pc: int, on_checkpoint: Callable[[int], None]
    ) -> None:
        if self._conn is None:
            self._start()
        shared = dram if isinstance(dram, np.memmap) else self._map(dram.size)
        image = None
        if shared is not dram:
            if dram.size <= FRONTDOOR_MAX_BYTES:
                image = dram.tobytes()
            else:
                shared[:] = dram
        listing = self._listing(code)
        budget, n_insns = cycle_budget(listing, pc, self.hw, dram.size)
        self._conn.send(
            {
                "cmd": "run",
                "dram_path": str(self.dram_path),
                "dram_bytes": self.dram_limit or dram.size,
                "pc": pc,
                "code_end": len(code),
                "layers": self.layers,
                "budget_cycles": budget,
                "image": image,
                "wave_window": self.window.checker_args() if self.waves else (0, 0, 0),
            }
        )
        t0 = time.perf_counter()
        base_cycles = self._stats["cycles"]
        prev_cycle = 0
        while True:
            msg = self._recv()
            if msg["event"] == "checkpoint":
                layer, cycle = msg["layer"], msg["cycle"]
                self._stats["layer_cycles"][layer] = cycle - prev_cycle
                self._stats["checkpoint_cycles"][layer] = base_cycles + cycle
                prev_cycle = cycle
                ref = msg["ref"]
                if not ref.get("match"):
                    self._stats["isa_mismatches"].append(
                        {"layer": layer, "path": self.layer_paths.get(layer), **ref}
                    )
                if shared is not dram:
                    dram[:] = shared
                if self.progress:
                    self._print_progress(layer, ref, cycle, ref["retired"], n_insns, t0)
                try:
                    on_checkpoint(layer)
                finally:
                    self._conn.send({"cmd": "continue"})
                continue
            if msg["event"] == "error":  # the testbench stopped; a next segment starts afresh
                self.close()
                raise RtlError(f"testbench: {msg['message']}")
            break
        if shared is not dram:
            dram[:] = shared
        self._stats["cycles"] = base_cycles + msg["cycles"]
        self._stats["retired"] += msg["retired"]
        for k, v in msg["counters"].items():
            self._counters[k] = self._counters.get(k, 0) + v
        self._record_trace(msg["trace"], listing)
        if msg["status"] == "timeout" or msg.get("divergence") is not None:
            # The core is still busy with the hung or diverged segment: start afresh.
            self.close()
        self._finish(msg, listing, pc)

    def _record_trace(self, records: np.ndarray, listing: Listing) -> None:
        if self.trace is None:
            return
        for pc, cycle, _digest, issued in records.tolist():
            insn = listing.at(pc).insn
            op, args = (insn.opcode.name, dict(insn.args)) if insn else ("ILLEGAL", {})
            self.trace.append(Retired(len(self.trace), pc, op, args, cycle, issued))

    @staticmethod
    def _where(listing: Listing, index: int, pc: int) -> str:
        return f"instruction {index} (pc {pc:#x}): {listing.at(pc).text}"

    def _layer_after(self, last_layer: int, seen_any: bool) -> str:
        ids = sorted(self.layer_paths)
        nxt = [i for i in ids if i > last_layer] if seen_any else ids
        return self.layer_paths[nxt[0]] if nxt else "(after the last checkpoint)"

    def _finish(self, msg: dict, listing: Listing, start_pc: int) -> None:
        status = msg["status"]
        if msg.get("assertion") is not None:
            self.close()  # the core is mid-instruction: start afresh next time
            raise self._assertion_failure(msg["assertion"], listing, start_pc)
        if msg.get("axi") is not None:
            self.close()  # the port may be left mid-transfer: start afresh next time
            raise ProtocolError(self._axi_report(msg["axi"], listing, start_pc))
        if msg.get("divergence") is not None:
            d: Divergence = msg["divergence"]
            d.layer = listing.layer_of(d.expected_pc if d.reason == Reason.PC else d.pc)
            err = DivergenceError(d)
            err.trace = self.trace  # the retirements up to the divergence (trace=True)
            raise err
        if not msg["final"]["match"]:  # whole DRAM and SRAM, also after a matching fault
            self._stats["isa_mismatches"].append({"layer": None, **msg["final"]})
        seen = bool(self._stats["layer_cycles"])
        layer = self._layer_after(msg["last_layer"], seen) if self.layer_paths else "-"
        if status == "fault":
            fault = Fault(msg["fault"]) if msg["fault"] in Fault._value2member_map_ else None
            index = msg["retired"]
            where = self._where(listing, index, msg["fault_pc"])
            ref = msg["ref_fault"]
            agree = (
                "the ISA model reports the same fault"
                if ref == msg["fault"]
                else f"the ISA model reports {msg['ref_fault_msg'] or 'no fault'}"
            )
            raise RtlError(
                f"RTL fault {fault.name if fault else msg['fault']} at {where};"
                f" layer {layer}; cycle {msg['cycles']}; {agree}",
                fault,
                index,
                msg["fault_pc"],
            )
        if status == "timeout":
            where = self._where(listing, msg["current_index"], msg["current_pc"])
            raise HangError(
                f"simulation hang: no HALT within the watchdog budget ({msg['cycles']} cycles);"
                f" {msg['retired']} instructions retired, stuck at {where}; layer {layer}",
                index=msg["current_index"],
                pc=msg["current_pc"],
            )
        if msg["ref_fault"] is not None:
            raise RtlError(f"the RTL finished but the ISA model faulted: {msg['ref_fault_msg']}")

    def _assertion_failure(self, a: dict, listing: Listing, start_pc: int) -> AssertionFailure:
        name, module, where_src = assertion_site(a["file"], a["line"])
        index = a["retired"]  # the instruction in flight (the ISA has no branches)
        pc = start_pc + index * INSN_BYTES
        what = (
            "a unique case matched no item" if name == "unique case" else f"assertion {name} failed"
        )
        more = f" ({a['failures'] - 1} more failures after it)" if a["failures"] > 1 else ""
        return AssertionFailure(
            f"RTL {what} in {module} ({where_src}) at cycle {a['cycle']}, during"
            f" {self._where(listing, index, pc)}; layer {listing.layer_of(pc) or '-'}{more}",
            name,
            module,
            index,
            pc,
        )

    def _axi_report(self, v: dict, listing: Listing, start_pc: int) -> str:
        rule = AxiRule(v["rule"])
        channel = AXI_CHANNELS[v["channel"]]
        if rule == AxiRule.UNANSWERED:
            what = f"{v['addr']} read and {v['len']} write bursts unanswered"
        elif channel == "W":
            what = f"W beat (burst beats left {v['len']})"
        else:
            what = f"{channel} addr {v['addr']:#x} len {v['len']} ({v['len'] + 1} beats)"
        index = v["retired"]  # the instruction in flight (the ISA has no branches)
        where = self._where(listing, index, start_pc + index * INSN_BYTES)
        return (
            f"AXI4 rule broken on the DRAM port: {AXI_RULE_TEXT[rule]}: {what}, DRAM cycle"
            f" {v['cycle']}, during {where}"
        )

    def _print_progress(self, layer, ref, cycle, retired, n_insns, t0) -> None:
        now = time.perf_counter()
        elapsed = now - t0
        # Rate measured from the first checkpoint of the segment on: the time before it
        # includes the ISA model's run that sets up the lockstep checker.
        if self._progress_origin is None or self._progress_origin[0] != t0:
            self._progress_origin = (t0, now, retired)
        _, t_first, r_first = self._progress_origin
        done = retired - r_first
        left = "?"
        if done > 0 and retired >= 0.02 * n_insns:
            left = f"{(now - t_first) / done * max(0, n_insns - retired):6.1f}"
        status = "bit-exact" if ref.get("match") else "MISMATCH"
        path = self.layer_paths.get(layer, str(layer))
        print(
            f"  [{retired:>6}/{n_insns}] {path:<34} {status:<9} cycle {cycle:>11,}"
            f"  elapsed {elapsed:7.1f} s  left ~{left:>6} s",
            file=sys.stderr,
            flush=True,
        )

    @property
    def stats(self) -> dict:
        out = dict(self._stats)
        out.update(self._counters)
        return out
