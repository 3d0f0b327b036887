"""Measure each special function's maximum error in ulp against float64, over its
whole input range: every STEP-th fp32 bit pattern (all signs, exponents and mantissa
regions), plus the range edges. Writes bench/special_functions.json and .md. The
float64 references are numpy's, and torch's float64 erf (numpy has none)."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from contract import numerics as nx

STEP = int(sys.argv[1]) if len(sys.argv) > 1 else 61
OUT = Path(__file__).resolve().parent


def ulp_error(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the fp32 ulp at the exact value."""
    ref = exact.astype(np.float32)
    ulp = np.spacing(np.abs(ref)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / ulp


FUNCS = {
    # name: (function, float64 reference, domain where the contract promises accuracy)
    "exp": (nx.exp, np.exp, lambda x: (x >= nx.EXP_LO) & (x <= nx.EXP_HI)),
    "recip": (
        nx.recip,
        lambda x: 1.0 / x,
        lambda x: (np.abs(x) >= 2.0**-126) & (np.abs(x) < 2.0**126),
    ),
    "rsqrt": (nx.rsqrt, lambda x: 1.0 / np.sqrt(x), lambda x: x >= 2.0**-126),
    "tanh": (nx.tanh, np.tanh, lambda x: np.isfinite(x)),
    "erf": (
        nx.erf,
        lambda x: torch.special.erf(torch.from_numpy(x)).numpy(),
        lambda x: np.isfinite(x),
    ),
}


def main() -> None:
    bits = np.arange(0, 2**32, STEP, dtype=np.uint64).astype(np.uint32)
    results = {}
    t0 = time.time()
    for name, (fn, ref, domain) in FUNCS.items():
        worst, worst_x, count = 0.0, 0.0, 0
        for chunk in np.array_split(bits, 64):
            x = chunk.view(np.float32)
            x = x[np.isfinite(x)]
            x = x[domain(x.astype(np.float64))]
            if not x.size:
                continue
            with np.errstate(all="ignore"):
                err = ulp_error(fn(x), ref(x.astype(np.float64)))
            i = int(np.argmax(err))
            count += x.size
            if err[i] > worst:
                worst, worst_x = float(err[i]), float(x[i])
        results[name] = {"max_ulp": round(worst, 3), "at": worst_x, "inputs": count}
        print(f"{name}: max {worst:.3f} ulp at x={worst_x!r} over {count} inputs", flush=True)
    meta = {
        "step": STEP,
        "seconds": round(time.time() - t0, 1),
        "machine": platform.machine(),
        "numpy": np.__version__,
    }
    (OUT / "special_functions.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    md = ["| function | max error (ulp) | at x | inputs checked |", "|---|---:|---:|---:|"]
    md += [f"| {k} | {v['max_ulp']} | {v['at']:.9g} | {v['inputs']} |" for k, v in results.items()]
    md.append(f"\nEvery {STEP}th fp32 bit pattern in each function's domain; {meta}.")
    (OUT / "special_functions.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
