"""Hardware configuration of the Loom core: the one source of truth.

The compiler (tiling, alignment), the ISA model (capacities, bounds checks), the
generated SystemVerilog package, the simulated DRAM and docs/isa.md all read this
dataclass. A program
blob records the hash of the configuration it was compiled for and refuses to run
on another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from contract.isa import INSN_BYTES

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "hw"
# A config's name names files and directories (the RTL build's, sim/rtl/build.py) and is
# printed: letters, digits, '.', '_', '-', at most 64 characters.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class HwConfig:
    name: str = "loom-16x16"
    # Systolic array is array_dim x array_dim PEs; SRAM lines are array_dim elements wide.
    array_dim: int = 16
    # Scratchpad: bf16 matrix operands.
    spad_kib: int = 512
    # Accumulator: fp32 matrix results and the vector unit's operands.
    acc_kib: int = 256
    dram_bus_bits: int = 256
    dram_mib: int = 1024
    clock_mhz: float = 1000.0
    # DRAM timing model shared by the cycle estimate and the simulated DRAM.
    dram_latency_cycles: int = 100
    dram_bytes_per_cycle: int = 32

    def __post_init__(self) -> None:
        if type(self.name) is not str or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name must be 1 to 64 of [A-Za-z0-9._-], got {self.name!r}"[:200])
        if self.array_dim < 2 or self.array_dim & (self.array_dim - 1):
            raise ValueError(f"array_dim must be a power of two >= 2, got {self.array_dim}")
        if self.dram_bus_bits % 32 or self.dram_bus_bits < 64:
            raise ValueError(f"dram_bus_bits must be a multiple of 32 >= 64: {self.dram_bus_bits}")
        for field in ("spad_kib", "acc_kib", "dram_mib"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field} must be positive")
        if self.dram_mib > 4096:
            raise ValueError("DRAM addresses are 32 bits: dram_mib must be <= 4096")

    # Derived sizes (elements are bf16 in the scratchpad, fp32 in the accumulator).
    @property
    def line_elems(self) -> int:
        return self.array_dim

    @property
    def spad_elems(self) -> int:
        return self.spad_kib * 1024 // 2

    @property
    def acc_elems(self) -> int:
        return self.acc_kib * 1024 // 4

    @property
    def dram_bytes(self) -> int:
        return self.dram_mib * 1024 * 1024

    @property
    def fetch_block_insns(self) -> int:
        """Instructions the control unit fetches per DRAM request into its fetch buffer:
        as many as one 16-beat burst holds, at most 8 (docs/rtl.md, "Issue")."""
        return max(1, min(8, 16 * (self.dram_bus_bits // 8) // INSN_BYTES))

    @property
    def dma_bursts_in_flight(self) -> int:
        """Bursts the DMA engine keeps in flight (its descriptor queue, DmaBursts in the
        generated package): enough 4-beat bursts (128-byte rows on the default bus) to
        cover the DRAM latency at the configured read rate, a power of two from 8 to 32
        (docs/rtl.md, "DMA"). 32 on the default core: a weight tile's 224-320-byte rows
        (7-10 beats) then keep the bus busy; with 8 they reached 50-70% of it."""
        beat_cycles = -(-(self.dram_bus_bits // 8) // self.dram_bytes_per_cycle)
        beats = -(-(self.dram_latency_cycles + 8) // beat_cycles)
        need = -(-beats // 4)
        return min(32, max(8, 1 << (need - 1).bit_length()))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """Stable SHA-256 of every field; stored in program blobs."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, values: dict) -> HwConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown hardware config fields: {sorted(unknown)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> HwConfig:
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f) or {})


DEFAULT_HW = HwConfig()

# The simulated clock period in simulation time (the testbench's clock, the waveforms'
# time axis). It is a unit of the simulation, not the chip's clock (clock_mhz).
SIM_CLOCK_PERIOD_NS = 10


def load_hw(spec: str | Path | HwConfig | None = None) -> HwConfig:
    """A config from None (default), a HwConfig, a name under configs/hw/ or a YAML path."""
    if spec is None:
        return DEFAULT_HW
    if isinstance(spec, HwConfig):
        return spec
    path = Path(spec)
    if not path.suffix:
        path = CONFIG_DIR / f"{spec}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no hardware config {spec!r} (looked for {path})")
    return HwConfig.from_yaml(path)
