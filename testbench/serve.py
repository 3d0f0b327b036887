"""The cocotb test the parent process drives: it serves "run this segment" requests
over a local socket (sim.rtl.backend.VerilatorBackend is the client side).

The test only starts sequences: a reset, then one SegmentSequence per request. The
verdicts reach the parent through ParentLink, a subscriber of the scoreboard: at each
checkpoint the parent gets the layer's comparison and, with the simulation frozen at
that edge (the link blocks in the socket), reads the same shared DRAM for its golden
checks before the core goes on; at the end of the segment it gets one "end" reply.
"""

from __future__ import annotations

import json
import os
from multiprocessing.connection import Client

import cocotb
import pyuvm
from pyuvm import ConfigDB, uvm_subscriber, uvm_test

from contract.hw import HwConfig
from testbench.bfm import LoomBfm
from testbench.env import LoomEnv
from testbench.sequences import ResetSequence, SegmentSequence, TestbenchError
from testbench.transactions import CheckpointVerdict, SegmentVerdict


class ParentLink(uvm_subscriber):
    """The socket to the parent process: requests in, verdicts out."""

    def build_phase(self):
        key = os.environ["LOOM_TB_KEY"].encode()
        self.conn = Client(os.environ["LOOM_TB_SOCKET"], authkey=key)

    def ready(self) -> None:
        self.conn.send({"event": "ready"})

    def next_request(self) -> dict | None:
        """The next "run" request; None when the parent is done."""
        msg = self.conn.recv()
        return None if msg["cmd"] == "quit" else msg

    def write(self, verdict) -> None:
        match verdict:
            case CheckpointVerdict():
                self.conn.send(
                    {
                        "event": "checkpoint",
                        "layer": verdict.layer,
                        "cycle": verdict.cycle,
                        "ref": verdict.row,
                    }
                )
                self.conn.recv()  # "continue": the parent has read what it needs
            case SegmentVerdict():
                self.conn.send(_end_reply(verdict))

    def fail(self, message: str) -> None:
        self.conn.send({"event": "error", "message": message})

    def close(self) -> None:
        self.conn.close()


def _end_reply(v: SegmentVerdict) -> dict:
    o = v.outcome
    return {
        "event": "end",
        "status": v.status,
        "divergence": v.divergence,
        "trace": v.trace,
        "cycles": o.cycles,
        "counters": o.counters,
        "fault": o.fault,
        "fault_pc": o.fault_pc,
        "retired": o.retired,
        "last_layer": o.last_layer,
        "current_index": v.end.current_index,
        "current_pc": v.end.current_pc,
        "ref_fault": v.ref_fault,
        "ref_fault_msg": v.ref_fault_msg,
        "final": v.final,
        "axi": v.axi,
        "assertion": v.assertion,
    }


@pyuvm.test()
class LoomServe(uvm_test):
    def build_phase(self):
        ConfigDB().set(None, "*", "bfm", LoomBfm(cocotb.top))
        ConfigDB().set(None, "*", "hw", HwConfig.from_dict(json.loads(os.environ["LOOM_HW"])))
        self.env = LoomEnv("env", self)
        self.link = ParentLink("link", self)

    def connect_phase(self):
        self.env.ap.connect(self.link.analysis_export)

    async def run_phase(self):
        self.raise_objection()
        env = self.env
        try:  # reset, then the register map check (testbench.bfm.check_register_map)
            await ResetSequence().start(env.host.sequencer)
        except TestbenchError as e:
            self.link.fail(str(e))  # instead of "ready": this simulator cannot serve
            self.link.close()
            self.drop_objection()
            return
        self.link.ready()
        while (request := self.link.next_request()) is not None:
            try:
                await SegmentSequence(request, env.memory.sequencer, env.host.sequencer).start()
            except TestbenchError as e:
                self.link.fail(str(e))  # the parent raises it; this simulator is done
                break
        self.link.close()
        self.drop_objection()
