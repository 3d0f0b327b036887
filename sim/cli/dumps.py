"""Mismatch dumps: expected and actual tensors as .npz, and an error heatmap as .png.

The heatmap shows |actual - expected| over the tensor laid out as rows x last dimension
(max-pooled down to at most 512 x 512 pixels), black (no error) through red and yellow
to white (largest error); NaN/inf disagreements are drawn at full scale. Written with
numpy and zlib only, so the harness needs no plotting library.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np

from contract.lockstep import RegionKind
from testbench.lockstep import Divergence, as_floats

MAX_PIXELS = 512


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "tensor"


def error_map(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """|actual - expected| as a 2-D float array (NaN/inf mismatches as +inf)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    err = np.abs(a - e)
    special = ~(np.isfinite(a) & np.isfinite(e))
    err[special] = np.where((np.isnan(a) & np.isnan(e)) | (a == e), 0.0, np.inf)[special]
    if err.ndim == 0:
        err = err.reshape(1, 1)
    elif err.ndim == 1:
        err = err.reshape(1, -1)
    else:
        err = err.reshape(-1, err.shape[-1])
    return err


def _pool(err: np.ndarray) -> np.ndarray:
    """Max-pool to at most MAX_PIXELS per side, so one bad element stays visible."""
    rows, cols = err.shape
    fr, fc = -(-rows // MAX_PIXELS), -(-cols // MAX_PIXELS)
    if fr == 1 and fc == 1:
        return err
    pad = np.full((-(-rows // fr) * fr, -(-cols // fc) * fc), 0.0)
    pad[:rows, :cols] = err
    return pad.reshape(pad.shape[0] // fr, fr, pad.shape[1] // fc, fc).max(axis=(1, 3))


def heatmap_rgb(err: np.ndarray) -> np.ndarray:
    """[h, w, 3] uint8: black -> red -> yellow -> white with growing error."""
    err = _pool(err)
    finite = err[np.isfinite(err)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    x = np.where(np.isfinite(err), err / top, 1.0).clip(0, 1)
    rgb = np.stack([(3 * x).clip(0, 1), (3 * x - 1).clip(0, 1), (3 * x - 2).clip(0, 1)], -1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray, scale: tuple[int, int] = (1, 1)) -> None:
    """Minimal truecolor PNG writer (one IDAT, no filtering); scale = (rows, cols)
    pixel repeats."""
    rgb = rgb.repeat(scale[0], axis=0).repeat(scale[1], axis=1)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6))
    png += chunk(b"IEND", b"")
    path.write_bytes(png)


def save_mismatch(
    out_dir: Path, name: str, expected: np.ndarray, actual: np.ndarray, **extra
) -> dict[str, str]:
    """Write <name>.npz (expected, actual, extra arrays) and <name>.png (error heatmap);
    returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / safe_name(name)
    np.savez_compressed(stem.with_suffix(".npz"), expected=expected, actual=actual, **extra)
    rgb = heatmap_rgb(error_map(expected, actual))
    # Small or thin maps are magnified per axis (e.g. 8 tokens x 320 columns).
    scale = tuple(int(np.clip(256 // n, 1, 16)) for n in rgb.shape[:2])
    write_png(stem.with_suffix(".png"), rgb, scale)
    return {"npz": str(stem.with_suffix(".npz")), "png": str(stem.with_suffix(".png"))}


def dump_divergence(out_dir: Path, d: Divergence) -> dict | None:
    """The diverging instruction's region: the ISA model's values and the RTL's."""
    if d.expected is None or d.actual is None:
        return None
    bf16 = d.region.get("kind") == RegionKind.DRAM and d.region.get("esize") == 2
    return save_mismatch(
        out_dir / "mismatch",
        f"insn{d.insn_number}",
        as_floats(d.expected, bf16),
        as_floats(d.actual, bf16),
        expected_bits=d.expected,
        actual_bits=d.actual,
    )


def dump_failed_layers(out_dir: Path, program, result, golden) -> dict[int, dict]:
    """Expected (PyTorch, end to end) and actual tensors of every failing checkpoint."""
    files = {}
    by_id = {la["id"]: la for la in program.layers}
    for row in result.layers:
        got = result.checkpoints.get(row["id"])
        if row["status"] == "pass" or got is None:
            continue
        la = by_id[row["id"]]
        expected = golden[la["node"]].detach().float().numpy()
        actual = got["output"].detach().float().numpy()
        if expected.shape != actual.shape:
            continue
        files[row["id"]] = save_mismatch(
            out_dir / "mismatch", f"{row['id']:04d}_{row['path']}", expected, actual
        )
        row["dump"] = files[row["id"]]
    return files
