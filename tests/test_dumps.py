"""Mismatch dumps (sim/cli/dumps.py): the tensors as .npz and a heatmap a person can read
on its own: expected, actual and |error| side by side, colorbars (log for the error),
axes in tensor coordinates, a title naming the instruction, layer and cycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colors
from PIL import Image

from contract.lockstep import Reason, RegionKind
from sim.cli import dumps
from testbench.lockstep import Divergence


def _layer_pair() -> tuple[np.ndarray, np.ndarray]:
    """[3, 40, 100] values with one large error, one NaN disagreement and rounding noise."""
    rng = np.random.default_rng(1)
    expected = rng.standard_normal((3, 40, 100)).astype(np.float32)
    actual = expected + (rng.standard_normal(expected.shape) * 1e-6).astype(np.float32)
    actual[1, 7, 55] += 2.0
    actual[2, 0, 0] = np.nan
    return expected, actual


def test_dump_writes_tensors_and_a_readable_figure(tmp_path):
    expected, actual = _layer_pair()
    files = dumps.save_mismatch(tmp_path, "blocks.1.mlp", expected, actual, title="layer 7")
    with np.load(files["npz"]) as z:
        assert np.array_equal(z["expected"], expected)
        assert np.isnan(z["actual"][2, 0, 0])
    with Image.open(files["png"]) as png:
        width, height = png.size
        pixels = np.asarray(png.convert("RGB"))
    assert width >= 900 and height >= 300  # three panels with colorbars, not a bare map
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # drawn, not blank
    # A dotted layer path keeps its last component (no suffix swapping: h.3.mlp vs h.3.attn).
    assert Path(files["png"]).name == "blocks.1.mlp.png"
    other = dumps.save_mismatch(tmp_path, "blocks.1.attn", expected, actual)
    assert other["npz"] != files["npz"]


def test_figure_panels_scales_axes_and_caption():
    expected, actual = _layer_pair()
    fig = dumps.heatmap_figure(expected, actual, "instruction 12: vadd ...\nlayer h.0, cycle 99")
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels[:2]] == ["expected", "actual"]
    value_images = [ax.images[0] for ax in panels[:2]]
    # Expected and actual share one colour scale; the error has its own, logarithmic.
    assert value_images[0].norm.vmin == value_images[1].norm.vmin
    error_image = panels[2].images[0]
    assert isinstance(error_image.norm, colors.LogNorm)
    assert error_image.norm.vmax == np.float32(2.0) or abs(error_image.norm.vmax - 2.0) < 1e-5
    assert len(fig.axes) == 6  # three panels, three colorbars
    # Tensor coordinates: rows are dims 0..1 flattened (3 x 40), columns dim 2.
    assert panels[0].get_xlim() == (-0.5, 99.5) and panels[0].get_ylim() == (119.5, -0.5)
    assert "dims 0..1" in panels[0].get_ylabel() and panels[0].get_xlabel() == "dim 2"
    caption = panels[2].get_title()
    assert "1 NaN/inf" in caption and "at [1, 7, 55]" in caption, caption
    assert "instruction 12" in fig._suptitle.get_text()


def test_large_maps_are_pooled_without_losing_the_bad_element():
    rows, cols = 5000, 3000
    expected = np.zeros((rows, cols), dtype=np.float32)
    actual = expected.copy()
    actual[4321, 1234] = 1.0
    err = dumps.error_map(expected, actual)
    pooled, block = dumps.pool(err, "max")
    assert max(pooled.shape) <= dumps.MAX_PIXELS and pooled.max() == 1.0
    fig = dumps.heatmap_figure(expected, actual, "big")
    panel = [ax for ax in fig.axes if ax.images][2]
    assert panel.get_xlim() == (-0.5, cols - 0.5)  # still element indices, not pixels
    assert f"pooled {block[0]}x{block[1]}" in fig._suptitle.get_text()
    assert "1 of 15,000,000" in panel.get_title() and "[4321, 1234]" in panel.get_title()


def test_divergence_dump_names_instruction_layer_and_cycle(tmp_path):
    words = np.arange(8 * 16, dtype=np.uint32).reshape(8, 16)
    good = np.float32(np.linspace(-1, 1, words.size)).reshape(words.shape).view(np.uint32)
    bad = good.copy()
    bad[3, 5] ^= 0x00400000
    d = Divergence(
        reason=Reason.VALUE,
        index=40,
        pc=41 * 32,
        expected_pc=41 * 32,
        cycle=12345,
        start_cycle=12300,
        disasm="vadd s[0x100] <- s[0x100], s[0x200] rows=8",
        region={"kind": RegionKind.SPAD, "addr": 0x100, "esize": 4, "space": "SPAD"},
        expected=good,
        actual=bad,
        layer="transformer.h.0.mlp",
    )
    files = dumps.dump_divergence(tmp_path, d)
    with np.load(files["npz"]) as z:
        assert np.array_equal(z["actual_bits"], bad)
    title = dumps.divergence_title(d)
    assert "instruction 41: vadd" in title and "transformer.h.0.mlp" in title
    assert "cycle 12,345" in title
    assert Path(files["png"]).stat().st_size > 10_000


def test_failing_layer_dump_names_layer_checkpoint_and_backend(tmp_path):
    """A real program on the ISA model with one checkpoint's value corrupted after the
    run: the dump of that layer is titled with its path, its CHECKPOINT's listing number
    and the backend, and holds PyTorch's value and the corrupted one."""
    import compiler
    import sim
    from golden import capture
    from sim.cli.models import build

    spec = build("mlp", tokens=4)
    program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
    golden = capture(program.graph, spec.inputs)
    result = sim.run(program, spec.inputs, backend="ref", golden=golden)
    row = result.layers[len(result.layers) // 2]
    got = result.checkpoints[row["id"]]["output"]
    got.view(-1)[3] += 1.0
    row.update(status="fail", reason="max_abs 1 > tolerance")
    files = dumps.dump_failed_layers(tmp_path, program, result, golden)
    assert list(files) == [row["id"]] and row["dump"] == files[row["id"]]
    with np.load(files[row["id"]]["npz"]) as z:
        assert z["actual"].reshape(-1)[3] - z["expected"].reshape(-1)[3] > 0.5
    number = next(pc for pc, layer in program.listing.checkpoints if layer == row["id"]) // 32
    fig_title = dumps.failed_layer_title(program, result, row, tuple(got.shape))
    assert row["path"] in fig_title and f"CHECKPOINT instruction {number}" in fig_title
    assert "vs ref (actual)" in fig_title and "max_abs 1 > tolerance" in fig_title
