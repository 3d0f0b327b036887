"""Models by name for `make sim MODEL=...`: a registered name, or
`package.module:function` returning (model, example_inputs[, example_kwargs]).

Weights are seeded random (no network); WEIGHTS=path loads a local checkpoint
(a Hugging Face model directory, or a state_dict .pt/.bin file).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class ModelSpec:
    model: torch.nn.Module
    inputs: tuple
    kwargs: dict


MODELS: dict[str, Callable[..., ModelSpec]] = {}


def register(name: str):
    def wrap(fn):
        MODELS[name] = fn
        return fn

    return wrap


def _first_blocks(model, layers: int | None):
    """A loaded GPT-2 cut to its first `layers` transformer blocks (all when None)."""
    if layers is not None:
        model.transformer.h = model.transformer.h[:layers]
        model.config.n_layer = layers
    return model


def _gpt2(
    config_kwargs: dict,
    layers: int | None,
    tokens: int,
    seed: int,
    weights: str | None,
    batch: int = 1,
) -> ModelSpec:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    if weights and Path(weights).is_dir():
        model = _first_blocks(
            GPT2LMHeadModel.from_pretrained(weights, local_files_only=True), layers
        )
    else:
        cfg = GPT2Config(**config_kwargs)
        if layers is not None:
            cfg.n_layer = layers
        model = GPT2LMHeadModel(cfg)
        if weights:
            model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens), generator=gen)
    return ModelSpec(model, (ids,), {"use_cache": False})


@register("gpt2")
def gpt2(layers=None, tokens=8, seed=0, weights=None, batch=1) -> ModelSpec:
    """GPT-2 small: 12 layers, 768 wide, 12 heads, 50257 tokens."""
    return _gpt2({}, layers, tokens, seed, weights, batch)


@register("gpt2-tiny")
def gpt2_tiny(layers=None, tokens=8, seed=0, weights=None, batch=1) -> ModelSpec:
    """2 layers, 64 wide, 4 heads, 512-token vocabulary: the fast test model."""
    cfg = dict(
        n_layer=2,
        n_embd=64,
        n_head=4,
        vocab_size=512,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return _gpt2(cfg, layers, tokens, seed, weights, batch)


class MLP(torch.nn.Module):
    def __init__(self, dims=(64, 256, 256, 32)):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=False)
        )
        self.act = torch.nn.GELU(approximate="tanh")

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


@register("mlp")
def mlp(layers=None, tokens=8, seed=0, weights=None, batch=1) -> ModelSpec:
    """A 3-layer MLP (Linear + tanh-GELU) on [batch * tokens, 64]."""
    torch.manual_seed(seed)
    model = MLP().eval()
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return ModelSpec(model, (torch.randn(batch * tokens, 64),), {})


# Members of transformer families the team did not write, from their config classes
# with seeded weights (no network): name -> (config class, config fields, model class,
# whether the model takes use_cache). The -tiny ones (2 layers, 64 wide, 4 heads,
# 256-token vocabulary) are the test models; the others are real sizes (cut blocks
# with --layers).
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
HF_FAMILIES = {
    "opt-tiny": (
        "OPTConfig",
        dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
             word_embed_proj_dim=64, max_position_embeddings=128),
        "OPTForCausalLM",
        True,
    ),
    "bloom-tiny": (
        "BloomConfig", dict(hidden_size=64, n_layer=2, n_head=4), "BloomForCausalLM", True,
    ),
    "neox-tiny": (
        "GPTNeoXConfig", dict(**TINY, max_position_embeddings=128), "GPTNeoXForCausalLM", True,
    ),
    # Pythia-160M's shape: 12 layers, 768 wide, 12 heads, partial rotary (25%).
    "gpt-neox": (
        "GPTNeoXConfig",
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
             num_attention_heads=12, rotary_pct=0.25, max_position_embeddings=2048,
             vocab_size=50304),
        "GPTNeoXForCausalLM",
        True,
    ),
    "llama-tiny": (
        "LlamaConfig",
        dict(**TINY, num_key_value_heads=4, max_position_embeddings=128),
        "LlamaForCausalLM",
        True,
    ),
    # TinyLlama-1.1B's shape: 22 layers, 2048 wide, 32 heads sharing 4 KV heads.
    "llama": (
        "LlamaConfig",
        dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
             num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
             vocab_size=32000),
        "LlamaForCausalLM",
        True,
    ),
    # Decoder families built from the usual parts, tiny: GQA (qwen2), MQA (mistral,
    # gpt-bigcode), head_dim != hidden / heads (gemma), partial rotary (phi, stablelm,
    # gpt-j), parallel attention + MLP (gpt-j, phi, falcon), ALiBi (falcon, mpt),
    # odd sizes (llama-odd: 72 wide, 100-wide MLP, 250 tokens).
    "qwen2-tiny": (
        "Qwen2Config", dict(**TINY, num_key_value_heads=2, max_position_embeddings=128),
        "Qwen2ForCausalLM", True,
    ),
    "mistral-tiny": (
        "MistralConfig", dict(**TINY, num_key_value_heads=1, max_position_embeddings=128),
        "MistralForCausalLM", True,
    ),
    "gemma-tiny": (
        "GemmaConfig",
        dict(**TINY, num_key_value_heads=1, head_dim=16, max_position_embeddings=128),
        "GemmaForCausalLM", True,
    ),
    "phi-tiny": (
        "PhiConfig", dict(**TINY, partial_rotary_factor=0.5, max_position_embeddings=128),
        "PhiForCausalLM", True,
    ),
    "stablelm-tiny": (
        "StableLmConfig",
        dict(**TINY, num_key_value_heads=2, partial_rotary_factor=0.25,
             max_position_embeddings=128),
        "StableLmForCausalLM", True,
    ),
    "gptj-tiny": (
        "GPTJConfig",
        dict(n_embd=64, n_layer=2, n_head=4, rotary_dim=8, n_positions=128,
             bos_token_id=0, eos_token_id=0),
        "GPTJForCausalLM", True,
    ),
    "falcon-tiny": (
        "FalconConfig",
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, alibi=True,
             parallel_attn=True, new_decoder_architecture=False),
        "FalconForCausalLM", True,
    ),
    "mpt-tiny": (
        "MptConfig", dict(d_model=64, n_heads=4, n_layers=2, max_seq_len=128),
        "MptForCausalLM", True,
    ),
    "bigcode-tiny": (
        "GPTBigCodeConfig",
        dict(n_embd=64, n_layer=2, n_head=4, n_positions=128, multi_query=True),
        "GPTBigCodeForCausalLM", True,
    ),
    "llama-odd": (
        "LlamaConfig",
        dict(hidden_size=72, intermediate_size=100, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
             vocab_size=250),
        "LlamaForCausalLM", True,
    ),
    "bert-tiny": ("BertConfig", dict(**TINY, max_position_embeddings=128), "BertModel", False),
    # bert-base: 12 layers, 768 wide, 12 heads, 30522 tokens (BertConfig's defaults).
    "bert": ("BertConfig", dict(vocab_size=30522), "BertModel", False),
    # Image models take seeded random pixel values [batch, 3, size, size], not tokens.
    "vit-tiny": (
        "ViTConfig", dict(**TINY, image_size=32, patch_size=8), "ViTModel", False,
    ),
    # ViT-B/16 at 224 x 224 (ViTConfig's defaults): 196 patches + CLS.
    "vit": ("ViTConfig", dict(), "ViTModel", False),
}  # fmt: skip
HF_VOCAB = 256  # the -tiny models' vocabulary (a real-size config names its own)
# Models whose DRAM needs exceed the default core's 1 GiB: the hardware config used when
# none is given (TinyLlama's 1.1 B parameters are 2.2 GiB of bf16 weights).
MODEL_HW = {"llama": "server"}
IMAGE_CONFIGS = {"ViTConfig"}


def _hf_family(name: str):
    config_class, fields, model_class, takes_cache = HF_FAMILIES[name]

    def make(layers=None, tokens=8, seed=0, weights=None, batch=1) -> ModelSpec:
        import transformers

        image = config_class in IMAGE_CONFIGS
        cfg = getattr(transformers, config_class)(
            **({} if image else {"vocab_size": HF_VOCAB}) | fields
        )
        if layers is not None:
            cfg.num_hidden_layers = layers
        torch.manual_seed(seed)
        cls = getattr(transformers, model_class)
        # WEIGHTS: a local checkpoint directory of the family (no network).
        model = cls.from_pretrained(weights, local_files_only=True) if weights else cls(cfg)
        gen = torch.Generator().manual_seed(seed)
        if image:  # TOKENS does not apply: the patch count follows from the image size
            shape = (batch, cfg.num_channels, cfg.image_size, cfg.image_size)
            return ModelSpec(model.eval(), (torch.randn(shape, generator=gen),), {})
        ids = torch.randint(0, cfg.vocab_size, (batch, tokens), generator=gen)
        return ModelSpec(model.eval(), (ids,), {"use_cache": False} if takes_cache else {})

    cfg_fields = fields if config_class in IMAGE_CONFIGS else {"vocab_size": HF_VOCAB} | fields
    make.__doc__ = f"{model_class} from {config_class}({_describe(cfg_fields)})."
    return make


# The GPT-2 architecture trained in the repository (weights/README.md, `make train-tiny`):
# real weights, so its next-token predictions can be read and compared.
STDLIB_DIR = Path(__file__).resolve().parents[2] / "weights" / "gpt2-stdlib"


@register("gpt2-stdlib")
def gpt2_stdlib(layers=None, tokens=8, seed=0, weights=None, batch=1) -> ModelSpec:
    """4 layers, 128 wide, 4 heads, byte vocabulary (257), trained on the Python standard
    library's source; its inputs are held-out text (weights/gpt2-stdlib/heldout.txt),
    `tokens` bytes from a window the seed picks, one window per batch row."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(weights or STDLIB_DIR, local_files_only=True)
    model = _first_blocks(model, layers).eval()
    text = (STDLIB_DIR / "heldout.txt").read_bytes()
    if tokens > min(len(text), model.config.n_positions):
        raise ValueError(
            f"gpt2-stdlib: {tokens} tokens; at most {min(len(text), model.config.n_positions)}"
        )
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - tokens + 1, (batch,), generator=gen).tolist()
    ids = torch.tensor([list(text[s : s + tokens]) for s in starts], dtype=torch.long)
    return ModelSpec(model, (ids,), {"use_cache": False})


def _describe(fields: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items()) or "defaults"


for _name in HF_FAMILIES:
    register(_name)(_hf_family(_name))


def build(name: str, **options) -> ModelSpec:
    if name in MODELS:
        return MODELS[name](**options)
    if ":" in name:
        module, _, fn = name.partition(":")
        made = getattr(importlib.import_module(module), fn)()
        model, inputs, *rest = made
        return ModelSpec(model.eval(), tuple(inputs), rest[0] if rest else {})
    raise ValueError(
        f"unknown model {name!r}: use one of {sorted(MODELS)} or package.module:function"
    )
