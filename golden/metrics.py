"""Tensor comparison metrics and the per-kind pass thresholds (docs/golden.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Max distance in fp32 units in the last place (0 means bit-identical)."""
    ia = np.asarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    ib = np.asarray(b, dtype=np.float32).view(np.int32).astype(np.int64)
    # Map sign-magnitude to a monotonic integer line.
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return int(np.abs(ia - ib).max()) if ia.size else 0


def compare(expected: torch.Tensor, actual: torch.Tensor) -> dict:
    e = expected.detach().to(torch.float64).reshape(-1)
    a = actual.detach().to(torch.float64).reshape(-1)
    if e.shape != a.shape:
        return {"error": f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"}
    finite = torch.isfinite(e) & torch.isfinite(a)
    # Matching infinities, and NaN where NaN is expected, are agreements.
    same_special = (~torch.isfinite(e)) & ((e == a) | (torch.isnan(e) & torch.isnan(a)))
    mismatch_special = int((~finite & ~same_special).sum())
    d = (e - a).abs()[finite]
    ref_scale = float(e[finite].abs().max()) if finite.any() else 0.0
    max_abs = float(d.max()) if d.numel() else 0.0
    big = e[finite].abs() > 1e-3 * max(ref_scale, 1e-30)
    max_rel = float((d[big] / e[finite][big].abs()).max()) if big.any() else 0.0
    ef, af = e[finite], a[finite]
    denom = float(ef.norm() * af.norm())
    cosine = float((ef @ af) / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    return {
        "max_abs": max_abs,
        "max_rel": max_rel,
        "norm_max_abs": max_abs / ref_scale if ref_scale > 0 else max_abs,
        "cosine": cosine,
        "ulp": ulp_distance(expected.float().numpy(), actual.float().numpy()),
        "nonfinite_mismatch": mismatch_special,
    }


@dataclass(frozen=True)
class Tolerance:
    """Pass when 1 - cosine <= 1 - min_cosine and max|err| / max|ref| <= max_norm_abs."""

    min_cosine: float
    max_norm_abs: float

    def accepts(self, m: dict) -> bool:
        if "error" in m or m["nonfinite_mismatch"]:
            return False
        return m["cosine"] >= self.min_cosine and m["norm_max_abs"] <= self.max_norm_abs


# Follow-actual: the layer's own error, re-run on the device's inputs. Sources against
# fp32 PyTorch: bf16 rounding of matrix operands (2^-9 relative per operand, averaging
# out over k), the special functions (<= ~2 ulp), normalisation by multiplying by 1/C.
# Layers without a matrix product are near fp32-exact; ones with several get more room.
TOLERANCES: dict[str, Tolerance] = {
    "linear": Tolerance(0.9999, 0.02),
    "attention": Tolerance(0.9995, 0.03),
    "mlp": Tolerance(0.9995, 0.03),
    "block": Tolerance(0.9995, 0.03),
    "module": Tolerance(0.9995, 0.03),
    "norm": Tolerance(0.99999, 1e-4),
    "embedding": Tolerance(0.99999, 1e-6),
    "activation": Tolerance(0.99999, 1e-4),
}

# End to end: errors of every earlier layer arrive too, so one budget for all kinds.
END_TO_END = Tolerance(0.999, 0.05)


def tolerance_for(kind: str) -> Tolerance:
    return TOLERANCES.get(kind, TOLERANCES["module"])


# ---------------------------------------------------------------- summation order
FP32_UNIT_ROUNDOFF = 2.0**-24
FP32_MIN_SUBNORMAL = 2.0**-149


def reorder_bound(abs_terms_sum: np.ndarray, n_terms: int) -> np.ndarray:
    """How far two fp32 sums of the same n_terms terms may differ when only their order
    differs: each recursive sum is within (n - 1) u sum|x_i| of the exact one (u = 2^-24,
    Higham, Accuracy and Stability of Numerical Algorithms, 4.2), so the two are within
    twice that. abs_terms_sum is sum|x_i| per element (for MATMUL: sum_k |a_k b_k| plus
    |init|; the bf16 x bf16 products are exact in fp32 but in the subnormal range, which
    the per-term floor covers)."""
    n = max(n_terms, 1)
    return 2 * (n - 1) * FP32_UNIT_ROUNDOFF * np.asarray(abs_terms_sum, np.float64) + (
        2 * n * FP32_MIN_SUBNORMAL
    )


def beyond_reorder_bound(
    expected: np.ndarray, actual: np.ndarray, abs_terms_sum: np.ndarray, n_terms: int
) -> int:
    """Elements of `actual` farther from `expected` than summation order explains (NaN
    and infinities must match exactly)."""
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    special = ~(np.isfinite(e) & np.isfinite(a))
    same_special = special & ((e == a) | (np.isnan(e) & np.isnan(a)))
    with np.errstate(invalid="ignore"):
        far = np.abs(a - e) > reorder_bound(abs_terms_sum, n_terms)
    return int(np.sum((special & ~same_special) | (~special & far)))
