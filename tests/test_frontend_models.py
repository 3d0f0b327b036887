"""Models as their libraries ship them (issue 15, model coverage): stock transformers
models with their default configs through the front end, int64 values on the host
path, dtype conversions on the device, one device segment for an all-device model,
and the registry's new names. All on the ISA model (backend ref)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import transformers

import compiler
import sim
from compiler.frontend import FrontendError
from golden import capture, check_outputs, eager_outputs
from sim.cli.main import main as sim_main
from sim.cli.models import build

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def stock_llama():
    """LlamaForCausalLM as transformers ships it: use_cache on by default."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=256, max_position_embeddings=128, **TINY)
    return transformers.LlamaForCausalLM(cfg), (torch.randint(0, 256, (1, 8)),)


def stock_gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=64)
    return transformers.GPT2LMHeadModel(cfg), (torch.randint(0, 256, (1, 8)),)


class HashedPositions(torch.nn.Module):
    """Position ids hashed into buckets on the host in int64, as hash-embedding
    encoders do: the products do not fit in int32 (they aborted runs before)."""

    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(256, 64)
        self.pos = torch.nn.Embedding(97, 64)
        self.proj = torch.nn.Linear(64, 64)

    def forward(self, ids):
        positions = torch.cumsum(ids.ne(-1).long(), 1)
        bucket = (positions * 2654435761 + ids * 40503) % 97
        return self.proj(self.tok(ids) + self.pos(bucket))


def hashed_positions():
    torch.manual_seed(0)
    return HashedPositions(), (torch.randint(0, 256, (1, 8)),)


def stock_roberta():
    """RoBERTa's position ids come from the input ids on the host (cumsum, int64)."""
    torch.manual_seed(0)
    cfg = transformers.RobertaConfig(vocab_size=256, max_position_embeddings=128, **TINY)
    return transformers.RobertaModel(cfg), (torch.randint(3, 256, (1, 8)),)


class ReturnsCache(torch.nn.Module):
    """A model without a use_cache switch that returns a cache object anyway."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16, 16)

    def forward(self, x):
        return self.proj(x), transformers.DynamicCache()


class Opaque:
    pass


class ReturnsObject(torch.nn.Module):
    def forward(self, x):
        return x + 1, Opaque()


class BranchesOnValues(torch.nn.Module):
    def forward(self, x):
        return x + 1 if x.sum() > 0 else x - 1


@pytest.fixture(scope="module")
def factories():
    """These factories as an importable module, for `python -m sim module:function`."""
    module = types.ModuleType("frontend_model_factories")
    for fn in (stock_llama, stock_gpt2, hashed_positions, stock_roberta):
        setattr(module, fn.__name__, fn)
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def run_ref(model, inputs, kwargs=None):
    program = compiler.compile(model, inputs, kwargs=kwargs)
    result = sim.run(
        program, inputs, backend="ref", check=True, golden=capture(program.graph, inputs)
    )
    return program, result


# ---------------------------------------------------------------- 1: stock models
@pytest.mark.parametrize("factory", ["stock_llama", "stock_gpt2"])
def test_stock_causal_lm_runs_from_module_function(factories, factory, tmp_path, capsys):
    code = sim_main([f"{factories}:{factory}", "--backend", "ref", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    assert "note: use_cache=True (on in the model's config)" in out
    assert "Compile notes" in (tmp_path / "report.md").read_text()


def test_model_output_extras_are_switched_off_or_dropped():
    model, inputs = stock_llama()
    program, result = run_ref(model, inputs, {"output_attentions": True})
    notes = program.meta["report"]["notes"]
    assert any(n.startswith("use_cache=True") for n in notes), notes
    assert any(n.startswith("output_attentions=True (given)") for n in notes), notes
    assert all(r["status"] == "pass" for r in result.layers)
    # the ModelOutput's only returned tensor is the logits
    assert [tuple(o.shape) for o in result.outputs if o is not None] == [(1, 8, 256)]
    with torch.no_grad():
        logits = model(*inputs, use_cache=False).logits
    assert check_outputs([logits], result.outputs)[0]["status"] == "pass"


def test_cache_object_without_a_switch_is_dropped_with_a_note():
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    program, result = run_ref(ReturnsCache(), (x,))
    assert any("DynamicCache" in n and "dropped" in n for n in program.meta["report"]["notes"])
    assert [o.shape for o in result.outputs if o is not None] == [(4, 16)]


def test_unknown_output_object_is_refused_by_name():
    with pytest.raises(FrontendError, match=r"output\[1\] is a Opaque.*Fix:"):
        compiler.compile(ReturnsObject(), (torch.randn(2, 4),))


def test_untraceable_model_is_refused_with_cause_and_fix():
    with pytest.raises(FrontendError, match="cannot trace BranchesOnValues.*Fix:") as info:
        compiler.compile(BranchesOnValues(), (torch.randn(2, 4),))
    assert info.value.__cause__ is not None  # the export error, kept for debugging


# ---------------------------------------------------------------- 2: int64 values
def test_int64_host_values_that_do_not_fit_int32_stay_host_only(factories, tmp_path, capsys):
    model, inputs = hashed_positions()
    program, result = run_ref(model, inputs)
    assert any("kept as int64" in n for n in program.meta["report"]["notes"])
    host_outputs = [b["dtype"] for op in program.meta["host_ops"] for b in op["outputs"]]
    assert "int64" in host_outputs  # the hash products
    assert "int32" in host_outputs  # the bucket ids the device's GATHER reads
    assert all(r["status"] == "pass" for r in result.layers)
    expected = eager_outputs(model, inputs)
    assert check_outputs(expected, result.outputs)[0]["status"] == "pass"
    # the blob with int64 bindings passes the loader's validation
    assert compiler.Program.from_bytes(program.to_bytes()).meta["host_ops"]
    code = sim_main([f"{factories}:hashed_positions", "--backend", "ref", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().out[-2000:]


def test_roberta_positions_from_input_ids_run_end_to_end(factories, tmp_path, capsys):
    code = sim_main([f"{factories}:stock_roberta", "--backend", "ref", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().out[-2000:]


# ---------------------------------------------------------------- 3: conversions
class Conversions(torch.nn.Module):
    def forward(self, x):
        rounded = (x * 3.0).to(torch.bfloat16)
        return rounded.to(torch.float32) + 1.0, x.to(torch.float32), x.to(torch.float16)


def test_float_conversions_run_on_the_device_bit_exact():
    x = torch.randn(4, 40) * 1000
    x[0, :4] = torch.tensor([float("nan"), 1e-40, 3.4e38, -0.0])
    program, result = run_ref(Conversions(), (x,))
    row = program.meta["report"]["ops"]["aten._to_copy.default"]
    assert row["device"] == 2 and row["cpu"] == 1, row  # fp16 stays on the host
    assert "float16" in " ".join(row["reasons"])
    expected = Conversions()(x)
    for got, want in zip(result.outputs, expected, strict=True):
        assert torch.equal(got.float().nan_to_num(7.0), want.float().nan_to_num(7.0))


# ---------------------------------------------------------------- 4: one device segment
class ViewsBetweenDeviceOps(torch.nn.Module):
    """Views, aliases and a no-op conversion between device ops add no host op."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32)

    def forward(self, x):
        h = self.a(x).view(2, 4, 32).transpose(0, 1).contiguous().reshape(8, 32)
        return self.b(h.clone().to(torch.float32))


@pytest.mark.parametrize("name", ["llama-tiny", "views"])
def test_all_device_model_is_one_device_segment(name):
    if name == "views":
        torch.manual_seed(0)
        model, inputs = ViewsBetweenDeviceOps(), (torch.randn(8, 32),)
    else:
        spec = build(name)
        model, inputs = spec.model, spec.inputs
    program = compiler.compile(model, inputs)
    assert [s["kind"] for s in program.meta["segments"]] == ["device"]
    assert program.meta["report"]["cpu_fallback"] == []


# ---------------------------------------------------------------- 5: registry
@pytest.mark.parametrize("name", ["llama-tiny", "neox-tiny", "bert-tiny", "vit-tiny"])
def test_registered_tiny_models_pass(name):
    spec = build(name)
    program, result = run_ref(spec.model, spec.inputs, spec.kwargs)
    assert result.layers and all(r["status"] == "pass" for r in result.layers)


@pytest.mark.parametrize("name", ["llama", "gpt-neox", "bert", "vit"])
def test_registered_real_sizes_have_their_shapes(name):
    """The real sizes are registered with their configs (built on the meta device:
    no weights allocated, so this is cheap)."""
    from sim.cli.models import MODELS

    assert name in MODELS
    with torch.device("meta"):
        spec = build(name, layers=1)
    cfg = spec.model.config
    want = {"llama": 2048, "gpt-neox": 768, "bert": 768, "vit": 768}[name]
    assert cfg.hidden_size == want and cfg.num_hidden_layers == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt-neox", "bert", "vit"])
def test_registered_real_sizes_compile(name):
    spec = build(name, layers=1)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    assert program.layers
