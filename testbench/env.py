"""The pyuvm environment of the Loom core: host agent, memory agent, scoreboard."""

from __future__ import annotations

from pyuvm import uvm_env

from testbench.agents import HostAgent, MemoryAgent
from testbench.scoreboard import Scoreboard


class LoomEnv(uvm_env):
    """The scoreboard listens to the host agent's driver (segments, registers read at
    the end) and monitor (checkpoints, end of run); its verdicts leave on `ap`."""

    def build_phase(self):
        self.host = HostAgent("host", self)
        self.memory = MemoryAgent("memory", self)
        self.scoreboard = Scoreboard("scoreboard", self)

    def connect_phase(self):
        self.host.driver.ap.connect(self.scoreboard.analysis_export)
        self.host.monitor.ap.connect(self.scoreboard.analysis_export)
        self.ap = self.scoreboard.ap
