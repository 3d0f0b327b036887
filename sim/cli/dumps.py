"""Mismatch dumps: expected and actual tensors as .npz, and a heatmap figure as .png.

The figure (matplotlib) shows three panels side by side over the tensor laid out as rows
x last dimension: the expected values, the actual values (one shared colour scale, with
its colorbar) and |actual - expected| on a log colour scale with its own colorbar. NaN or
infinite disagreements are drawn in the error panel's "over" colour and counted in the
caption; the largest finite error is ringed. Axes are in tensor coordinates (element
indices, whatever the pixel count), and the title names the instruction, the layer and
the cycle. Maps larger than MAX_PIXELS a side are pooled: the error by max (one bad
element stays visible), the values by mean.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from contract.isa import INSN_BYTES
from contract.lockstep import RegionKind
from testbench.lockstep import Divergence, as_floats

# Panels are drawn about 300-450 pixels a side: a map pooled to that keeps every bad
# element on screen (matplotlib would otherwise resample and may drop it).
MAX_PIXELS = 320


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "tensor"


def as_rows(values: np.ndarray) -> np.ndarray:
    """Any tensor as a 2-D [rows, last dimension] array (a scalar is 1 x 1)."""
    v = np.asarray(values)
    if v.ndim == 0:
        return v.reshape(1, 1)
    if v.ndim == 1:
        return v.reshape(1, -1)
    return v.reshape(-1, v.shape[-1])


def error_map(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """|actual - expected| as a 2-D float array (NaN/inf mismatches as +inf)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - e)
    special = ~(np.isfinite(a) & np.isfinite(e))
    err[special] = np.where((np.isnan(a) & np.isnan(e)) | (a == e), 0.0, np.inf)[special]
    return as_rows(err)


def pool(values: np.ndarray, how: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Pool a 2-D map to at most MAX_PIXELS per side by 'max' or 'mean' over blocks;
    returns the map and the block size (rows, cols)."""
    rows, cols = values.shape
    fr, fc = -(-rows // MAX_PIXELS), -(-cols // MAX_PIXELS)
    if fr == 1 and fc == 1:
        return values, (1, 1)
    fill = 0.0 if how == "max" else np.nan
    pad = np.full((-(-rows // fr) * fr, -(-cols // fc) * fc), fill)
    pad[:rows, :cols] = values
    blocks = pad.reshape(pad.shape[0] // fr, fr, pad.shape[1] // fc, fc)
    if how == "max":
        return blocks.max(axis=(1, 3)), (fr, fc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks (padding) stay NaN
        return np.nanmean(np.where(np.isfinite(blocks), blocks, np.nan), axis=(1, 3)), (fr, fc)


def _index_of(flat_row: int, col: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor index of element [row, col] of the rows x last-dimension layout."""
    if len(shape) <= 1:
        return (col,) if shape else ()
    return (*np.unravel_index(flat_row, shape[:-1]), col)


def _axis_labels(shape: tuple[int, ...], coordinates: tuple[str, str] | None) -> tuple[str, str]:
    if coordinates is not None:
        return coordinates
    if len(shape) <= 1:
        return "(one row)", f"index (of {shape[0] if shape else 1})"
    dims = " x ".join(str(n) for n in shape[:-1])
    row = f"row: dims 0..{len(shape) - 2} flattened ({dims})" if len(shape) > 2 else "dim 0"
    return row, f"dim {len(shape) - 1}"


def heatmap_figure(
    expected: np.ndarray,
    actual: np.ndarray,
    title: str,
    coordinates: tuple[str, str] | None = None,
):
    """The matplotlib Figure of expected | actual | |error| (see the module docstring).
    coordinates: (row axis, column axis) labels when the rows are not a tensor's leading
    dimensions (e.g. SRAM lines x lanes)."""
    from matplotlib import colormaps, colors
    from matplotlib.figure import Figure

    shape = tuple(np.shape(expected))
    exp2 = as_rows(np.asarray(expected, dtype=np.float64))
    act2 = as_rows(np.asarray(actual, dtype=np.float64))
    err = error_map(expected, actual)
    rows, cols = err.shape
    err_px, block = pool(err, "max")
    exp_px, _ = pool(exp2, "mean")
    act_px, _ = pool(act2, "mean")

    values = np.concatenate([exp2[np.isfinite(exp2)], act2[np.isfinite(act2)]])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    value_norm = colors.Normalize(lo, hi)
    finite_err = err[np.isfinite(err) & (err > 0)]
    special = int(np.isinf(err).sum())
    wrong = int((err > 0).sum())
    if finite_err.size:
        top = float(finite_err.max())
        # At least a decade, so that the largest error is bright even when it is the only
        # one; at most twelve, so that rounding noise does not wash out the scale.
        floor = min(max(float(finite_err.min()), top * 1e-12), top / 10)
        err_norm = colors.LogNorm(floor, top)
    else:
        err_norm = colors.LogNorm(1e-12, 1.0)
    # Masked (zero error) black, NaN/inf disagreements (over the scale) cyan.
    error_cmap = colormaps["inferno"].with_extremes(bad="black", over="cyan", under="black")

    # Width follows the aspect of the map, within limits a report page can show.
    aspect = np.clip(cols / max(rows, 1), 0.25, 8.0)
    panel_w = 4.2 if aspect >= 1 else 3.2
    height = float(np.clip(panel_w / aspect * 0.9 + 1.6, 3.4, 6.5))
    fig = Figure(figsize=(3 * panel_w + 1.2, height), dpi=110, layout="constrained")
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)  # element centres on integer coordinates
    row_label, col_label = _axis_labels(shape, coordinates)
    show = {"interpolation": "nearest", "aspect": "auto", "extent": extent}
    for ax, data, name in ((axes[0], exp_px, "expected"), (axes[1], act_px, "actual")):
        image = ax.imshow(data, cmap="viridis", norm=value_norm, **show)
        ax.set_title(name, fontsize=10)
        fig.colorbar(image, ax=ax)
    # Zero error is masked (log of 0); NaN/inf disagreements are drawn above the scale's
    # top, in the colormap's "over" colour.
    above = err_norm.vmax * 10
    masked = np.ma.masked_where(err_px <= 0, np.where(np.isinf(err_px), above, err_px))
    image = axes[2].imshow(masked, cmap=error_cmap, norm=err_norm, **show)
    bar = fig.colorbar(image, ax=axes[2], extend="max")
    bar.set_label("|actual - expected| (log)", fontsize=8)
    caption = f"|error|: {wrong:,} of {err.size:,} elements differ"
    if special:
        caption += f", {special:,} NaN/inf (cyan)"
    if finite_err.size:
        r, c = np.unravel_index(int(np.argmax(np.where(np.isfinite(err), err, -1))), err.shape)
        axes[2].plot(c, r, "o", ms=12, mfc="none", mec="white", mew=1.2)
        where = ", ".join(str(int(i)) for i in _index_of(int(r), int(c), shape))
        caption += f"; max {finite_err.max():.3g} at [{where}]"
    axes[2].set_title(caption, fontsize=8)
    for ax in axes:
        ax.set_xlabel(col_label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel(row_label, fontsize=8)
    if block != (1, 1):
        title += f"  (pooled {block[0]}x{block[1]} elements per pixel)"
    fig.suptitle(title, fontsize=10)
    return fig


def save_mismatch(
    out_dir: Path,
    name: str,
    expected: np.ndarray,
    actual: np.ndarray,
    title: str | None = None,
    coordinates: tuple[str, str] | None = None,
    **extra,
) -> dict[str, str]:
    """Write <name>.npz (expected, actual, extra arrays) and <name>.png (the heatmap
    figure, titled `title`); returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Not Path.with_suffix: layer paths hold dots ("h.3.mlp" and "h.3.attn" would collide).
    npz, png = (out_dir / f"{safe_name(name)}.{kind}" for kind in ("npz", "png"))
    np.savez_compressed(npz, expected=expected, actual=actual, **extra)
    heatmap_figure(expected, actual, title or name, coordinates).savefig(png)
    return {"npz": str(npz), "png": str(png)}


def divergence_title(d: Divergence) -> str:
    return (
        f"instruction {d.insn_number}: {d.disasm}\n"
        f"layer {d.layer or '-'}, cycle {d.cycle:,}: ISA model (expected) vs RTL (actual)"
    )


def dump_divergence(out_dir: Path, d: Divergence) -> dict | None:
    """The diverging instruction's region: the ISA model's values and the RTL's."""
    if d.expected is None or d.actual is None:
        return None
    dram = d.region.get("kind") == RegionKind.DRAM
    bf16 = dram and d.region.get("esize") == 2
    space = d.region.get("space", "DRAM" if dram else "SRAM")
    addr = d.region.get("addr", 0)
    coordinates = (f"{space} row (from {addr:#x})", "element in the row")
    return save_mismatch(
        out_dir / "mismatch",
        f"insn{d.insn_number}",
        as_floats(d.expected, bf16),
        as_floats(d.actual, bf16),
        title=divergence_title(d),
        coordinates=coordinates,
        expected_bits=d.expected,
        actual_bits=d.actual,
    )


def failed_layer_title(program, result, row: dict, shape: tuple[int, ...]) -> str:
    """Layer id, path and shape; its CHECKPOINT's listing number and (RTL) the cycle it
    retired; what was compared and why it failed."""
    where = [
        f"CHECKPOINT instruction {pc // INSN_BYTES}"
        for pc, layer in program.listing.checkpoints
        if layer == row["id"]
    ][:1]
    cycle = result.stats.get("checkpoint_cycles", {}).get(row["id"])
    if cycle is not None:
        where.append(f"cycle {cycle:,}")
    return (
        f"layer {row['id']} {row['path']} {shape}{': ' + ', '.join(where) if where else ''}\n"
        f"PyTorch end to end (expected) vs {result.stats.get('backend', 'device')} (actual):"
        f" {row.get('reason', 'outside tolerance')}"
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
            out_dir / "mismatch",
            f"{row['id']:04d}_{row['path']}",
            expected,
            actual,
            title=failed_layer_title(program, result, row, tuple(expected.shape)),
        )
        row["dump"] = files[row["id"]]
    return files
