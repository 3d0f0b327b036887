"""The structured errors the golden checks exist to catch, as functions of a correct
tensor (bench/tolerances.py measures what each does to the metrics; tests/test_golden.py
proves every criterion rejects them): the signatures of lost small contributions or a
flush-to-zero bug, of a sign bug on small values, and of an off-by-one address.
Wrong accumulation precision needs the layer's operands: tests/test_golden.py recomputes
the linear layers that way."""

from __future__ import annotations

import torch

SMALL_FRACTION = 0.005  # the smallest-magnitude 0.5% of the elements


def _smallest(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1)
    n = max(1, round(SMALL_FRACTION * flat.numel()))
    return torch.argsort(flat.abs(), stable=True)[:n]


def zero_smallest(t: torch.Tensor) -> torch.Tensor:
    out = t.clone().reshape(-1)
    out[_smallest(t)] = 0.0
    return out.reshape(t.shape)


def flip_smallest(t: torch.Tensor) -> torch.Tensor:
    out = t.clone().reshape(-1)
    idx = _smallest(t)
    out[idx] = -out[idx]
    return out.reshape(t.shape)


def shift_row(t: torch.Tensor) -> torch.Tensor:
    """One row (the middle one, rows along the last dim) shifted by one column."""
    out = t.clone().reshape(-1, t.shape[-1] if t.dim() else 1)
    r = out.shape[0] // 2
    out[r] = torch.roll(out[r], 1)
    return out.reshape(t.shape)


ERROR_CLASSES = {
    "smallest 0.5% zeroed": zero_smallest,
    "smallest 0.5% sign-flipped": flip_smallest,
    "one row shifted": shift_row,
}
