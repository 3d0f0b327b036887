"""The options of `python -m sim` / `make sim`, parsed and checked before any work: a bad
combination is refused in a second, not after compiling the model and capturing its
golden values."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from contract.hw import load_hw
from sim.cli.models import MODEL_HW, MODELS
from sim.rtl.faults import FAULTS
from sim.rtl.waves import parse_span
from sim.runtime import backend_names

RTL_BACKEND = "verilator"


class OptionError(ValueError):
    """Options that cannot work together (or at all)."""


@dataclass(frozen=True)
class Options:
    model: str
    backend: str
    device: str
    batch: int
    layers: int | None
    tokens: int
    seed: int
    weights: str | None
    hw: str | None
    out: Path
    save: bool
    waves: bool
    wave_layer: str | None
    wave_cycles: str | None
    wave_insns: str | None
    trace: bool
    fault: str | None

    def rerun_command(self, window: str) -> str:
        """The one-line command that reruns this program and seed on the RTL with waves
        on a window (`INSN=i:j`, `LAYER=path`, `CYCLES=a:b`)."""
        parts = [f"make sim MODEL={self.model}", f"SEED={self.seed}", f"TOKENS={self.tokens}"]
        if self.layers is not None:
            parts.append(f"LAYERS={self.layers}")
        if self.weights:
            parts.append(f"WEIGHTS={self.weights}")
        if self.hw:
            parts.append(f"HW={self.hw}")
        if self.fault:
            parts.append(f"FAULT={self.fault}")
        if self.batch != 1:
            parts.append(f"BATCH={self.batch}")
        parts += [f"BACKEND={self.backend}", "WAVES=1", window]
        return " ".join(parts)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m sim",
        description="Compile a model, run it on a backend, check every layer, write reports.",
    )
    ap.add_argument(
        "model",
        help=f"registered name ({', '.join(MODELS)}; *-tiny are the small test configs, llama,"
        " gpt-neox, bert, vit real sizes: TinyLlama-1.1B, Pythia-160M, bert-base, ViT-B/16)"
        " or module:function returning (model, inputs[, kwargs])",
    )
    ap.add_argument(
        "--backend", default=RTL_BACKEND, help="verilator (RTL), ref (ISA model), torch"
    )
    ap.add_argument("--device", default=None, help="torch backend: cpu (default) or cuda")
    ap.add_argument("--batch", type=int, default=1, help="batch size (GPT-2, mlp)")
    ap.add_argument("--layers", type=int, default=None, help="transformer blocks to keep")
    ap.add_argument("--tokens", type=int, default=8, help="sequence length")
    ap.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    ap.add_argument("--weights", default=None, help="local checkpoint (HF dir or state_dict)")
    ap.add_argument("--hw", default=None, help="configs/hw name or YAML path")
    ap.add_argument("--out", default=None, help="report directory (build/<model>)")
    ap.add_argument("--save", action="store_true", help="also write program.loom")
    dbg = ap.add_argument_group("debugging (verilator backend)")
    dbg.add_argument("--waves", action="store_true", help="write <out>/waves.fst + views")
    dbg.add_argument("--wave-layer", default=None, help="trace only this layer (path prefix)")
    dbg.add_argument("--wave-cycles", default=None, help="trace only cycles a:b")
    dbg.add_argument("--wave-insns", default=None, help="trace only instructions i:j")
    dbg.add_argument("--trace", action="store_true", help="write <out>/trace.log")
    dbg.add_argument("--fault", default=None, help=f"inject a fault ({', '.join(FAULTS)})")
    return ap


def parse(argv: list[str] | None = None) -> Options:
    """Parse and check; OptionError names the first problem."""
    a = parser().parse_args(argv)
    if a.backend not in backend_names():
        raise OptionError(f"unknown backend {a.backend!r}; available: {backend_names()}")
    rtl_only = [
        name
        for name, given in (
            ("WAVES", a.waves),
            ("FAULT", a.fault),
            ("LAYER", a.wave_layer),
            ("CYCLES", a.wave_cycles),
            ("INSN", a.wave_insns),
        )
        if given
    ]
    if rtl_only and a.backend != RTL_BACKEND:
        raise OptionError(f"{', '.join(rtl_only)} need the RTL (BACKEND={RTL_BACKEND})")
    windows = [x for x in (a.wave_layer, a.wave_cycles, a.wave_insns) if x]
    if len(windows) > 1:
        raise OptionError("give at most one of LAYER, CYCLES and INSN for a waveform window")
    if windows and not a.waves:
        raise OptionError("LAYER, CYCLES and INSN choose a waveform window: add WAVES=1")
    try:
        if a.wave_cycles:
            parse_span(a.wave_cycles, "CYCLES")
        if a.wave_insns:
            parse_span(a.wave_insns, "INSN")
    except ValueError as e:
        raise OptionError(str(e)) from None
    if a.fault and a.fault not in FAULTS:
        raise OptionError(f"unknown fault {a.fault!r}; known: {', '.join(sorted(FAULTS))}")
    if a.device is not None and a.backend != "torch":
        raise OptionError("DEVICE chooses the torch backend's device: add BACKEND=torch")
    if a.device not in (None, "cpu", "cuda"):
        raise OptionError(f"DEVICE must be cpu or cuda, not {a.device!r}")
    for name, value, low in (
        ("BATCH", a.batch, 1),
        ("TOKENS", a.tokens, 1),
        ("LAYERS", a.layers, 1),
    ):
        if value is not None and value < low:
            raise OptionError(f"{name} must be >= {low}, got {value}")
    if a.model not in MODELS and ":" not in a.model:
        raise OptionError(
            f"unknown model {a.model!r}: use one of {sorted(MODELS)} or package.module:function"
        )
    if a.weights and not Path(a.weights).exists():
        raise OptionError(f"WEIGHTS {a.weights!r} does not exist")
    if a.hw is None:
        a.hw = MODEL_HW.get(a.model)  # a model too big for the default core's DRAM
    try:
        load_hw(a.hw)
    except (FileNotFoundError, ValueError) as e:
        raise OptionError(f"HW {a.hw!r}: {e}") from None
    out = Path(a.out or f"build/{a.model.replace(':', '_')}")
    return Options(
        a.model,
        a.backend,
        a.device or "cpu",
        a.batch,
        a.layers,
        a.tokens,
        a.seed,
        a.weights,
        a.hw,
        out,
        a.save,
        a.waves,
        a.wave_layer,
        a.wave_cycles,
        a.wave_insns,
        a.trace,
        a.fault,
    )
