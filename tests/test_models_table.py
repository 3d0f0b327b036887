"""docs/models.md against the compiler: the small models' compile-derived figures (ATen
ops and where each runs, CPU ops, device segments, transfers, compile notes) recompiled
and compared with the file, which `make models` writes (sim/cli/coverage.py). Times,
cycles and accuracy depend on the machine or the run and are not compared."""

import re

import pytest

from sim.cli import coverage
from sim.cli.models import MODELS


@pytest.fixture(scope="module")
def doc_text() -> str:
    assert coverage.DOC.exists(), f"{coverage.DOC} does not exist: run `make models`"
    return coverage.DOC.read_text()


@pytest.fixture(scope="module")
def fresh_facts(doc_text) -> dict:
    """The small models compiled now, each with the options its marker records."""
    doc = coverage.parse_doc(doc_text)
    facts = {}
    for name in coverage.small_models():
        entry = doc.get(name)
        options = entry.options if entry and entry.options else coverage.ModelOptions()
        facts[name] = (options, coverage.compile_facts(name, options))
    return facts


def test_small_models_cover_the_cheap_registry():
    small = coverage.small_models()
    assert {"gpt2-tiny", "mlp", "llama-tiny", "neox-tiny", "bert-tiny", "vit-tiny"} <= set(small)
    assert not {"gpt2", "llama", "gpt-neox", "bert", "vit"} & set(small)


def test_doc_is_up_to_date(doc_text, fresh_facts):
    problems = coverage.stale_parts(doc_text, fresh_facts)
    assert not problems, f"{coverage.STALE}\n" + "\n".join(problems)


def new_problems(edited: str, doc_text: str, facts: dict) -> list[str]:
    """What the check finds in the edited file that it does not find in the file itself
    (so these tests say what they test even while the file is stale)."""
    before = set(coverage.stale_parts(doc_text, facts))
    return [p for p in coverage.stale_parts(edited, facts) if p not in before]


def _edit_section(text: str, name: str, old: str, new: str) -> str:
    """text with the first `old` inside model `name`'s compiled block replaced."""
    block = coverage.parse_doc(text)[name].block
    assert old in block, (old, block)
    return text.replace(block, block.replace(old, new, 1))


def test_a_changed_op_count_is_stale(doc_text, fresh_facts):
    name = "gpt2-tiny"
    entry = coverage.parse_doc(doc_text)[name]
    count_cell = re.search(r"^\| `[^`]+` \| (\d+) \|", entry.block, re.M)
    assert count_cell, entry.block
    edited = _edit_section(
        doc_text,
        name,
        count_cell.group(0),
        count_cell.group(0).replace(f"| {count_cell[1]} |", f"| {int(count_cell[1]) + 1} |"),
    )
    problems = new_problems(edited, doc_text, fresh_facts)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{name}: compiled section differs: file has "), problems


def test_a_changed_table_cell_is_stale(doc_text, fresh_facts):
    name = "mlp"
    row = coverage.parse_doc(doc_text)[name].row
    cells = coverage.split_row(row)
    column = coverage.COLUMNS.index("CPU ops")
    cells[column] = str(int(cells[column]) + 1)
    edited = doc_text.replace(row, "| " + " | ".join(cells) + " |")
    problems = new_problems(edited, doc_text, fresh_facts)
    assert len(problems) == 1 and problems[0].startswith(f"{name}: CPU ops is "), problems


def _refreshed(doc_text: str, name: str, options, facts: dict) -> str:
    """doc_text with model `name`'s compiled block and compiled cells rendered from facts."""
    entry = coverage.parse_doc(doc_text)[name]
    cells = coverage.split_row(entry.row)
    for column, cell in coverage.compiled_cells(facts).items():
        cells[coverage.COLUMNS.index(column)] = cell
    block = coverage.render_compiled(name, options, facts)
    return doc_text.replace(entry.block, block).replace(entry.row, "| " + " | ".join(cells) + " |")


def test_a_compiler_change_is_stale(doc_text, fresh_facts):
    """The other direction: the compiler now puts an op on the CPU that the file has on
    the device."""
    name = "llama-tiny"
    options, facts = fresh_facts[name]
    fresh_doc = _refreshed(doc_text, name, options, facts)
    own = [
        p
        for p in coverage.stale_parts(fresh_doc, {name: (options, facts)})
        if p.startswith(f"{name}:")
    ]
    assert own == []
    op = next(iter(facts["ops"]))
    changed = facts | {
        "ops": facts["ops"] | {op: {"count": facts["ops"][op]["count"], "cpu": 1, "reasons": []}},
        "cpu_ops": sorted({*facts["cpu_ops"], op}),
    }
    problems = coverage.stale_parts(fresh_doc, {name: (options, changed)})
    assert any(p.startswith(f"{name}: compiled section differs: ") for p in problems), problems
    assert any(p.startswith(f"{name}: CPU ops is ") for p in problems), problems


def test_a_missing_model_is_stale(doc_text, fresh_facts):
    name = "bert-tiny"
    entry = coverage.parse_doc(doc_text)[name]
    edited = doc_text.replace(entry.row + "\n", "").replace(entry.section, "")
    assert name in MODELS
    assert f"{name}: not in the file" in new_problems(edited, doc_text, fresh_facts)


def test_every_registered_model_has_a_row_and_section(doc_text):
    doc = coverage.parse_doc(doc_text)
    for name in MODELS:
        assert name in doc and doc[name].row and doc[name].block, f"{name}: {coverage.STALE}"


def test_layers_option_round_trips():
    options = coverage.ModelOptions(layers=3, tokens=16, seed=2, hw="small")
    assert coverage.ModelOptions.from_label(options.label()) == options
    assert coverage.ModelOptions.from_label(coverage.ModelOptions().label()) == (
        coverage.ModelOptions()
    )
    assert coverage.parse_layers("4 llama=2,gpt2=6") == (4, {"llama": 2, "gpt2": 6})
    with pytest.raises(ValueError):
        coverage.parse_layers("llama=0")
