"""The golden criteria reject the errors they exist to catch (golden/errors.py, and
matrix products accumulated in bf16 or fp16) at the smallest size that matters, on
every checkpoint of real runs, and accept the real differences of those runs."""

from __future__ import annotations

import copy

import pytest
import torch

import compiler
import sim
from golden import capture, check_layer, check_layers, reference
from golden.errors import ERROR_CLASSES
from sim.cli.models import build

aten = torch.ops.aten


@pytest.fixture(scope="module", params=["gpt2-tiny", "mlp"])
def run(request):
    spec = build(request.param)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    result = sim.run(program, spec.inputs, backend="ref", check=False)
    return program, result, capture(program.graph, spec.inputs)


def _with_output(result, layer_id: int, output: torch.Tensor):
    patched = copy.copy(result)
    patched.checkpoints = dict(result.checkpoints)
    patched.checkpoints[layer_id] = {**result.checkpoints[layer_id], "output": output}
    return patched


def test_real_runs_pass(run):
    program, result, golden = run
    rows = check_layers(program, result, golden)
    assert rows and all(r["status"] == "pass" for r in rows), [
        r for r in rows if r["status"] != "pass"
    ][:2]


@pytest.mark.parametrize("error", list(ERROR_CLASSES))
def test_every_checkpoint_rejects(run, error):
    program, result, golden = run
    inject = ERROR_CLASSES[error]
    tested = set()
    for layer in program.layers:
        out = result.checkpoints[layer["id"]]["output"]
        wrong = inject(out)
        if torch.equal(wrong, out):  # e.g. zeroing a ReLU's zeros: no error to find
            continue
        row = check_layer(program, _with_output(result, layer["id"], wrong), golden, layer)
        assert row["status"] == "fail", (error, layer["path"], row["follow"])
        assert row["reason"].startswith("follow-actual"), row["reason"]
        tested.add(layer["kind"])
    assert tested, "no checkpoint was tested"


def _low_precision_matmul(dtype):
    """a @ b (+ init) with bf16 operands, accumulated in k order in `dtype`."""

    def matmul(a, b, init=None):
        a = a.to(torch.bfloat16).to(torch.float32)
        b = b.to(torch.bfloat16).to(torch.float32)
        acc = torch.zeros(a.shape[:-1] + b.shape[-1:], dtype=dtype)
        if init is not None:
            acc = acc + init.to(dtype)
        for k in range(a.shape[-1]):
            acc = (acc + (a[..., k : k + 1] * b[..., k : k + 1, :]).to(dtype)).to(dtype)
        return acc.to(torch.float32)

    return {
        aten.mm.default: lambda a, b: matmul(a, b),
        aten.bmm.default: lambda a, b: matmul(a, b),
        aten.addmm.default: lambda bias, a, b, **kw: matmul(a, b, bias),
        aten.linear.default: lambda x, w, bias=None: matmul(x, w.t(), bias),
    }


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_linear_layers_reject_low_precision_accumulation(run, monkeypatch, dtype):
    """What a matrix unit accumulating in bf16 or fp16 would give (k = 64 on gpt2-tiny),
    from the device's own inputs, fails every linear layer."""
    program, result, golden = run
    linear = [la for la in program.layers if la["kind"] == "linear"]
    assert linear
    for layer in linear:
        with monkeypatch.context() as m:
            m.setattr(
                reference,
                "DEVICE_NUMERICS",
                reference.DEVICE_NUMERICS | _low_precision_matmul(dtype),
            )
            (_, wrong, _), *_ = reference.targets(program, layer, result.checkpoints)
        row = check_layer(program, _with_output(result, layer["id"], wrong), golden, layer)
        assert row["status"] == "fail", (layer["path"], row["follow"])
