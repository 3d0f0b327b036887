"""End to end: registered models through compile + ISA model + golden checks."""

import json

import pytest

import compiler
import sim
from golden import check_outputs, eager_outputs
from sim.cli import main as sim_main
from sim.cli.models import build


@pytest.mark.parametrize(
    "name", ["gpt2-tiny", "mlp", "opt-tiny", "bloom-tiny", "neox-tiny", "llama-tiny", "bert-tiny"]
)
def test_model_passes_every_layer(name):
    spec = build(name)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    result = sim.run(program, spec.inputs, check=True)
    assert result.layers, "no checkpoints"
    failed = [r for r in result.layers if r["status"] != "pass"]
    assert not failed, failed[:3]
    # Against the model itself, run eagerly (not through the compiler's front end).
    outputs = check_outputs(eager_outputs(spec.model, spec.inputs, spec.kwargs), result.outputs)
    assert outputs and all(o["status"] == "pass" for o in outputs), outputs
    paths = {r["path"] for r in result.layers}
    if name == "gpt2-tiny":
        assert {
            "transformer.h.0",
            "transformer.h.1.attn",
            "transformer.h.1.mlp",
            "transformer.ln_f",
            "lm_head",
        } <= paths


def test_outputs_are_checked_against_the_eager_model():
    """The output check fails a program whose outputs are not the model's (here: the
    same architecture with other weights, as a front-end bug would give)."""
    spec = build("gpt2-tiny")
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    result = sim.run(program, spec.inputs, check=False)
    other = build("gpt2-tiny", seed=1)
    rows = check_outputs(eager_outputs(other.model, spec.inputs, spec.kwargs), result.outputs)
    assert [r["status"] for r in rows] == ["fail"]
    rows = check_outputs(eager_outputs(spec.model, spec.inputs, spec.kwargs), result.outputs[:0])
    assert rows[0]["status"] == "fail" and "outputs" in rows[0]["reason"]


def test_cli_writes_reports(tmp_path):
    assert sim_main(["gpt2-tiny", "--backend", "ref", "--out", str(tmp_path), "--layers", "1"]) == 0
    assert (tmp_path / "report.json").exists()
    summary = json.loads((tmp_path / "report.json").read_text())["summary"]
    assert [o["status"] for o in summary["outputs_vs_eager"]] == ["pass"]
    assert "lm_head" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gpt2", "--backend", "ref", "--waves"], "WAVES need the RTL"),
        (["gpt2", "--backend", "torch", "--fault", "dma_stride"], "FAULT need the RTL"),
        (["gpt2", "--fault", "no_such_fault"], "unknown fault 'no_such_fault'"),
        (["gpt2", "--waves", "--wave-insns", "7", "--wave-layer", "lm_head"], "at most one"),
        (["gpt2", "--waves", "--wave-cycles", "9:3"], "first <= last"),
        (["gpt2", "--wave-layer", "lm_head"], "add WAVES=1"),
        (["gpt2", "--backend", "nope"], "unknown backend 'nope'"),
        (["gpt2", "--device", "cuda"], "add BACKEND=torch"),
        (["gpt2", "--tokens", "0"], "TOKENS must be >= 1"),
        (["no-such-model"], "unknown model 'no-such-model'"),
        (["gpt2", "--hw", "no-such-config"], "no hardware config 'no-such-config'"),
    ],
)
def test_cli_refuses_bad_options_before_any_work(capsys, monkeypatch, argv, message):
    """Options are checked before the model is built or compiled."""
    monkeypatch.setattr(compiler, "compile", lambda *a, **k: pytest.fail("compiled anyway"))
    assert sim_main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_gpt2_small():
    """Full GPT-2 small (12 blocks, 8 tokens) through the RTL: make test-full."""
    assert sim_main(["gpt2", "--backend", "verilator", "--out", "build/test-gpt2"]) == 0


def test_the_trained_model_predicts_held_out_text_and_loom_agrees():
    """gpt2-stdlib (weights/) is trained: on held-out text its most likely next byte is
    right far more often than chance (1/257), and the program on the ISA model picks the
    same next byte as the eager model at >= 99% of the positions (issue 17's target; bf16
    operands can flip a near tie: measured 127 of 128, the one flip at an eager margin of
    0.025 where that row's largest logit error is 0.072)."""
    spec = build("gpt2-stdlib", tokens=64, seed=3, batch=2)
    (ids,) = spec.inputs
    assert ids.shape == (2, 64) and int(ids.max()) < 256  # bytes of held-out text
    (expected,) = eager_outputs(spec.model, spec.inputs, spec.kwargs)  # [2, 64, 257]
    right = (expected[:, :-1].argmax(-1) == ids[:, 1:]).float().mean().item()
    assert right > 0.4, f"eager top-1 next-byte accuracy {right:.2f}: not a trained model"
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    result = sim.run(program, spec.inputs, check=True)
    assert all(r["status"] == "pass" for r in result.layers)
    (actual,) = result.outputs
    agree = (actual.argmax(-1) == expected.argmax(-1)).float().mean().item()
    assert agree >= 0.99, f"top-1 agreement with eager {agree:.3f}"
