"""`make bench-tolerances`: the error distributions the golden tolerances are derived
from (docs/golden.md), measured on the ISA model over a suite of models.

Per checkpoint: end to end (against PyTorch fp32 from the model inputs) and
follow-actual (against golden.reference: the layer from the device's own inputs under
the device's numerics; the worst of its targets). Per kind: the worst value of each
metric over the suite, and, for the follow-actual check, the smallest value the error
classes the checks must reject produce (the smallest-magnitude 0.5% of elements zeroed,
the same elements sign-flipped, one row shifted by one column). Writes
bench/tolerances.json and bench/tolerances.md; golden/metrics.py's thresholds quote
them.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

import compiler
import sim
from golden import capture, compare, reference
from golden.errors import ERROR_CLASSES
from sim.cli.models import HF_FAMILIES, build

OUT = Path(__file__).resolve().parent
METRICS = ("rel_l2", "far_fraction", "norm_max_abs", "cosine")


# (model, build options, hardware config). Real sizes are in the suite because their
# longer rows and sequences flip more bf16 roundings of intermediate products (attention's
# P, an MLP's hidden activations) between the device and the reference, which the tiny
# models do not show.
SUITE = [
    ("gpt2-tiny", {}, None),
    ("gpt2-tiny", {"batch": 2, "tokens": 16}, None),
    ("mlp", {}, None),
    ("gpt2", {}, None),
    *((name, {"tokens": 12}, None) for name in HF_FAMILIES if name.endswith(("-tiny", "-odd"))),
    ("gpt-neox", {}, None),
    ("bert", {}, None),
    ("vit", {}, None),
    ("llama", {}, "server"),  # 2.2 GiB of weights: the 4 GiB core
]


def suite() -> list[tuple[str, object, tuple, dict, str | None]]:
    models = []
    for name, options, hw in SUITE:
        spec = build(name, **options)
        label = name + "".join(f" {k}={v}" for k, v in options.items())
        label += f" hw={hw}" if hw else ""
        models.append((label, spec.model, spec.inputs, spec.kwargs, hw))
    return models


def measure(label, model, inputs, kwargs, hw=None) -> list[dict]:
    program = compiler.compile(model, inputs, kwargs=kwargs, hw=hw)
    result = sim.run(program, inputs, backend="ref", check=False)
    golden = capture(program.graph, inputs)
    rows = []
    for layer in program.layers:
        got = result.checkpoints[layer["id"]]
        e2e = compare(golden[layer["node"]], got["output"])
        checked = list(reference.targets(program, layer, result.checkpoints))
        follow = [compare(e, a) for _, e, a in checked]
        _, expected, actual = checked[0]  # the layer's output
        # An injection that changes nothing (zeroing a ReLU's zeros) is no error: left out.
        errors = {}
        for name, inject in ERROR_CLASSES.items():
            wrong = inject(actual)
            if not torch.equal(wrong, actual):
                errors[name] = compare(expected, wrong)
        rows.append(
            {
                "model": label,
                "path": layer["path"],
                "kind": layer["kind"],
                "elements": got["output"].numel(),
                "e2e": e2e,
                "follow": worst(follow),
                "errors": errors,
            }
        )
    return rows


def worst(metrics: list[dict]) -> dict:
    out = {}
    for key in METRICS:
        values = [m[key] for m in metrics]
        out[key] = min(values) if key == "cosine" else max(values)
    return out


def summarise(rows: list[dict]) -> dict:
    kinds = {}
    for kind in sorted({r["kind"] for r in rows}):
        mine = [r for r in rows if r["kind"] == kind]
        kinds[kind] = {
            "checkpoints": len(mine),
            "e2e": worst([r["e2e"] for r in mine]),
            "follow": worst([r["follow"] for r in mine]),
            "errors": {
                name: {
                    "rel_l2": min(r["errors"][name]["rel_l2"] for r in hit),
                    "far_fraction": min(r["errors"][name]["far_fraction"] for r in hit),
                }
                for name in ERROR_CLASSES
                if (hit := [r for r in mine if name in r["errors"]])
            },
        }
    return kinds


def main() -> None:
    rows = []
    for label, model, inputs, kwargs, hw in suite():
        rows += measure(label, model, inputs, kwargs, hw)
        print(f"{label}: {len(rows)} checkpoints so far", flush=True)
    kinds = summarise(rows)
    machine = {"torch": torch.__version__, "python": platform.python_version()}
    models = sorted({r["model"] for r in rows})
    (OUT / "tolerances.json").write_text(
        json.dumps({"machine": machine, "models": models, "kinds": kinds, "rows": rows}, indent=1)
    )
    md = [
        f"Measured by `make bench-tolerances` on the ISA model over {len(rows)} checkpoints"
        f" of {len(models)} models: {', '.join(models)}.",
        "",
        "Worst legitimate error per kind (follow-actual against golden.reference; end to end"
        " against PyTorch fp32), and the smallest follow-actual error each error class makes:",
        "",
        "| kind | checkpoints | follow rel L2 | follow far | e2e rel L2 | e2e norm max abs |"
        " e2e cosine | " + " | ".join(f"{n}: rel L2 / far" for n in ERROR_CLASSES) + " |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(ERROR_CLASSES),
    ]
    for kind, k in kinds.items():
        f, e = k["follow"], k["e2e"]
        errs = " | ".join(
            f"{k['errors'][n]['rel_l2']:.1e} / {k['errors'][n]['far_fraction']:.2%}"
            if n in k["errors"]
            else "-"
            for n in ERROR_CLASSES
        )
        md.append(
            f"| {kind} | {k['checkpoints']} | {f['rel_l2']:.1e} | {f['far_fraction']:.3%} |"
            f" {e['rel_l2']:.1e} | {e['norm_max_abs']:.1e} | {e['cosine']:.7f} | {errs} |"
        )
    (OUT / "tolerances.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
