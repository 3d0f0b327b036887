"""The cocotb test the parent process drives: it serves "run this segment" requests
over a local socket (sim.rtl.backend.VerilatorBackend is the client side).

Per request: map the DRAM file, load the image (front door for small images), let the
scoreboard run the ISA model on a copy and arm the lockstep checker, set the waveform
window, start the core, then sleep until events. At each checkpoint the scoreboard
compares the layer's tensor bit for bit and the parent gets control (its golden checks
read the same shared DRAM) before the core goes on. The first divergence from the ISA
model ends the segment with its explanation.
"""

from __future__ import annotations

import json
import os
from multiprocessing.connection import Client

import cocotb
import numpy as np
import pyuvm
from pyuvm import ConfigDB, uvm_test

from contract.hw import HwConfig
from testbench.bfm import LoomBfm
from testbench.env import CheckpointTxn, LoomEnv


@pyuvm.test()
class LoomServe(uvm_test):
    def build_phase(self):
        self.bfm = LoomBfm(cocotb.top)
        ConfigDB().set(None, "*", "bfm", self.bfm)
        self.env = LoomEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        await self.bfm.reset()
        hw = HwConfig.from_dict(json.loads(os.environ["LOOM_HW"]))
        conn = Client(os.environ["LOOM_TB_SOCKET"], authkey=os.environ["LOOM_TB_KEY"].encode())
        conn.send({"event": "ready"})
        while True:
            msg = conn.recv()
            if msg["cmd"] == "quit":
                break
            conn.send(await self.run_segment(hw, msg, conn))
        conn.close()
        self.drop_objection()

    async def run_segment(self, hw: HwConfig, msg: dict, conn) -> dict:
        env = self.env
        env.memory.map(msg["dram_path"])
        dram = np.memmap(msg["dram_path"], dtype=np.uint8, mode="r+")
        if msg.get("image") is not None:
            await env.memory.load_frontdoor(msg["image"])
        code_end = msg["code_end"]
        env.scoreboard.expect(hw, dram, bytes(dram[:code_end]), msg["pc"], msg["layers"])
        self.bfm.wave_window(*msg.get("wave_window", (0, 0, 0)))
        await env.host.start(msg["pc"], code_end, dram.size)
        budget = msg["budget_cycles"]
        cycle = 0
        while True:
            kind, layer = await env.monitor.next_event(budget - cycle)
            if kind == "checkpoint":
                cycle = await env.host.cycles()
                retired = await self.bfm.csr_read("RETIRED")
                env.monitor.ap.write(CheckpointTxn(layer, cycle, retired))
                row = env.scoreboard.results[-1]
                conn.send({"event": "checkpoint", "layer": layer, "cycle": cycle, "ref": row})
                conn.recv()  # the parent has read what it needs
                continue
            status = {"irq": "done", "diverge": "diverge"}.get(kind, "timeout")
            break
        outcome = await env.host.outcome(status)
        index, pc = self.bfm.last_retired()
        sb = env.scoreboard
        divergence = sb.divergence()
        if divergence is not None:
            outcome.status = "diverge"
        dram.flush()
        return {
            "divergence": divergence,
            "trace": sb.retire_trace().copy(),
            "event": "end",
            "status": outcome.status,
            "cycles": outcome.cycles,
            "counters": outcome.counters,
            "fault": outcome.fault,
            "fault_pc": outcome.fault_pc,
            "retired": outcome.retired,
            "last_layer": outcome.last_layer,
            "current_index": index,
            "current_pc": pc,
            "ref_fault": None if sb.ref_fault is None else int(sb.ref_fault.fault),
            "ref_fault_msg": None if sb.ref_fault is None else str(sb.ref_fault),
            "final": sb.final(dram) if outcome.status == "done" else {"match": True},
        }
