"""`make models` / `python -m sim.cli.coverage`: the model coverage table, docs/models.md.

Every registered model (sim/cli/models.py) goes through compiler.compile and the ISA
model (checked layer by layer against PyTorch), the small ones also through the RTL, and
its outputs are compared with the eager model's. docs/models.md gets one table row per
model and, per model, every ATen op with its count and where it runs.

The file holds two kinds of figures. Compile-derived ones (the ATen ops and their
status, the ops left on the CPU, device segments, transfers, compile notes) follow from
the compiler alone and are deterministic: tests/test_models_table.py regenerates them
for the small models and fails when the file disagrees. Measured ones (times, RTL
cycles, accuracy, pass/fail) depend on the machine or on the run and are not compared.
Each model's compile-derived part sits between marker comments that also name the
options it was compiled with, so it can be found, parsed and recompiled one model at a
time.

`run_model` is the whole work for one model and returns plain data (a future parallel
runner can hand it to worker processes); `main` runs the models one after another.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import re
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"
STALE = "docs/models.md is stale: run `make models`"
EM_DASH = "—"
# Models beyond the -tiny ones that are as cheap: the default RTL set and what the
# staleness test recompiles.
SMALL_EXTRA = ("mlp", "llama-odd", "gpt2-stdlib")
EAGER_RUNS = 5
# The eager model is timed on one thread: on a shared machine with few cores, torch's
# thread pool waits on busy cores and a tiny model's time swings a hundredfold.
EAGER_THREADS = 1
REASON_CHARS = 160

# Table columns; the compile-derived ones are compared by the staleness check.
COLUMNS = (
    "model",
    "status",
    "ATen ops",
    "CPU ops",
    "device segments",
    "transfers",
    "eager ms *",
    "ISA model s *",
    "RTL cycles",
    "cosine",
    "rel L2",
    "top-1",
    "layers passed",
)
COMPILED_COLUMNS = ("ATen ops", "CPU ops", "device segments", "transfers")
OP_STATUS_ORDER = ("device", "view", "cpu")


def is_small(name: str) -> bool:
    return name.endswith("-tiny") or name in SMALL_EXTRA


def small_models() -> list[str]:
    from sim.cli.models import MODELS

    return [name for name in MODELS if is_small(name)]


@dataclass(frozen=True)
class ModelOptions:
    """What a model is built and compiled with; written into its marker comment."""

    layers: int | None = None
    tokens: int = 8
    seed: int = 0
    hw: str | None = None

    def label(self) -> str:
        return (
            f"layers={self.layers if self.layers is not None else 'all'}"
            f" tokens={self.tokens} seed={self.seed} hw={self.hw or 'default'}"
        )

    @classmethod
    def from_label(cls, label: str) -> ModelOptions:
        fields = dict(item.split("=", 1) for item in label.split())
        return cls(
            layers=None if fields["layers"] == "all" else int(fields["layers"]),
            tokens=int(fields["tokens"]),
            seed=int(fields["seed"]),
            hw=None if fields["hw"] == "default" else fields["hw"],
        )


# --- the work for one model ---------------------------------------------------------


def _short(text: str) -> str:
    """text cut to fit a table cell."""
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def _reason(e: BaseException) -> str:
    """An exception in one short line."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return _short(f"{type(e).__name__}: {first}" if first else type(e).__name__)


def compile_model(name: str, options: ModelOptions):
    """(model spec, program) for a registered name or package.module:function."""
    import compiler
    from sim.cli.models import build

    spec = build(name, layers=options.layers, tokens=options.tokens, seed=options.seed)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs, hw=options.hw)
    return spec, program


def transfers(meta: dict) -> dict[str, int]:
    """Tensor transfers between the host and the device's DRAM in one run, as the runtime
    makes them: each tensor input written before the first segment, each output read
    after the last, and for every host op each tensor input read from DRAM and each
    output written back (whatever produced or consumes it). Checkpoint reads (checking
    only) are not transfers."""
    host_ops = meta["host_ops"]
    return {
        "model inputs": sum("addr" in b for b in meta["inputs"]),
        "model outputs": sum(b is not None for b in meta["outputs"]),
        "host-op reads": sum("addr" in b for h in host_ops for b in h["inputs"]),
        "host-op writes": sum("addr" in b for h in host_ops for b in h["outputs"]),
    }


def compiled_facts(program) -> dict:
    """The deterministic, compile-derived figures of a program (what the doc's marked
    part shows)."""
    report = program.meta["report"]
    return {
        "ops": report["ops"],
        "aten_ops": sum(op.startswith("aten.") for op in report["ops"]),
        "cpu_ops": list(report["cpu_fallback"]),
        "device_segments": sum(s["kind"] == "device" for s in program.meta["segments"]),
        "host_ops": len(program.meta["host_ops"]),
        "transfers": transfers(program.meta),
        "notes": list(report.get("notes", [])),
    }


def compile_facts(name: str, options: ModelOptions) -> dict:
    """compiled_facts of a model, or {"error": reason} when it does not compile."""
    try:
        _, program = compile_model(name, options)
    except Exception as e:
        return {"error": _reason(e)}
    return compiled_facts(program)


def eager_reference(spec, runs: int) -> tuple[list, float]:
    """The eager model's outputs and its median time (s) over `runs` runs on
    EAGER_THREADS threads, called with the front end's changes (prefill switches off,
    extra outputs dropped) so that both sides return the same outputs."""
    import torch

    from compiler.frontend import prefill_kwargs, prefill_outputs
    from golden import eager_outputs

    kwargs, _ = prefill_kwargs(spec.model, spec.kwargs)
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(EAGER_THREADS)
    try:
        with prefill_outputs(spec.model, []) as model:
            eager_outputs(model, spec.inputs, kwargs)  # warm-up: first calls allocate
            for _ in range(max(1, runs)):
                t0 = time.perf_counter()
                outputs = eager_outputs(model, spec.inputs, kwargs)
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return outputs, statistics.median(times)


def is_causal_lm(model, first_output) -> bool:
    """A language model whose first output is next-token logits: it has an output
    embedding (an LM head) and the output's last dimension is its vocabulary."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    return head is not None and vocab is not None and first_output.shape[-1] == vocab


def accuracy(spec, expected: list, actual: list) -> dict:
    """The program's outputs against the eager model's: worst cosine and relative L2
    error over the outputs, and for a causal LM the positions whose top-1 token agrees."""
    from golden import check_outputs

    rows = check_outputs(expected, actual)
    out: dict = {"outputs_pass": all(r["status"] == "pass" for r in rows)}
    metrics = [r["metrics"] for r in rows if "metrics" in r]
    if len(metrics) != len(rows) or any("error" in m for m in metrics):
        problem = next((r.get("reason") for r in rows if "reason" in r), None)
        out["problem"] = problem or next(m["error"] for m in metrics if "error" in m)
        return out
    out["cosine"] = min(m["cosine"] for m in metrics)
    out["rel_l2"] = max(m["rel_l2"] for m in metrics)
    out["failing_outputs"] = [r["output"] for r in rows if r["status"] != "pass"]
    got = [t for t in actual if t is not None]
    if expected and is_causal_lm(spec.model, expected[0]):
        agree = expected[0].argmax(-1) == got[0].argmax(-1)
        out["top1"] = [int(agree.sum()), agree.numel()]
    return out


def _layers_summary(result) -> dict:
    failed = [r for r in result.layers if r["status"] != "pass"]
    return {
        "checked": len(result.layers),
        "passed": len(result.layers) - len(failed),
        "first_failure": (failed[0]["path"], failed[0].get("reason", "")) if failed else None,
    }


def run_model(
    name: str, options: ModelOptions, rtl: bool, eager_runs: int = EAGER_RUNS, log=print
) -> dict:
    """Everything docs/models.md shows about one model, as plain data. Never raises: a
    stage that fails ends the model's work with an error recorded against that stage."""
    import sim
    from golden import capture

    record: dict = {"name": name, "options": asdict(options), "rtl_requested": rtl}
    started = time.perf_counter()
    stage = "build + compile"
    try:
        t0 = time.perf_counter()
        spec, program = compile_model(name, options)
        record["compile_s"] = time.perf_counter() - t0
        record["facts"] = facts = compiled_facts(program)
        log(
            f"  compiled in {record['compile_s']:.1f} s: {facts['aten_ops']} ATen ops,"
            f" {len(facts['cpu_ops'])} on the CPU, {facts['device_segments']} device segments"
        )
        stage = "eager"
        expected, record["eager_s"] = eager_reference(spec, eager_runs)
        stage = "golden capture"
        golden = capture(program.graph, spec.inputs)
        stage = "ISA model"
        result = sim.run(program, spec.inputs, backend="ref", check=True, golden=golden)
        record["isa"] = {"wall_s": result.stats["wall_s"], "layers": _layers_summary(result)}
        record["accuracy"] = accuracy(spec, expected, result.outputs)
        log(f"  ISA model {result.stats['wall_s']:.2f} s: {_layers_cell(record['isa'])} layers")
        if rtl:
            stage = "RTL"
            result = sim.run(program, spec.inputs, backend="verilator", check=True, golden=golden)
            record["rtl"] = {
                "wall_s": result.stats["wall_s"],
                "cycles": result.stats.get("cycles"),
                "isa_mismatches": len(result.stats.get("isa_mismatches", [])),
                "layers": _layers_summary(result),
                "outputs_pass": accuracy(spec, expected, result.outputs)["outputs_pass"],
            }
            log(f"  RTL {result.stats['wall_s']:.1f} s: {record['rtl']['cycles']} cycles")
    except Exception as e:
        record["error"] = {"stage": stage, "reason": _reason(e)}
        if stage == "build + compile":
            record["facts"] = {"error": _reason(e)}
        log(f"  error in {stage}: {_reason(e)}")
        log("".join(traceback.format_exception(e, limit=-3)).rstrip())
    record["status"], record["reason"] = verdict(record)
    record["wall_s"] = time.perf_counter() - started
    return record


def verdict(record: dict) -> tuple[str, str]:
    """pass / fail / error, with a short reason."""
    if "error" in record:
        return "error", f"{record['error']['stage']}: {record['error']['reason']}"
    problems = []
    for where, run in (("ISA model", record["isa"]), ("RTL", record.get("rtl"))):
        if run is None:
            continue
        layers = run["layers"]
        if layers["first_failure"]:
            path, why = layers["first_failure"]
            problems.append(
                f"{where}: {layers['checked'] - layers['passed']} layers fail, first"
                f" `{path or '(model)'}`" + (f" ({why})" if why else "")
            )
        if run.get("isa_mismatches"):
            problems.append(f"RTL: {run['isa_mismatches']} mismatches with the ISA model")
    acc = record["accuracy"]
    if "problem" in acc:
        problems.append(f"outputs: {acc['problem']}")
    elif acc.get("failing_outputs"):
        problems.append(f"output {acc['failing_outputs'][0]} outside tolerance of eager")
    if record.get("rtl") and not record["rtl"]["outputs_pass"] and acc.get("outputs_pass"):
        problems.append("RTL outputs outside tolerance of eager")
    return ("fail", _short("; ".join(problems))) if problems else ("pass", "")


# --- rendering ----------------------------------------------------------------------


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def anchor(name: str) -> str:
    """GitHub's heading anchor for a model's section heading (the name itself)."""
    return re.sub(r"[^a-z0-9_ -]", "", name.lower()).replace(" ", "-")


def _layers_cell(run: dict) -> str:
    return f"{run['layers']['passed']}/{run['layers']['checked']}"


def compiled_cells(facts: dict) -> dict[str, str]:
    if "error" in facts:
        return dict.fromkeys(COMPILED_COLUMNS, EM_DASH)
    return {
        "ATen ops": str(facts["aten_ops"]),
        "CPU ops": str(len(facts["cpu_ops"])),
        "device segments": str(facts["device_segments"]),
        "transfers": str(sum(facts["transfers"].values())),
    }


def row_cells(record: dict) -> dict[str, str]:
    opts = ModelOptions(**record["options"])
    name = f"[{record['name']}](#{anchor(record['name'])})"
    if opts.layers is not None:
        name += f" ({opts.layers} layers)"
    status = record["status"] + (f": {record['reason']}" if record["reason"] else "")
    isa, rtl, acc = record.get("isa"), record.get("rtl"), record.get("accuracy", {})
    top1 = acc.get("top1")
    return {
        "model": name,
        "status": status,
        **compiled_cells(record["facts"]),
        "eager ms *": f"{record['eager_s'] * 1e3:.1f}" if "eager_s" in record else EM_DASH,
        "ISA model s *": f"{isa['wall_s']:.2f}" if isa else EM_DASH,
        "RTL cycles": str(rtl["cycles"]) if rtl and rtl["cycles"] is not None else EM_DASH,
        "cosine": f"{acc['cosine']:.6f}" if "cosine" in acc else EM_DASH,
        "rel L2": f"{acc['rel_l2']:.2e}" if "rel_l2" in acc else EM_DASH,
        "top-1": f"{top1[0]}/{top1[1]}" if top1 else EM_DASH,
        "layers passed": _layers_cell(isa) if isa else EM_DASH,
    }


def render_row(record: dict) -> str:
    cells = row_cells(record)
    return "| " + " | ".join(_cell(cells[c]) for c in COLUMNS) + " |"


def _op_status(entry: dict) -> str:
    """Where an ATen op runs: one status, or the count per status when its nodes differ;
    the CPU fallback's reasons after it."""
    counts = {s: entry[s] for s in OP_STATUS_ORDER if entry.get(s)}
    counts |= {s: n for s, n in entry.items() if s not in ("count", "reasons", *counts)}
    text = (
        next(iter(counts)) if len(counts) == 1 else ", ".join(f"{s} {n}" for s, n in counts.items())
    )
    if entry.get("reasons"):
        text += ": " + "; ".join(entry["reasons"])
    return text


def begin_marker(name: str, options: ModelOptions) -> str:
    return f"<!-- compiled {name} {options.label()} -->"


def end_marker(name: str) -> str:
    return f"<!-- end compiled {name} -->"


def render_compiled(name: str, options: ModelOptions, facts: dict) -> str:
    """A model's compile-derived part, between its markers: the part the staleness
    check regenerates and compares."""
    lines = [begin_marker(name, options)]
    if "error" in facts:
        lines.append(f"Does not compile: {facts['error']}")
    else:
        moved = facts["transfers"]
        cpu = ", ".join(f"`{op}`" for op in facts["cpu_ops"]) or "none"
        lines += [
            f"ATen ops: {facts['aten_ops']} unique; on the CPU: {cpu}."
            f" Device segments: {facts['device_segments']}; host ops: {facts['host_ops']}."
            f" Transfers: {sum(moved.values())} ("
            + ", ".join(f"{what} {n}" for what, n in moved.items())
            + ").",
            "",
            "| ATen op | count | runs |",
            "|---|---:|---|",
            *(
                f"| `{op}` | {entry['count']} | {_cell(_op_status(entry))} |"
                for op, entry in facts["ops"].items()
            ),
        ]
        if facts["notes"]:
            lines += ["", "Compile notes:", *(f"- {_cell(n)}" for n in facts["notes"])]
    lines.append(end_marker(name))
    return "\n".join(lines)


def render_measured(record: dict) -> str:
    """A model's measured figures (machine or run dependent, not compared)."""
    parts = []
    if "compile_s" in record:
        parts.append(f"compile {record['compile_s']:.1f} s")
    if "eager_s" in record:
        parts.append(f"eager {record['eager_s'] * 1e3:.1f} ms")
    if record.get("isa"):
        parts.append(f"ISA model {record['isa']['wall_s']:.2f} s")
    if record.get("rtl"):
        rtl = record["rtl"]
        parts.append(
            f"RTL {rtl['wall_s']:.1f} s, {rtl['cycles']} cycles, {_layers_cell(rtl)} layers,"
            f" {rtl['isa_mismatches']} mismatches with the ISA model"
        )
    elif record["rtl_requested"] and "error" not in record:
        parts.append("RTL not reached")
    parts.append(f"model total {record['wall_s']:.1f} s")
    status = record["status"] + (f" ({record['reason']})" if record["reason"] else "")
    return f"Run: {status}. Measured *: " + "; ".join(parts) + "."


def render_section(record: dict) -> str:
    name, options = record["name"], ModelOptions(**record["options"])
    return "\n".join(
        [
            f"### {name}",
            "",
            render_compiled(name, options, record["facts"]),
            "",
            render_measured(record),
        ]
    )


HEADER = """# Model coverage

<!-- Generated by `make models` (sim/cli/coverage.py). Never edit by hand. -->
Generated by `make models` (`sim/cli/coverage.py`); never edit this file by hand.
`tests/test_models_table.py` (part of `make test`) recompiles the small models and fails
when the compile-derived figures here are stale.

Every model `make sim` knows by name (`sim/cli/models.py`: seeded random weights, no
network) compiled with `compiler.compile`, run on the ISA model
(`sim.run(program, inputs, backend="ref", check=True)`, every layer checked against
PyTorch) and, for the small ones, on the RTL (`backend="verilator"`, every instruction
in lockstep with the ISA model); its outputs compared with the eager model's.

Columns:
- **status**: `pass` (every layer and every output within tolerance on each backend
  run, the RTL bit-exact with the ISA model), `fail` (what failed), `error` (the stage
  that raised, and why).
- **ATen ops**: unique ATen ops in the exported, decomposed graph (views included;
  `getitem` is not an ATen op). **CPU ops**: unique ATen ops left (in part) to the CPU
  by the partitioner. **device segments**: runs of device code between host ops.
- **transfers**: tensor transfers between the host and the device's DRAM in one run, as
  the runtime makes them: each model input written before the first segment, each
  output read after the last, and each host op's tensor inputs read from DRAM and
  outputs written back. Checkpoint reads (checking only) are not counted.
- **eager ms**: the eager PyTorch model (CPU, fp32, {eager_threads} thread), median of
  {eager_runs} runs after a warm-up.
  **ISA model s**: one run of the program on the ISA model. **RTL cycles**: simulated
  core cycles on the RTL (`{em}`: not run on the RTL).
- **cosine**, **rel L2**: the ISA model's outputs against the eager model's (worst over
  the outputs). **top-1**: for causal language models, positions whose most likely next
  token matches PyTorch's. **layers passed**: checkpoints within tolerance of PyTorch
  on the ISA model, of those checked.

Columns marked * are machine dependent (measured on {machine}). Times, cycles and
accuracy are not compared by the staleness test. Per model below: every ATen op with
its count and where it runs (`device`, `view`: no code, `cpu`: with the reason), then
the measured figures.

Last written by `{command}` in {wall:.0f} s of wall time ({scope}).
"""


def render_doc(rows: dict[str, str], sections: dict[str, str], run: dict) -> str:
    """The whole file from a rendered row and section per model, in the given order."""
    head = HEADER.format(em=EM_DASH, **run)
    table = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in ("model", "status") else "---:" for c in COLUMNS) + "|",
        *rows.values(),
    ]
    return "\n".join([head, *table, "", "## Per model", "", "\n\n".join(sections.values()), ""])


# --- parsing and the staleness check ------------------------------------------------

_SECTION = re.compile(r"^### (?P<name>\S+)\n(?P<body>.*?)(?=^### |\Z)", re.M | re.S)
_BLOCK = re.compile(
    r"^<!-- compiled (?P<name>\S+) (?P<label>[^>]*?) -->$.*?^<!-- end compiled (?P=name) -->$",
    re.M | re.S,
)
_ROW_NAME = re.compile(r"^\[(?P<name>[^\]]+)\]")


def split_row(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


@dataclass
class DocModel:
    """One model's parts of docs/models.md, as text."""

    row: str | None = None
    cells: dict[str, str] | None = None
    section: str | None = None
    block: str | None = None
    options: ModelOptions | None = None


def parse_doc(text: str) -> dict[str, DocModel]:
    """Each model's table row (with its cells by column), section and marked block."""
    models: dict[str, DocModel] = {}
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = split_row(line)
        if cells and cells[0] == COLUMNS[0]:
            header = cells
        elif header == list(COLUMNS) and (m := _ROW_NAME.match(cells[0])):
            entry = models.setdefault(m["name"], DocModel())
            entry.row, entry.cells = line, dict(zip(header, cells, strict=False))
    for m in _SECTION.finditer(text):
        entry = models.setdefault(m["name"], DocModel())
        entry.section = f"### {m['name']}\n{m['body']}".rstrip()
        if (block := _BLOCK.search(m["body"])) and block["name"] == m["name"]:
            entry.block = block.group(0)
            entry.options = ModelOptions.from_label(block["label"])
    return models


def stale_parts(text: str, facts: dict[str, tuple[ModelOptions, dict]]) -> list[str]:
    """What in the doc disagrees with freshly compiled facts (name -> (options, facts)),
    and registered models it lacks: one line per problem, empty when up to date."""
    from sim.cli.models import MODELS

    doc = parse_doc(text)
    expected = [*MODELS, *(name for name in facts if name not in MODELS)]
    problems = [f"{name}: not in the file" for name in expected if name not in doc]
    for name, (options, fresh) in facts.items():
        entry = doc.get(name)
        if entry is None:
            continue  # reported above
        if entry.block is None:
            problems.append(f"{name}: no compiled section")
        elif entry.block != (now := render_compiled(name, options, fresh)):
            problems.append(
                f"{name}: compiled section differs: {_first_difference(entry.block, now)}"
            )
        if entry.cells is None:
            problems.append(f"{name}: no table row")
            continue
        for column, cell in compiled_cells(fresh).items():
            if entry.cells.get(column) != cell:
                problems.append(f"{name}: {column} is {entry.cells.get(column)!r}, now {cell!r}")
    return problems


def _first_difference(old: str, new: str) -> str:
    """The first line where two texts differ, as the file has it and as it is now."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for i in range(max(len(old_lines), len(new_lines))):
        was = old_lines[i] if i < len(old_lines) else "(nothing)"
        now = new_lines[i] if i < len(new_lines) else "(nothing)"
        if was != now:
            return f"file has {was!r}, now {now!r}"
    return "no line differs"


def check(names: list[str], doc_path: Path = DOC) -> list[str]:
    """Recompile `names` with the options the doc records for them and return
    stale_parts (a missing doc is one problem)."""
    if not doc_path.exists():
        return [f"{doc_path} does not exist"]
    text = doc_path.read_text()
    doc = parse_doc(text)
    facts = {}
    for name in names:
        entry = doc.get(name)
        options = entry.options if entry and entry.options else ModelOptions()
        facts[name] = (options, compile_facts(name, options))
    return stale_parts(text, facts)


# --- command line -------------------------------------------------------------------


def _names(text: str) -> list[str]:
    return [n for n in re.split(r"[\s,]+", text.strip()) if n]


def parse_layers(text: str | None) -> tuple[int | None, dict[str, int]]:
    """LAYERS: `n` (every model) and/or `name=n` pairs, space or comma separated."""
    default, per_model = None, {}
    for item in _names(text or ""):
        name, sep, n = item.rpartition("=")
        if not n.isdigit() or int(n) < 1 or (sep and not name):
            raise ValueError(f"--layers: {item!r} is not n or name=n with n >= 1")
        if sep:
            per_model[name] = int(n)
        else:
            default = int(n)
    return default, per_model


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(
        prog="python -m sim.cli.coverage",
        description="Run every registered model through the compiler, the ISA model and"
        " (the small ones) the RTL; write the model coverage table docs/models.md.",
    )
    p.add_argument(
        "--models",
        help="models to run, space or comma separated (default: every registered one);"
        " the file keeps the other models' rows",
    )
    p.add_argument(
        "--rtl",
        help="models to run on the RTL as well (default: the small ones: *-tiny, "
        + ", ".join(SMALL_EXTRA)
        + "); empty for none",
    )
    p.add_argument("--layers", help="transformer blocks to keep: n, or name=n pairs")
    p.add_argument("--tokens", type=int, default=8, help="sequence length")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    p.add_argument("--hw", default=None, help="hardware config (configs/hw/ name or YAML)")
    p.add_argument("--eager-runs", type=int, default=EAGER_RUNS, help="eager timing runs")
    p.add_argument("--out", type=Path, default=DOC, help="the file to write")
    p.add_argument(
        "--check",
        action="store_true",
        help="only recompile the small models (or --models) and compare the file's"
        " compile-derived parts; exit 1 when stale",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from sim.cli.models import MODEL_HW, MODELS

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        default_layers, layers = parse_layers(args.layers)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = _names(args.models) if args.models else list(MODELS)
    unknown = [n for n in [*names, *layers] if n not in MODELS and ":" not in n]
    if unknown:
        print(f"error: unknown models {unknown}: use {sorted(MODELS)}", file=sys.stderr)
        return 2

    if args.check:
        problems = check(_names(args.models) if args.models else small_models(), args.out)
        for problem in problems:
            print(problem)
        print(STALE if problems else f"{args.out}: up to date")
        return 1 if problems else 0

    rtl = {n for n in names if is_small(n)} if args.rtl is None else set(_names(args.rtl))
    if stray := sorted(rtl - set(names)):
        print(f"warning: --rtl names models not being run: {stray}", file=sys.stderr)
    started = time.perf_counter()
    records = []
    for i, name in enumerate(names, 1):
        options = ModelOptions(
            layers=layers.get(name, default_layers),
            tokens=args.tokens,
            seed=args.seed,
            hw=args.hw or MODEL_HW.get(name),  # a model too big for the default core
        )
        print(f"[{i}/{len(names)}] {name} ({options.label()}, RTL: {name in rtl})", flush=True)
        record = run_model(
            name, options, name in rtl, args.eager_runs, log=functools.partial(print, flush=True)
        )
        print(f"  -> {record['status']} {record['reason']} ({record['wall_s']:.1f} s)", flush=True)
        records.append(record)
        gc.collect()  # the model's graph and tensors sit in reference cycles: free them now
    wall = time.perf_counter() - started

    rows, sections = _merge_with_existing(records, args.out, MODELS)
    scope = (
        "every registered model"
        if set(names) >= set(MODELS)
        else f"{len(names)} models; the other rows kept from an earlier run"
    )
    run = {
        "command": shlex.join(["python", "-m", "sim.cli.coverage", *argv]),
        "scope": scope,
        "wall": wall,
        "eager_runs": args.eager_runs,
        "eager_threads": EAGER_THREADS,
        "machine": _machine(),
    }
    args.out.write_text(render_doc(rows, sections, run))
    failed = [r["name"] for r in records if r["status"] != "pass"]
    print(f"wrote {args.out} in {wall:.0f} s; not passing: {', '.join(failed) or 'none'}")
    return 0  # a model that fails or errs is a finding, recorded in its row


def _merge_with_existing(records: list[dict], out: Path, registered) -> tuple[dict, dict]:
    """Rows and sections: this run's models, and the earlier file's for the others;
    registered models first, in registry order."""
    rows, sections = {}, {}
    if out.exists():
        for name, entry in parse_doc(out.read_text()).items():
            # A model no longer registered leaves the file; package.module:function stays.
            if entry.row and entry.section and (name in registered or ":" in name):
                rows[name], sections[name] = entry.row, entry.section
    for record in records:
        rows[record["name"]] = render_row(record)
        sections[record["name"]] = render_section(record)
    order = [n for n in registered if n in rows] + [n for n in rows if n not in registered]
    return {n: rows[n] for n in order}, {n: sections[n] for n in order}


def _machine() -> str:
    import torch

    return f"{os.cpu_count()} CPUs, torch {torch.__version__}"


if __name__ == "__main__":
    sys.exit(main())
