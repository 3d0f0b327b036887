"""Running a program: its segments in order on one DRAM image.

Host and device share the image. Device segments run on a Backend; host segments
(CPU-fallback ops) run with PyTorch. At every CHECKPOINT the layer's output and inputs
are read out of DRAM; with check=True each is compared with PyTorch (golden/).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from sim.runtime import image
from sim.runtime.backend import Backend, make_backend
from sim.runtime.host import HostOpError, run_host_op

# The errors a program that loaded can still stop with, each naming where (docs/blob.md):
# a device fault (the backend's, e.g. sim.ref.ExecError), a host op PyTorch refuses
# (HostOpError), a checkpoint the layer table does not have (CheckpointError).


class CheckpointError(RuntimeError):
    """A CHECKPOINT instruction names a layer that is not in the program's layer table."""


__all__ = ["CheckpointError", "HostOpError", "RunResult", "execute", "run"]


@dataclass
class RunResult:
    outputs: list[torch.Tensor]
    checkpoints: dict[int, dict]  # layer id -> {"output": tensor, "inputs": [tensors]}
    stats: dict
    layers: list[dict] = field(default_factory=list)  # per-layer comparisons (check=True)
    passed: bool | None = None


def bind_inputs(program, dram, inputs) -> None:
    tensor_bindings = [b for b in program.meta["inputs"] if "addr" in b]
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    if len(tensors) != len(tensor_bindings):
        raise ValueError(
            f"program takes {len(tensor_bindings)} tensor input(s)"
            f" ({[b['name'] for b in tensor_bindings]}), got {len(tensors)}"
        )
    for b, x in zip(tensor_bindings, tensors, strict=True):
        image.write(dram, b, x, f"input {b['name']}")


def execute(program, inputs, backend: Backend, read_checkpoints: bool = True) -> RunResult:
    """Run every segment; read_checkpoints=False skips reading the layers out of DRAM at
    each checkpoint (throughput measurements; no checks possible then)."""
    backend.bind(program)
    dram = image.new_image(program, backend.new_dram)
    bind_inputs(program, dram, inputs)
    layers = {la["id"]: la for la in program.layers}
    checkpoints: dict[int, dict] = {}
    times = {"device_s": 0.0, "host_s": 0.0}

    def on_checkpoint(layer_id: int) -> None:
        la = layers.get(layer_id)
        if la is None:
            raise CheckpointError(f"checkpoint {layer_id} is not in the layer table")
        if not read_checkpoints:
            return
        checkpoints[layer_id] = {
            "output": image.read(dram, la["output"]),
            "inputs": [image.read(dram, b) for b in la["inputs"]],
        }

    for seg in program.segments:
        t = time.perf_counter()
        if seg["kind"] == "device":
            backend.run_segment(dram, program.code, seg["pc"], on_checkpoint)
            times["device_s"] += time.perf_counter() - t
        else:
            run_host_op(dram, program.meta["host_ops"][seg["host_op"]], seg["host_op"])
            times["host_s"] += time.perf_counter() - t
    outputs = [image.read(dram, b) if b else None for b in program.meta["outputs"]]
    return RunResult(outputs, checkpoints, {**backend.stats, **times})


def run(
    program,
    inputs,
    backend: str = "ref",
    check: bool = True,
    golden=None,
    trace: bool = False,
    **options,
) -> RunResult:
    """Run a program; with check=True compare every checkpoint with PyTorch
    (end to end and follow-actual) using golden (captured now if not given)."""
    be = make_backend(backend, program.hw, trace=trace, **options)
    t0 = time.perf_counter()
    try:
        result = execute(program, tuple(inputs), be)
    finally:
        be.close()
    result.stats["wall_s"] = time.perf_counter() - t0
    result.stats["backend"] = backend
    if trace:
        result.stats["trace"] = be.trace
    if check:
        from golden import capture, check_layers

        if program.graph is None:
            raise ValueError(
                "check=True needs the compiled graph: this program was loaded"
                " from a blob; compile the model in this process"
            )
        golden = golden if golden is not None else capture(program.graph, inputs)
        result.layers = check_layers(program, result, golden)
    _merge_backend_checks(result)
    return result


def _merge_backend_checks(result: RunResult) -> None:
    """Fold in what the backend checked itself: bit-exactness against the ISA model (RTL)
    and cycles per layer."""
    mismatches = result.stats.get("isa_mismatches", [])
    by_layer = {m["layer"]: m for m in mismatches}
    cycles = result.stats.get("layer_cycles", {})
    for row in result.layers:
        if row["id"] in cycles:
            row["cycles"] = cycles[row["id"]]
        if "isa_mismatches" in result.stats:
            row["isa"] = "fail" if row["id"] in by_layer else "bit-exact"
        if row["id"] in by_layer:
            row["status"] = "fail"
            row["reason"] = by_layer[row["id"]]["reason"]
    whole = by_layer.get(None)
    if result.layers:
        result.passed = all(r["status"] == "pass" for r in result.layers) and whole is None
    elif "isa_mismatches" in result.stats:
        result.passed = not mismatches
