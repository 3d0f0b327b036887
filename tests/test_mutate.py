"""Mutation testing (verif/mutate.py): the mutants found on the syntax trees of rtl/, the
sample and the report, without RTL builds; one mutant end to end (marked rtl)."""

from collections import Counter
from pathlib import Path

import pytest

from verif import mutate

# A module with one site of every operator, a declared width (not mutated) and an
# assertion section (not mutated).
SNIPPET = """module m(input logic a, b, output logic y, output logic [7:0] q);
  logic [7:0] x;
  logic wr_en_d, done_o;
  always_comb begin
    wr_en_d = a && b;
    done_o = 1'b0;
    if (a < b) q = b ? x[3:1] : 8'd5;
    else q = x - 16;
    y = !a;
  end
  // ------------------------------------------------------------------ assertions
  assign z = a < b;
endmodule
"""


@pytest.fixture(scope="module")
def mutants() -> list[mutate.Mutant]:
    return mutate.all_mutants()


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    return {f: (mutate.ROOT / f).read_bytes() for f in mutate.mutated_files()}


def test_every_operator_does_what_it_says():
    found = mutate._Finder("rtl/snippet.sv", SNIPPET.encode()).mutants()
    got = {(m.operator, m.original, m.replacement) for m in found}
    expected = {
        ("relational", "a < b", "a <= b"),
        ("arithmetic", "x - 16", "x + 16"),
        ("constant", "16", "17"),
        ("constant", "16", "15"),
        ("constant", "8'd5", "8'd4"),
        ("boolean", "a && b", "a"),
        ("boolean", "a && b", "b"),
        ("boolean", "!a", "a"),
        ("boolean", "a < b", "!(a < b)"),
        ("mux", "b ? x[3:1] : 8'd5", "b ? 8'd5 : x[3:1]"),
        ("stuck", "wr_en_d = a && b", "wr_en_d = '0"),
        ("stuck", "wr_en_d = a && b", "wr_en_d = '1"),
        ("stuck", "done_o = 1'b0", "done_o = '1"),  # stuck at 0 is the same assignment
        ("slice", "x[3:1]", "x[2:1]"),
        ("slice", "x[3:1]", "x[3:2]"),
    }
    assert got == expected
    assertions = SNIPPET.index("// ------")
    assert all(m.end <= assertions for m in found)
    for m in found:  # the line is the line of the range's first byte
        assert SNIPPET.encode()[: m.start].count(b"\n") + 1 == m.line


def test_the_sample_is_reproducible(mutants):
    first = mutate.sample(7, 120, mutants)
    again = mutate.sample(7, 120, mutate.all_mutants())
    assert [m.id for m in first] == [m.id for m in again]
    assert len({m.id for m in first}) == len(first) == 120
    assert [m.id for m in mutate.sample(8, 120, mutants)] != [m.id for m in first]


def test_every_module_gets_its_share(mutants):
    picked = mutate.sample(0, mutate.DEFAULT_MUTANTS, mutants)
    assert len(picked) == mutate.DEFAULT_MUTANTS
    per_file = Counter(m.file for m in picked)
    sites = Counter(m.file for m in mutants)
    assert set(sites) == set(mutate.mutated_files()), "every rtl/ source has mutants"
    for file, n in sites.items():
        assert per_file[file] >= min(mutate.MIN_PER_FILE, n), file
    # The large files get more than the minimum, in proportion.
    assert per_file["rtl/loom_dma.sv"] > 2 * mutate.MIN_PER_FILE


def test_every_operator_class_appears(mutants):
    assert {m.operator for m in mutants} == set(mutate.OPERATORS)
    assert {m.operator for m in mutate.sample(0, 60, mutants)} == set(mutate.OPERATORS)


def _excluded_spans(source: bytes) -> list[tuple[int, int, str]]:
    """Assertion sections, LOOM_FAULT_INJECT blocks and comments, found line by line
    (independently of the engine, which uses the syntax tree)."""
    spans, at, block = [], 0, None
    for line in source.splitlines(keepends=True):
        text = line.decode()
        end = at + len(line)
        if "------ assertions" in text:
            block = (at, "assertions")
        elif text.startswith("endmodule") and block and block[1] == "assertions":
            spans.append((block[0], at, "assertions"))
            block = None
        elif text.startswith("`ifdef LOOM_FAULT_INJECT"):
            block = (at, "fault injection")
        elif text.startswith(("`else", "`endif")) and block and block[1] == "fault injection":
            spans.append((block[0], end, "fault injection"))
            block = None
        if "//" in text:
            spans.append((at + text.index("//"), end, "comment"))
        if "/*" in text:
            spans.append((at + text.index("/*"), at + text.index("*/") + 2, "comment"))
        at = end
    return spans


def test_no_mutant_in_assertions_fault_injection_or_comments(mutants, sources):
    spans = {f: _excluded_spans(s) for f, s in sources.items()}
    assert {kind for f in spans for *_, kind in spans[f]} == {
        "assertions",
        "fault injection",
        "comment",
    }
    for m in mutants:
        for start, end, kind in spans[m.file]:
            assert not (start < m.end and m.start < end), f"{m.id} in {kind}: {m.original}"
        assert sources[m.file][m.start : m.end] == m.original.encode()


def test_every_mutated_file_parses(mutants, sources):
    for m in mutants:
        tree = mutate.parse(m.apply(sources[m.file]).decode(), Path(m.file).name)
        assert not mutate.syntax_errors(tree), f"{m.id}: {m.original} -> {m.replacement}"


def test_a_mutant_changes_exactly_its_range(mutants, sources):
    for m in mutants:
        src = sources[m.file]
        out = m.apply(src)
        tail = len(src) - m.end
        assert out[: m.start] == src[: m.start]
        assert out[len(out) - tail :] == src[m.end :]
        assert out[m.start : len(out) - tail] == m.replacement.encode() != m.original.encode()
        assert mutate.Mutant.from_record(m.record()) == m


def _result(status, killed_by="", line=1, original="a", replacement="b", operator="constant"):
    return {
        "id": f"x-{line}",
        "file": "rtl/loom_x.sv",
        "line": line,
        "original": original,
        "replacement": replacement,
        "operator": operator,
        "description": "d",
        "status": status,
        "killed_by": killed_by,
        "detail": "",
        "build_s": 30.0,
        "fuzz_s": 10.0,
        "pytest_s": None if status != "survived" else 100.0,
    }


def test_report_counts_and_claims():
    results = [
        _result("killed", "fuzz", line=1),
        _result("killed", "tests/test_faults.py::test_rtl_bus_error", line=2),
        _result("survived", line=3),
        _result("survived", line=4, original="x", replacement="y"),
        _result("stillborn", line=5),
    ]
    claims = [{"file": "rtl/loom_x.sv", "line": 4, "original": "x", "replacement": "y",
               "reason": "the value is never read"}]  # fmt: skip
    rep = mutate.summarize(results, claims)
    total = rep["total"]
    counts = {k: total[k] for k in ("killed", "survived", "equivalent", "stillborn")}
    assert counts == {"killed": 2, "survived": 1, "equivalent": 1, "stillborn": 1}
    assert total["score"] == pytest.approx(66.7)
    assert [r["line"] for r in rep["survivors"]] == [3]
    assert rep["killed_by"] == {"fuzz": 1, "tests/test_faults.py::test_rtl_bus_error": 1}
    assert rep["median_seconds"]["build"] == 30.0
    text = mutate.markdown(rep)
    assert "rtl/loom_x.sv:3" in text and "the value is never read" in text


def test_the_equivalence_claims_name_their_mutant():
    for claim in mutate.load_claims():
        assert {"file", "line", "original", "replacement", "reason"} <= set(claim)


def test_the_equivalence_claims_point_at_their_code():
    """A claim is matched by line number: an edit above it moves the code, and a claim
    left behind would silently stop matching its mutant (or match another)."""
    for claim in mutate.load_claims():
        lines = (mutate.ROOT / claim["file"]).read_text().splitlines()
        assert claim["original"] in lines[claim["line"] - 1], (
            f"{claim['file']}:{claim['line']} no longer holds {claim['original']!r}:"
            " move the claim with its code"
        )


def test_list_prints_the_sample(capsys):
    assert mutate.main(["list", "--seed", "1", "-n", "30"]) == 0
    out = capsys.readouterr().out
    assert "30 of " in out and "rtl/loom_vpu.sv:" in out


@pytest.mark.rtl
def test_a_stuck_vector_unit_write_enable_is_killed(mutants, sources, tmp_path):
    """The vector unit's ACC write enable stuck at 0: the first program whose vector
    instruction writes ACC diverges from the ISA model."""
    src = sources["rtl/loom_vpu.sv"].decode().splitlines()
    m = next(
        m
        for m in mutants
        if m.file == "rtl/loom_vpu.sv"
        and m.replacement == "mem.acc.wr_en = '0"
        and "op_q.dst_acc" in src[m.line - 2]
    )
    r = mutate.run_mutant(m.record(), out_dir=tmp_path, fuzz_programs=20, tests=False)
    assert (r["status"], r["killed_by"]) == ("killed", "fuzz"), r["detail"]
    assert r["build_s"] > 0 and r["fuzz_s"] > 0
    assert (tmp_path / m.id / "result.json").exists()
    digest = mutate.overlay_digest(m.apply(sources[m.file]))
    assert not list(mutate.BUILD_ROOT.glob(f"*_ovl-{digest}*")), "its build is deleted"
