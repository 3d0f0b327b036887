"""Faults that can be injected into the RTL, for proving the debug harness works.

Each one is a few lines in one unit of the core, compiled in only with
+define+LOOM_FAULT_INJECT (the "debug" build, which also carries waveform tracing) and
armed at run time by the plusarg +loom_fault_<name>, so one build serves every fault.
A product build never contains them. `make sim MODEL=... FAULT=<name>` runs with one.
"""

from __future__ import annotations

# name -> (unit, what the RTL does wrong)
FAULTS: dict[str, tuple[str, str]] = {
    "vpu_add_round": ("vector unit", "VBIN ADD truncates the last mantissa bit of its result"),
    "dma_stride": ("DMA", "loads and stores step DRAM rows by one element too many"),
    "mxu_acc_flip": ("matrix unit", "MATMUL's accumulate enable is inverted"),
    "ctrl_pc_skip": ("control", "the pc skips the instruction after every MOVE"),
    "ctrl_no_hazard": (
        "control",
        "issue ignores SRAM dependencies (RAW, WAR, WAW) on the instructions in flight",
    ),
    "footprint_short": (
        "control",
        "an instruction's SRAM write footprint covers only the first line of its region",
    ),
    "dma_burst_4k": ("DMA", "row bursts are not split at 4 KiB boundaries"),
    "vpu_mask_spill": (
        "vector unit",
        "a partial line's ACC write also writes the lane after the last column",
    ),
}

DEFINE = "LOOM_FAULT_INJECT"


def check(names: list[str] | tuple[str, ...]) -> list[str]:
    for n in names:
        if n not in FAULTS:
            raise ValueError(f"unknown fault {n!r}; known: {', '.join(sorted(FAULTS))}")
    return list(names)


def plusargs(names: list[str] | tuple[str, ...]) -> list[str]:
    return [f"+loom_fault_{n}" for n in check(names)]
