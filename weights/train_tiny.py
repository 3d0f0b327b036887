"""Train a tiny byte-level GPT-2 on the Python standard library's own source.

The Loom simulator needs a real trained transformer to run end to end: random weights
give no readable text and make next-token agreement checks meaningless, and no
pretrained model can be downloaded on the machines this project runs on. This script
builds one from what every machine has offline, the running interpreter's standard
library .py files, and writes a Hugging Face model directory that
``transformers.GPT2LMHeadModel.from_pretrained(dir, local_files_only=True)`` loads.

The vocabulary is bytes: token id = byte value (0..255), plus id 256 marking the end
of a file. So no tokenizer files are needed; ``encode`` and ``decode`` below are the
whole tokenizer and other code imports them (``from weights.train_tiny import encode``).

The run is deterministic by construction: fixed seeds, deterministic torch kernels, a
fixed thread count, a fixed step count and training windows drawn from a seeded
generator. Two runs on the same machine and Python version give identical weights.

Usage, from the repository root::

    python weights/train_tiny.py            # writes weights/gpt2-stdlib/
"""

import argparse
import hashlib
import json
import logging
import math
import platform
import sys
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, set_seed
from transformers.utils import logging as hf_logging

EOF_ID = 256  # End-of-file separator, the one id that is not a byte.
VOCAB_SIZE = 257

# Corpus selection. Test suites are excluded because they are mostly data and
# generated cases rather than idiomatic code; lib2to3 and idlelib are tools with
# their own odd styles. The size cap drops the two huge generated files
# (_pydecimal.py, pydoc_data/topics.py) that would dominate the stream.
EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests", "idlelib", "lib2to3"})
MAX_FILE_BYTES = 200_000
HELD_OUT_EVERY = 50  # Every 50th file in sorted order is held out (~2%).
HELD_OUT_SAMPLE_BYTES = 16384  # The start of the held-out text, shipped as heldout.txt.

# Model: small enough to train on one CPU core in minutes and to simulate quickly.
CONTEXT = 256
N_EMBD = 128
N_LAYER = 4
N_HEAD = 4

# Training. STEPS is a constant, not a time budget, so that the run is reproducible. One
# thread, because the float reductions' order depends on the thread count (so it must be
# fixed) and because on the 2-core machine this was sized on, where a simulation often
# holds the other core, two threads ran 3.5x slower than one. Measured there: 0.47 s a
# step at BATCH 16 (1.0 s at 32). In 150 s trials smaller batches did better (held-out
# 2.19 nats at 8, 2.28 at 16, 2.40 at 32); 16 hedges against the noisier steps of 8
# mattering more as the loss falls over the full run.
SEED = 1234
THREADS = 1
BATCH = 16
STEPS = 1600
PEAK_LR = 3e-3
MIN_LR_RATIO = 0.1  # Cosine decay ends at 10% of the peak rather than at zero.
WARMUP_STEPS = 100
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
LOG_EVERY = 50

# Evaluation.
EVAL_WINDOWS = 200
# The prompt ends inside a docstring on purpose: greedy decoding after a newline
# falls into an endless run of indentation spaces (space is the single likeliest byte
# at almost every indentation depth), so "import os\n" alone yields only whitespace.
SAMPLE_PROMPT = 'import os\nimport sys\n\n\ndef main():\n    """'
SAMPLE_BYTES = 200

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "gpt2-stdlib"

log = logging.getLogger("train_tiny")


def encode(text: str) -> list[int]:
    """Token ids of ``text``: its UTF-8 bytes."""
    return list(text.encode("utf-8"))


def decode(ids: Iterable[int]) -> str:
    """Text of token ids; end-of-file separators are dropped, broken UTF-8 replaced."""
    return bytes(int(i) for i in ids if int(i) != EOF_ID).decode("utf-8", errors="replace")


def corpus_files(stdlib: Path) -> list[Path]:
    """The stdlib .py files used as corpus, sorted by relative path for a stable order."""
    files = [
        path
        for path in stdlib.rglob("*.py")
        if not EXCLUDED_DIRS.intersection(path.relative_to(stdlib).parts[:-1])
        and path.stat().st_size <= MAX_FILE_BYTES
    ]
    return sorted(files, key=lambda path: path.relative_to(stdlib).as_posix())


def token_stream(files: list[Path]) -> torch.Tensor:
    """All files' bytes, each followed by the end-of-file id, as one int16 tensor."""
    ids: list[int] = []
    for path in files:
        ids.extend(path.read_bytes())
        ids.append(EOF_ID)
    # int16 holds 0..256 at a quarter of int64's memory; windows are widened per batch.
    return torch.tensor(ids, dtype=torch.int16)


def files_sha256(files: list[Path]) -> str:
    """sha256 of the files' bytes concatenated in order (``cat FILES | sha256sum``)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def windows(stream: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Rows of CONTEXT consecutive tokens beginning at each of ``starts``."""
    return stream[starts[:, None] + torch.arange(CONTEXT)].long()


def lr_factor(step: int) -> float:
    """Linear warmup, then cosine decay from the peak to MIN_LR_RATIO of it."""
    if step < WARMUP_STEPS:
        return (step + 1) / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, STEPS - WARMUP_STEPS)
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module) -> torch.optim.AdamW:
    # Decay the matrices (the tied embedding included, as in GPT-2 practice) but not the
    # biases and LayerNorm gains: shrinking those shifts activations without regularising.
    params = list(model.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=PEAK_LR,
        betas=(0.9, 0.95),
    )


@torch.no_grad()
def held_out_loss(model: GPT2LMHeadModel, stream: torch.Tensor) -> float:
    """Mean cross-entropy in nats per predicted byte over fixed, evenly spaced windows."""
    starts = torch.linspace(0, len(stream) - CONTEXT, EVAL_WINDOWS).long()
    total = 0.0
    for batch in windows(stream, starts).split(BATCH):
        # .loss is the mean over the batch; every window predicts CONTEXT - 1 bytes, so
        # weighting by rows gives the exact mean over all windows.
        total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
    return total / EVAL_WINDOWS


def train(out_dir: Path) -> None:
    started = time.perf_counter()
    set_seed(SEED)  # Seeds Python's random, numpy and torch.
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = corpus_files(stdlib)
    held_out_files = files[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY]
    train_files = [path for path in files if path not in held_out_files]
    train_stream = token_stream(train_files)
    held_out_stream = token_stream(held_out_files)
    log.info("python %s, stdlib %s", platform.python_version(), stdlib)
    log.info(
        "corpus: %d files; train %d files, %d tokens; held-out %d files, %d tokens "
        "(a token per byte plus a separator per file)",
        len(files),
        len(train_files),
        len(train_stream),
        len(held_out_files),
        len(held_out_stream),
    )
    corpus_sha = files_sha256(files)
    log.info("corpus sha256 (all files' bytes in sorted order): %s", corpus_sha)

    config = GPT2Config(
        vocab_size=VOCAB_SIZE,
        n_positions=CONTEXT,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        bos_token_id=EOF_ID,
        eos_token_id=EOF_ID,
        # No dropout: the run sees about two thirds of one epoch, so there is no
        # overfitting to guard against, and what the simulator runs is the plain network.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    log.info("config: %s", json.dumps(config.to_diff_dict(), sort_keys=True))
    log.info("parameters: %d", model.num_parameters())
    log.info(
        "training: %d steps x %d windows x %d bytes, AdamW peak lr %g, warmup %d, %d threads",
        STEPS,
        BATCH,
        CONTEXT,
        PEAK_LR,
        WARMUP_STEPS,
        THREADS,
    )

    optimizer = make_optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    # A generator of its own, so the windows drawn do not depend on any other use of
    # torch's global random state (such as weight initialisation).
    sampler = torch.Generator().manual_seed(SEED)
    train_started = time.perf_counter()
    for step in range(STEPS):
        starts = torch.randint(0, len(train_stream) - CONTEXT, (BATCH,), generator=sampler)
        batch = windows(train_stream, starts)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        if step % LOG_EVERY == 0 or step == STEPS - 1:
            log.info(
                "step %5d  loss %.4f  lr %.2e  %.1f s",
                step,
                loss.item(),
                scheduler.get_last_lr()[0],
                time.perf_counter() - train_started,
            )
    train_seconds = time.perf_counter() - train_started

    model.eval()
    eval_loss = held_out_loss(model, held_out_stream)
    log.info(
        "held-out loss %.4f nats/byte, perplexity %.3f (uniform: %.4f)",
        eval_loss,
        math.exp(eval_loss),
        math.log(VOCAB_SIZE),
    )

    with torch.no_grad():
        prompt = torch.tensor([encode(SAMPLE_PROMPT)])
        generated = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=SAMPLE_BYTES,
            do_sample=False,
            pad_token_id=EOF_ID,
        )
    log.info("greedy sample from %r:\n%s", SAMPLE_PROMPT, decode(generated[0].tolist()))

    model.save_pretrained(out_dir, safe_serialization=True)
    manifest = {
        "python": platform.python_version(),
        "stdlib": str(stdlib),
        "sha256": corpus_sha,
        "sha256_of": "all files' bytes concatenated in sorted path order, train and held-out",
        "train": [
            {"path": path.relative_to(stdlib).as_posix(), "bytes": path.stat().st_size}
            for path in train_files
        ],
        "held_out": [
            {"path": path.relative_to(stdlib).as_posix(), "bytes": path.stat().st_size}
            for path in held_out_files
        ],
    }
    (out_dir / "corpus.json").write_text(json.dumps(manifest, indent=1) + "\n")
    # A sample of the held-out text ships with the weights, so the registered model
    # (sim/cli/models.py: gpt2-stdlib) takes its inputs from text it never saw, the same
    # bytes on every machine whatever its standard library.
    sample = b"".join(path.read_bytes() for path in held_out_files)[:HELD_OUT_SAMPLE_BYTES]
    (out_dir / "heldout.txt").write_bytes(sample)
    log.info(
        "training %.1f s, total wall time %.1f s",
        train_seconds,
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[
            logging.StreamHandler(sys.stdout),
            logging.FileHandler(args.out_dir / "train.log", mode="w"),
        ],
    )
    # The checkpoint writer's progress bar would clutter train.log's stdout copy.
    hf_logging.disable_progress_bar()
    train(args.out_dir)


if __name__ == "__main__":
    main()
