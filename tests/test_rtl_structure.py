"""Structure of the RTL, read from pyslang's syntax trees: every module has an assertion
section at its bottom (rtl/loom_assert.svh), and every register of a block with the
asynchronous reset gets a reset value, which is how a two-state simulator (Verilator)
keeps the promise "no X after reset" that ASSERT_KNOWN checks on four-state ones."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from pyslang import syntax

from sim.rtl import build as rtl_build

K = syntax.SyntaxKind
MODULE_FILES = [s for s in rtl_build.CORE_SOURCES if not s.endswith("_pkg.sv")]


@functools.cache  # nodes point into their tree: it must outlive every node we hold
def _tree(name: str):
    tree = syntax.SyntaxTree.fromFile(str(rtl_build.RTL_DIR / name))
    errors = [d for d in tree.diagnostics if d.isError()]
    assert not errors, f"{name}: {len(errors)} syntax errors"
    return tree


def _walk(node):
    yield node
    for child in node:
        if isinstance(child, syntax.SyntaxNode):
            yield from _walk(child)


def _members(name: str):
    (module,) = [n for n in _walk(_tree(name).root) if n.kind == K.ModuleDeclaration]
    return list(module.members)


ASSERTION_KINDS = {K.ConcurrentAssertionMember, K.ImmediateAssertionMember}


@pytest.mark.parametrize("name", MODULE_FILES)
def test_every_module_ends_with_its_assertions(name):
    members = _members(name)
    kinds = [m.kind for m in members]
    asserts = [i for i, k in enumerate(kinds) if k in ASSERTION_KINDS]
    assert len(asserts) >= 2, f"{name}: {len(asserts)} assertions"
    # The section is at the bottom: after the registers (the last always_ff) and the
    # instances; only declarations, assigns and the logic the assertions read between.
    last_ff = max((i for i, k in enumerate(kinds) if k == K.AlwaysFFBlock), default=-1)
    last_inst = max((i for i, k in enumerate(kinds) if k == K.HierarchyInstantiation), default=-1)
    assert asserts[0] > max(last_ff, last_inst), f"{name}: assertions before the registers"
    text = (rtl_build.RTL_DIR / name).read_text()
    assert '`include "loom_assert.svh"' in text


def _lhs_root(expr) -> str:
    """The register an assignment target names: a in a, a[i], a.f, a[i][j].f (pyslang
    parses these as names whose first token is the register's identifier)."""
    return expr.getFirstToken().valueText


def _assigned(stmt) -> set[str]:
    return {_lhs_root(n.left) for n in _walk(stmt) if n.kind == K.NonblockingAssignmentExpression}


def _reset_blocks(name: str):
    """(reset branch, else branch) of every always_ff clocked with negedge rst_ni."""
    for ff in (m for m in _members(name) if m.kind == K.AlwaysFFBlock):
        timed = ff.statement
        if "negedge rst_ni" not in str(timed.timingControl):
            continue
        body = timed.statement
        if body.kind == K.SequentialBlockStatement:
            (body,) = list(body.items)
        assert body.kind == K.ConditionalStatement, f"{name}: reset block is not if/else"
        assert str(body.predicate).strip().replace(" ", "") == "!rst_ni", str(body.predicate)
        yield body.statement, body.elseClause.clause


@pytest.mark.parametrize("name", MODULE_FILES)
def test_every_register_has_a_reset_value(name):
    blocks = list(_reset_blocks(name))
    n_ff = sum(m.kind == K.AlwaysFFBlock for m in _members(name))
    if name == "loom_sram.sv":  # memory: no reset port (the contents are data)
        assert not blocks
        return
    assert len(blocks) == n_ff, f"{name}: an always_ff without the asynchronous reset"
    for reset, run in blocks:
        missing = _assigned(run) - _assigned(reset)
        assert not missing, f"{name}: registers without a reset value: {sorted(missing)}"


def test_the_reset_check_sees_a_register_without_reset(tmp_path):
    """The check above is not vacuous: a register dropped from the reset branch is found."""
    src = (rtl_build.RTL_DIR / "loom_csr.sv").read_text()
    edited = src.replace("      r_resp_q <= RespOkay;\n    end else begin", "    end else begin", 1)
    assert edited != src
    path = tmp_path / "loom_csr.sv"
    path.write_text(edited)
    tree = syntax.SyntaxTree.fromFile(str(path))
    (module,) = [n for n in _walk(tree.root) if n.kind == K.ModuleDeclaration]
    (ff,) = [m for m in module.members if m.kind == K.AlwaysFFBlock]
    (body,) = list(ff.statement.statement.items)
    assert _assigned(body.elseClause.clause) - _assigned(body.statement) == {"r_resp_q"}
    del body, ff, module, tree


def test_assertion_failures_are_named_from_the_source():
    """A failure reported at the last line of a multi-line ASSERT, or at a unique case,
    is named by the macro's first argument / as a unique case, with its module."""
    from sim.rtl.backend import assertion_site

    path = rtl_build.RTL_DIR / "loom_vpu.sv"
    lines = path.read_text().splitlines()
    start = next(i for i, t in enumerate(lines, 1) if "`ASSERT(AccMaskIsChunk" in t)
    assert assertion_site(str(path), start + 1) == (
        "AccMaskIsChunk",
        "loom_vpu",
        f"rtl/loom_vpu.sv:{start}",
    )
    case = next(i for i, t in enumerate(lines, 1) if "unique case (op_q.op)" in t)
    assert assertion_site(str(path), case)[:2] == ("unique case", "loom_vpu")
    # Verilator may name the file relative to where it ran.
    assert assertion_site("loom_vpu.sv", start)[0] == "AccMaskIsChunk"


def test_the_assertion_header_is_the_only_one():
    """Every module includes the one macro file; nobody defines ASSERT elsewhere."""
    for p in Path(rtl_build.RTL_DIR).glob("*.sv"):
        assert "`define ASSERT" not in p.read_text(), p
