"""Mutation testing of rtl/: how many small, plausible bugs in the RTL the fast RTL tier
(random programs in lockstep with the ISA model, then the directed RTL tests) finds.

A mutant is one edit of one rtl/ source: a byte range, its original text and the text
that replaces it. Mutants are found on pyslang's syntax tree of each file, not with
regular expressions: the tree knows that `<=` in `a <= b;` is a nonblocking assignment
and in `if (a <= b)` a comparison, that `[3:0]` in `logic [3:0] x` is a declared width
and in `x[3:0]` a slice, where an expression ends, and which tokens came out of a macro
(the assertion macros of loom_assert.svh). Each file is parsed on its own (syntax only,
no elaboration: loom_pkg is not needed), with rtl/ on the include path so that its
`include resolves. Every replacement is built from the original bytes, so comments and
layout survive, and a mutated file still parses (tests/test_mutate.py checks every one).

Operators (the classes of the report):

- relational  `<` <-> `<=`, `>` <-> `>=`, `==` <-> `!=` (off-by-one boundaries)
- arithmetic  `+` <-> `-`
- constant    an unsized integer +1 and -1 (`32` -> `33`, `31`); a based literal with its
              lowest bit flipped (`16'd1` -> `16'd0`, `1'b0` -> `1'b1`); `'0` <-> `'1`
              (not an index or a slice bound: slice changes those; not the whole
              right-hand side of an enable: stuck does)
- boolean     a term of `&&` or `||` dropped (`a && b` -> `a`, -> `b`), `!x` -> `x`, the
              condition of an `if` negated (`if (c)` -> `if (!(c))`)
- mux         the arms of `?:` swapped (`c ? a : b` -> `c ? b : a`)
- stuck       an assignment to an enable, valid, mask, start or done signal (the name,
              without its _o/_d/_q/_i suffix, ends in _en, valid, mask, _start, done, or
              is start) with its right-hand side replaced by `'0` and by `'1`
- slice       `x[a:b]` -> `x[a-1:b]` and `x[a:b+1]`; an index or a `+:` base +1 and -1

Not mutated: the assertion section of each module (from the line with "------
assertions" to endmodule; a mutated assertion tests nothing), the fault-injection code
(`ifdef LOOM_FAULT_INJECT: the preprocessor leaves it as disabled text, so it has no
syntax to mutate; an `else branch is product code and is mutated), comments, `initial`
blocks, typedefs, imports, module headers (ports, and parameter defaults that every
instance overrides), declared types and widths (a wider register is mostly equivalent,
a narrower one mostly a lint error) and the width of a cast. rtl/loom_pkg.sv is
generated and loom_assert.svh holds only the assertion macros: the files mutated are
sim/rtl/build.py's CORE_SOURCES.

Equivalent mutants: a change that leaves the text or the literal value the same (`'0`
for a right-hand side that is already zero) is not generated. A survivor that is
equivalent for a deeper reason is claimed in verif/mutate_equivalent.yaml (file, line,
original, replacement, reason); the report lists it as equivalent with that reason.

Sampling: a seeded sample of N mutants, stratified: every file gets a share proportional
to its mutants but at least MIN_PER_FILE (or all it has), and within a file one mutant
of each operator it has is taken before the rest is drawn at random. The same seed and
the same sources give the same sample.

Running one mutant (run_mutant: a plain function of a mutant record, returning a result
record, so that other schedulers can run the same jobs): the mutated file is written to
OUT/<id>/<file name> and the core built with LOOM_RTL_OVERLAY=OUT/<id> (sim/rtl/build.py:
the overlay replaces the rtl/ file of that name and gets a build directory of its own).
A mutant that does not build is stillborn. Then, stopping at the first failure: `python
-m verif fuzz` (K random programs), then pytest over the directed RTL tests
(TIER_TESTS, and the mutated file's own block test: BLOCK_TESTS). A failure or a timeout
kills the mutant; passing both, it survived. Its build directory is deleted and
OUT/<id>/result.json (and the logs) kept.

Score = killed / (killed + survived): stillborn mutants, claimed equivalents and errors
(a tier that could not run, the source changed since sampling) are not counted.

    python -m verif.mutate list [--seed S] [-n N] [--all]
    python -m verif.mutate run [--seed S] [-n N] [--jobs J] [--out DIR] [--only ID] [--bench]
    python -m verif.mutate report [DIR] [--bench]

`make mutate` runs the default sample; the report goes to OUT/report.{json,md} (and with
--bench to bench/mutation.{json,md}).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import pyslang
import yaml
from pyslang import syntax

from sim.rtl.build import BUILD_ROOT, CORE_SOURCES, COVERAGE_ENV, OVERLAY_ENV

ROOT = Path(__file__).resolve().parents[1]
RTL_DIR = ROOT / "rtl"
DEFAULT_OUT = ROOT / "build" / "mutate"
CLAIMS = Path(__file__).resolve().parent / "mutate_equivalent.yaml"
BENCH = ROOT / "bench" / "mutation"

OPERATORS = ("relational", "arithmetic", "constant", "boolean", "mux", "stuck", "slice")
DEFAULT_MUTANTS = 240
MIN_PER_FILE = 10
ASSERTION_MARKER = b"------ assertions"
# The directed RTL tests of the tier after the random programs.
TIER_TESTS = ("tests/test_rtl_programs.py", "tests/test_faults.py")
# And a file's own block test: the floating-point package is also checked function by
# function on its test bench (1.4 M vectors per function, every corner class), which
# reaches rounding paths no program's data does.
BLOCK_TESTS = {"rtl/loom_fp_pkg.sv": ("tests/test_rtl_fpu.py",)}
STATUSES = ("killed", "survived", "equivalent", "stillborn", "error")

K = syntax.SyntaxKind
RELATIONAL = {
    K.LessThanExpression: "<=",
    K.LessThanEqualExpression: "<",
    K.GreaterThanExpression: ">=",
    K.GreaterThanEqualExpression: ">",
    K.EqualityExpression: "!=",
    K.InequalityExpression: "==",
}
ARITHMETIC = {K.AddExpression: "-", K.SubtractExpression: "+"}
ASSIGNMENTS = (K.AssignmentExpression, K.NonblockingAssignmentExpression)
RANGE_SELECTS = (K.AscendingRangeSelect, K.DescendingRangeSelect)
# Subtrees with nothing to mutate (see the module docstring). Declared types are
# skipped by class (syntax.DataTypeSyntax), the width of a cast in _walk.
SKIPPED = {
    K.TypedefDeclaration,
    K.PackageImportDeclaration,
    K.ModuleHeader,
    K.InitialBlock,
    K.VariableDimension,
    K.FunctionPrototype,
    K.ConcurrentAssertionMember,
    K.ImmediateAssertStatement,
}
# Expressions that need no parentheses as the left operand of `+ 1`.
PRIMARY = {
    K.IdentifierName,
    K.IdentifierSelectName,
    K.ScopedName,
    K.ParenthesizedExpression,
    K.IntegerLiteralExpression,
    K.IntegerVectorExpression,
    K.InvocationExpression,
    K.ElementSelectExpression,
    K.MemberAccessExpression,
    K.CastExpression,
    K.ConcatenationExpression,
}
ENABLE_ENDINGS = ("_en", "valid", "mask", "_start", "done")
PORT_SUFFIXES = ("_o", "_i", "_d", "_q")
RADIX = {"b": 2, "o": 8, "d": 10, "h": 16}


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the repository: rtl/loom_vpu.sv
    start: int  # the byte range [start, end) of the original text in the file
    end: int
    original: str
    replacement: str
    operator: str
    line: int
    description: str
    context: str = ""  # the source line it starts on, for reading a report

    @property
    def id(self) -> str:
        """Stable for the same edit of the same source: module, line and a digest."""
        key = f"{self.file}:{self.start}:{self.end}:{self.replacement}".encode()
        stem = Path(self.file).stem.removeprefix("loom_")
        return f"{stem}-{self.line}-{hashlib.sha1(key).hexdigest()[:6]}"

    @property
    def module(self) -> str:
        return Path(self.file).stem

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]

    def record(self) -> dict:
        return {"id": self.id, **asdict(self)}

    @classmethod
    def from_record(cls, record: dict) -> Mutant:
        return cls(**{k: v for k, v in record.items() if k in cls.__dataclass_fields__})


def one_line(text: str, limit: int = 90) -> str:
    """A mutant's text for a report: whitespace collapsed, long text shortened."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ------------------------------------------------------------------ parsing
def parse(text: str, name: str) -> syntax.SyntaxTree:
    """One rtl/ file's syntax tree (its `include found in rtl/)."""
    sm = pyslang.SourceManager()
    sm.addUserDirectories(str(RTL_DIR))
    return syntax.SyntaxTree.fromText(text, sm, name, str(RTL_DIR / name))


def syntax_errors(tree: syntax.SyntaxTree) -> list[str]:
    errors = [d for d in tree.diagnostics if d.isError()]
    return [pyslang.DiagnosticEngine.reportAll(tree.sourceManager, errors)] if errors else []


def assertion_sections(source: bytes) -> list[tuple[int, int]]:
    """Byte ranges from the start of each "------ assertions" line to its endmodule."""
    sections, at = [], 0
    while (marker := source.find(ASSERTION_MARKER, at)) >= 0:
        start = source.rfind(b"\n", 0, marker) + 1
        end = source.find(b"endmodule", marker)
        end = len(source) if end < 0 else end
        sections.append((start, end))
        at = end
    return sections


class _Finder:
    """Every mutant of one file: a walk over its syntax tree, one handler per node kind."""

    def __init__(self, file: str, source: bytes):
        self.file = file
        self.source = source
        self.tree = parse(source.decode(), Path(file).name)
        if errors := syntax_errors(self.tree):
            raise ValueError(f"{file} does not parse:\n{errors[0]}")
        self.buffer = self.tree.root.getLastToken().location.buffer
        self.excluded = assertion_sections(source)
        self.found: dict[tuple[int, int, str], Mutant] = {}
        self.handlers = {
            **dict.fromkeys(RELATIONAL, self._relational),
            **dict.fromkeys(ARITHMETIC, self._arithmetic),
            K.IntegerLiteralExpression: self._integer,
            K.IntegerVectorExpression: self._based_literal,
            K.UnbasedUnsizedLiteralExpression: self._unbased_literal,
            K.LogicalAndExpression: self._drop_term,
            K.LogicalOrExpression: self._drop_term,
            K.UnaryLogicalNotExpression: self._drop_not,
            K.ConditionalStatement: self._negate_if,
            K.ConditionalExpression: self._swap_arms,
            **dict.fromkeys(ASSIGNMENTS, self._stuck),
            K.ElementSelect: self._slice,
        }

    def mutants(self) -> list[Mutant]:
        self._walk(self.tree.root)
        return sorted(self.found.values(), key=lambda m: (m.start, m.end, m.replacement))

    # -------------------------------------------------------------- tree helpers
    def _walk(self, node) -> None:
        if node.kind in SKIPPED or isinstance(node, syntax.DataTypeSyntax):
            return
        if node.kind == K.CastExpression:  # `32'(x)`: the width is a type, x an expression
            self._walk(node.right)
            return
        handler = self.handlers.get(node.kind)
        if handler is not None and self._mutable(node):
            handler(node)
        for child in node:
            if isinstance(child, syntax.SyntaxNode):
                self._walk(child)

    def _span(self, node) -> tuple[int, int]:
        if isinstance(node, pyslang.parsing.Token):
            return node.location.offset, node.location.offset + len(node.rawText)
        r = node.sourceRange
        return r.start.offset, r.end.offset

    def _mutable(self, node) -> bool:
        """In this file (not an included one, not a macro expansion), outside the
        assertion sections."""
        r = node.sourceRange
        if r.start.buffer != self.buffer or r.end.buffer != self.buffer:
            return False
        start, end = r.start.offset, r.end.offset
        return end > start and not any(s < end and start < e for s, e in self.excluded)

    def _text(self, node) -> str:
        start, end = self._span(node)
        return self.source[start:end].decode()

    def _add(self, node, replacement: str, operator: str, description: str) -> None:
        self._edit(node, [(node, replacement)], operator, description)

    def _edit(self, container, parts: list, operator: str, description: str) -> None:
        """A mutant spanning container (a node), with some of its nodes or tokens
        replaced: parts is [(node or token, new text)], disjoint."""
        start, end = self._span(container)
        new = self.source[start:end]
        for part, text in sorted(parts, key=lambda p: -self._span(p[0])[0]):
            s, e = self._span(part)
            new = new[: s - start] + text.encode() + new[e - start :]
        original = self.source[start:end].decode()
        if new.decode() == original:  # nothing changes: not a mutant
            return
        line = self.source.count(b"\n", 0, start) + 1
        first = self.source.rfind(b"\n", 0, start) + 1
        last = self.source.find(b"\n", start) % (len(self.source) + 1)  # -1: the end
        context = one_line(self.source[first:last].decode())
        m = Mutant(
            self.file, start, end, original, new.decode(), operator, line, description, context
        )
        self.found.setdefault((start, end, m.replacement), m)

    # -------------------------------------------------------------- operators
    def _relational(self, node) -> None:
        op = node.operatorToken
        new = RELATIONAL[node.kind]
        self._edit(node, [(op, new)], "relational", f"`{op.rawText}` -> `{new}`")

    def _arithmetic(self, node) -> None:
        op = node.operatorToken
        new = ARITHMETIC[node.kind]
        self._edit(node, [(op, new)], "arithmetic", f"`{op.rawText}` -> `{new}`")

    def _integer(self, node) -> None:
        digits = node.literal.rawText.replace("_", "")
        if not digits.isdigit() or self._belongs_to_another_operator(node):
            return
        value = int(digits)
        self._add(node, str(value + 1), "constant", "integer + 1")
        if value > 0:
            self._add(node, str(value - 1), "constant", "integer - 1")

    def _belongs_to_another_operator(self, node) -> bool:
        """An index, a slice bound or a part-select base (the slice operator's edit), or
        the whole right-hand side of an enable (the stuck operator's)."""
        parent = node.parent
        if parent.kind in (K.BitSelect, K.SimpleRangeSelect):
            return True
        if parent.kind in ASSIGNMENTS and _enable_name(parent) is not None:
            return self._span(parent.right) == self._span(node)
        return parent.kind in RANGE_SELECTS and self._span(parent.left) == self._span(node)

    def _based_literal(self, node) -> None:
        if self._belongs_to_another_operator(node):
            return
        # Flipping the lowest bit changes only the last digit in every base (in decimal
        # too: the last digit's parity is the number's), so the size, the base and the
        # digit grouping of the literal stay as written.
        value = node.value
        radix = RADIX.get(node.base.rawText[-1:].lower())
        raw = value.rawText
        last = max((i for i, c in enumerate(raw) if c != "_"), default=-1)
        if radix is None or last < 0 or raw[last].lower() not in "0123456789abcdef"[:radix]:
            return  # x, z or ? digits: no value to change
        digit = int(raw[last], radix) ^ 1
        new_digit = "0123456789abcdef"[digit]
        new_digit = new_digit.upper() if raw[last].isupper() else new_digit
        new = raw[:last] + new_digit + raw[last + 1 :]
        self._edit(node, [(value, new)], "constant", "lowest bit flipped")

    def _unbased_literal(self, node) -> None:
        flip = {"'0": "'1", "'1": "'0"}.get(node.literal.rawText)
        if flip:
            self._add(node, flip, "constant", "every bit flipped")

    def _drop_term(self, node) -> None:
        op = node.operatorToken.rawText
        self._add(node, self._text(node.left), "boolean", f"`{op}`: right term dropped")
        self._add(node, self._text(node.right), "boolean", f"`{op}`: left term dropped")

    def _drop_not(self, node) -> None:
        self._add(node, self._text(node.operand), "boolean", "`!` dropped")

    def _negate_if(self, node) -> None:
        conditions = [c for c in node.predicate.conditions if isinstance(c, syntax.SyntaxNode)]
        if len(conditions) != 1 or conditions[0].matchesClause is not None:
            return
        cond = conditions[0].expr
        # `if (!x)` is mutated by dropping its `!`; `!(!x)` would be the same mutant.
        if cond.kind != K.UnaryLogicalNotExpression and self._mutable(cond):
            self._add(cond, f"!({self._text(cond)})", "boolean", "if condition negated")

    def _swap_arms(self, node) -> None:
        left, right = node.left, node.right
        if not (self._mutable(left) and self._mutable(right)):
            return

        def arm(e) -> str:  # a nested ?: keeps its own grouping when it moves
            text = self._text(e)
            return f"({text})" if e.kind == K.ConditionalExpression else text

        self._edit(node, [(left, arm(right)), (right, arm(left))], "mux", "`?:` arms swapped")

    def _stuck(self, node) -> None:
        name = _enable_name(node)
        if name is None:
            return
        rhs = node.right
        value = _literal_value(rhs)
        is_mask = "mask" in name
        for const, bit in (("'0", 0), ("'1", 1)):
            # Equivalent by construction: already zero, or already one on an enable (the
            # enables are one bit wide; a mask of 1 is not all ones).
            if value == bit and (bit == 0 or not is_mask) or self._text(rhs) == const:
                continue
            self._edit(node, [(rhs, const)], "stuck", f"`{name}` stuck at {bit}")

    def _slice(self, node) -> None:
        sel = node.selector
        # Shown with its name (`x[3:0]` -> `x[2:0]`) where the name is a plain one.
        parent = node.parent
        shown = parent if parent.kind == K.IdentifierSelectName else node
        if sel is None or not self._mutable(shown):
            return

        def shift(expr, delta: int, what: str) -> None:
            if delta < 0 and _literal_value(expr) == 0:  # index -1 is outside every vector
                return
            self._edit(shown, [(expr, _plus(self._text(expr), expr, delta))], "slice", what)

        if sel.kind == K.BitSelect:
            shift(sel.expr, 1, "index + 1")
            shift(sel.expr, -1, "index - 1")
        elif sel.kind in RANGE_SELECTS:
            shift(sel.left, 1, "part-select base + 1")
            shift(sel.left, -1, "part-select base - 1")
        elif sel.kind == K.SimpleRangeSelect:
            msb, lsb = _literal_value(sel.left), _literal_value(sel.right)
            both = msb is not None and lsb is not None
            if not both or msb - 1 >= lsb:  # an empty or reversed slice would not build
                shift(sel.left, -1, "msb - 1")
            if not both or lsb + 1 <= msb:
                shift(sel.right, 1, "lsb + 1")


def _plus(text: str, expr, delta: int) -> str:
    value = _literal_value(expr) if expr.kind == K.IntegerLiteralExpression else None
    if value is not None:
        return str(value + delta)
    operand = text if expr.kind in PRIMARY else f"({text})"
    return f"{operand} {'+' if delta > 0 else '-'} {abs(delta)}"


def _literal_value(expr) -> int | None:
    """The value of an integer literal expression (None for anything else, x or z)."""
    if expr.kind == K.IntegerLiteralExpression:
        digits = expr.literal.rawText.replace("_", "")
        return int(digits) if digits.isdigit() else None
    if expr.kind == K.IntegerVectorExpression:
        radix = RADIX.get(expr.base.rawText[-1:].lower())
        try:
            return int(expr.value.rawText.replace("_", ""), radix) if radix else None
        except ValueError:
            return None
    if expr.kind == K.UnbasedUnsizedLiteralExpression:
        return {"'0": 0, "'1": 1}.get(expr.literal.rawText)
    if expr.kind == K.ParenthesizedExpression:
        return _literal_value(expr.expression)
    return None


def _enable_name(assignment) -> str | None:
    """The signal an assignment writes when it is an enable, valid, mask, start or done."""
    name = _target_name(assignment.left)
    if name is None:
        return None
    base = name
    for suffix in PORT_SUFFIXES:
        base = base.removesuffix(suffix)
    return name if base.endswith(ENABLE_ENDINGS) or base == "start" else None


def _target_name(lhs) -> str | None:
    """The signal an assignment writes: the last name of `a.b.c[i]`, None for `{a, b}`."""
    node = lhs
    while True:
        if node.kind in (K.IdentifierName, K.IdentifierSelectName):
            return node.identifier.valueText
        if node.kind == K.ScopedName:
            node = node.right
        elif node.kind == K.ElementSelectExpression:
            node = node.left
        elif node.kind == K.MemberAccessExpression:
            return node.name.valueText
        else:
            return None


# ------------------------------------------------------------------ mutants and samples
def mutated_files() -> list[str]:
    return [f"rtl/{name}" for name in CORE_SOURCES]


def all_mutants(files: list[str] | None = None) -> list[Mutant]:
    out = []
    for file in files or mutated_files():
        out += _Finder(file, (ROOT / file).read_bytes()).mutants()
    return out


def _quotas(sites: dict[str, int], n: int) -> dict[str, int]:
    """Mutants per file: proportional to its sites, at least MIN_PER_FILE (or all)."""
    if n >= sum(sites.values()):
        return dict(sites)
    floor = {f: min(MIN_PER_FILE, c) for f, c in sites.items()}
    if n <= sum(floor.values()):  # a small sample: spread evenly over the files
        quota = dict.fromkeys(sites, 0)
        order = sorted(sites, key=lambda f: -sites[f])
        while n:
            for f in order:
                if n and quota[f] < sites[f]:
                    quota[f] += 1
                    n -= 1
        return quota
    left = n - sum(floor.values())
    extra = {f: sites[f] - floor[f] for f in sites}
    total = sum(extra.values())
    shares = {f: left * extra[f] / total for f in sites}
    quota = {f: floor[f] + int(shares[f]) for f in sites}
    # Largest remainders get the mutants the rounding left over.
    for f in sorted(sites, key=lambda f: -(shares[f] - int(shares[f])))[: n - sum(quota.values())]:
        quota[f] += 1
    return quota


def sample(seed: int = 0, n: int = DEFAULT_MUTANTS, mutants: list[Mutant] | None = None):
    """A reproducible, stratified sample of n mutants (see the module docstring)."""
    mutants = all_mutants() if mutants is None else mutants
    by_file: dict[str, list[Mutant]] = defaultdict(list)
    for m in mutants:
        by_file[m.file].append(m)
    chosen = []
    for file, quota in _quotas({f: len(ms) for f, ms in by_file.items()}, n).items():
        # One random stream per file: a change in one file does not reshuffle the others.
        rng = random.Random(f"{seed}:{file}")
        pool = by_file[file]
        by_op: dict[str, list[Mutant]] = defaultdict(list)
        for m in pool:
            by_op[m.operator].append(m)
        ops = sorted(by_op)
        rng.shuffle(ops)
        picked = [rng.choice(by_op[op]) for op in ops[:quota]]
        rest = [m for m in pool if m not in picked]
        picked += rng.sample(rest, quota - len(picked))
        chosen += picked
    order = {f: i for i, f in enumerate(mutated_files())}
    return sorted(chosen, key=lambda m: (order.get(m.file, len(order)), m.start, m.replacement))


def distribution(mutants: list[Mutant]) -> dict[str, dict[str, int]]:
    """Mutants per file and per operator."""
    return {
        "module": dict(Counter(m.module for m in mutants)),
        "operator": {op: n for op in OPERATORS if (n := sum(m.operator == op for m in mutants))},
    }


# ------------------------------------------------------------------ running one mutant
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
# Builds the core as the fuzz runner and the tests do (the default config, product
# variant), with the overlay from the environment; prints the build directory.
BUILD_SCRIPT = (
    "from contract.hw import DEFAULT_HW\n"
    "from sim.rtl.build import build\n"
    "print(build(DEFAULT_HW).dir)\n"
)


def _run(cmd: list[str], env: dict, timeout: float, log: Path) -> tuple[int | None, float]:
    """A command with its output in log; (exit status or None on timeout, seconds). Each
    runs in its own process group, so a timeout also ends the simulator it started."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            rc = None
        except BaseException:  # interrupted: its own session would outlive the caller
            _kill(proc)
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    return rc, time.perf_counter() - t0


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has ended already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tail(log: Path, lines: int = 1) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return "\n".join(text[-lines:])


def _build_error(work: Path, build_dir: Path | None) -> str:
    """The first error line of a failed build (Verilator's %Error, or the compiler's)."""
    logs = [build_dir / "build.log"] if build_dir else []
    for log in [*logs, work / "build.log"]:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if "%Error" in line or "error:" in line:
                    return one_line(line, 200)
    return _tail(work / "build.log")


def _fuzz_failure(work: Path) -> str:
    summary = work / "fuzz" / "summary.json"
    if summary.exists():
        failed = json.loads(summary.read_text()).get("failed") or []
        if failed:
            f = failed[0]
            return one_line(f"{f['case']}: {f['kind']}: {f['message']}", 200)
    return _tail(work / "fuzz.log")


def _failed_test(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0]
    return None


def overlay_digest(mutated: bytes) -> str:
    """The key sim/rtl/build.py gives an overlay of one file: its build directories end
    in _ovl-<this>."""
    return hashlib.sha256(mutated).hexdigest()[:12]


def run_mutant(
    mutant: dict,
    out_dir: str | Path = DEFAULT_OUT,
    fuzz_seed: int = 0,
    fuzz_programs: int = 150,
    tests: bool = True,
    timeout: float = 600.0,
) -> dict:
    """Build one mutant and run the fast RTL tier on it until it is killed; the result
    record (the mutant's fields, status, killed_by, detail, seconds) is also written to
    OUT/<id>/result.json. Independent of every other mutant."""
    m = Mutant.from_record(mutant)
    work = Path(out_dir) / m.id
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result = {**m.record(), "status": "error", "killed_by": "", "detail": ""}
    result.update(build_s=None, fuzz_s=None, pytest_s=None)
    source = (ROOT / m.file).read_bytes()
    if source[m.start : m.end] != m.original.encode():
        result["detail"] = f"{m.file} changed since the mutant was sampled"
        return _save(work, result)
    mutated = m.apply(source)
    (work / Path(m.file).name).write_bytes(mutated)
    env = {k: v for k, v in os.environ.items() if k not in (COVERAGE_ENV, "LOOM_COVERAGE_DIR")}
    env[OVERLAY_ENV] = str(work.resolve())
    digest = overlay_digest(mutated)
    try:
        rc, result["build_s"] = _run([sys.executable, "-c", BUILD_SCRIPT], env, timeout,
                                     work / "build.log")  # fmt: skip
        build_dir = next(BUILD_ROOT.glob(f"*_ovl-{digest}*"), None)
        if rc is None:
            result["detail"] = f"build timed out after {timeout:.0f} s"
            return _save(work, result)
        if rc != 0:
            result.update(status="stillborn", detail=_build_error(work, build_dir))
            return _save(work, result)

        fuzz = [sys.executable, "-m", "verif", "fuzz", "--seed", str(fuzz_seed)]
        fuzz += ["-n", str(fuzz_programs), "--max-failures", "1", "--no-shrink"]
        fuzz += ["--out", str(work / "fuzz")]
        rc, result["fuzz_s"] = _run(fuzz, env, timeout, work / "fuzz.log")
        if rc is None:
            result.update(status="killed", killed_by="fuzz (timeout)",
                          detail=f"no verdict after {timeout:.0f} s")  # fmt: skip
            return _save(work, result)
        if rc != 0:
            result.update(status="killed", killed_by="fuzz", detail=_fuzz_failure(work))
            return _save(work, result)
        if not tests:
            result["status"] = "survived"
            return _save(work, result)

        # -p no:cacheprovider: a mutant's failures must not become the developer's --lf.
        pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly"]
        tests = [*TIER_TESTS, *BLOCK_TESTS.get(m.file, ())]
        pytest += ["-p", "no:cacheprovider", *tests, "-m", "not slow"]
        rc, result["pytest_s"] = _run(pytest, env, timeout, work / "pytest.log")
        if rc is None:
            result.update(status="killed", killed_by="pytest (timeout)",
                          detail=f"no verdict after {timeout:.0f} s")  # fmt: skip
        elif rc == 0:
            result["status"] = "survived"
        elif rc == 1:
            test = _failed_test(work / "pytest.log") or "pytest"
            result.update(status="killed", killed_by=test, detail=_tail(work / "pytest.log"))
        else:  # interrupted, internal error, usage error: the tier did not run
            result["detail"] = f"pytest exit status {rc}: {_tail(work / 'pytest.log')}"
        return _save(work, result)
    finally:
        for d in BUILD_ROOT.glob(f"*_ovl-{digest}*"):
            shutil.rmtree(d, ignore_errors=True)


def _save(work: Path, result: dict) -> dict:
    for k in ("build_s", "fuzz_s", "pytest_s"):
        if result[k] is not None:
            result[k] = round(result[k], 1)
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_all(mutants: list[Mutant], jobs: int, resume: bool = False, **settings) -> list[dict]:
    """Every mutant through run_mutant, jobs at a time. The work of a job is in its
    subprocesses, so a thread per job is enough; with resume, a mutant whose
    result.json is there is not run again."""
    out_dir = Path(settings.get("out_dir", DEFAULT_OUT))
    results, todo = [], []
    for m in mutants:
        saved = out_dir / m.id / "result.json"
        if resume and saved.exists():
            results.append(json.loads(saved.read_text()))
        else:
            todo.append(m)
    done = len(results)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = {pool.submit(run_mutant, m.record(), **settings): m for m in todo}
        for future in as_completed(futures):
            r = future.result()
            results.append(r)
            done += 1
            secs = ", ".join(
                f"{k[:-2]} {r[k]:.0f} s" for k in ("build_s", "fuzz_s", "pytest_s") if r[k]
            )
            by = f" by {r['killed_by']}" if r["killed_by"] else ""
            print(
                f"[{done}/{len(mutants)}] {r['id']} {r['file']}:{r['line']} {r['operator']}:"
                f" {r['status']}{by} ({secs})",
                flush=True,
            )
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        with _RUNNING_LOCK:
            for proc in list(_RUNNING):
                _kill(proc)
        raise
    pool.shutdown()
    return results


# ------------------------------------------------------------------ report
def load_claims(path: Path = CLAIMS) -> list[dict]:
    claims = yaml.safe_load(path.read_text()) if path.exists() else []
    return list(claims or [])


def claim_for(result: dict, claims: list[dict]) -> str:
    """The reason a survivor is claimed equivalent, "" when it is not claimed."""
    for c in claims:
        if (c["file"], int(c["line"]), c["original"], c["replacement"]) == (
            result["file"], result["line"], result["original"], result["replacement"],
        ):  # fmt: skip
            return str(c["reason"])
    return ""


def _counts(rows: list[dict]) -> dict:
    out = {"mutants": len(rows), **{s: sum(r["status"] == s for r in rows) for s in STATUSES}}
    scored = out["killed"] + out["survived"]
    out["score"] = round(100.0 * out["killed"] / scored, 1) if scored else None
    return out


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def summarize(results: list[dict], claims: list[dict], run: dict | None = None) -> dict:
    rows = []
    for r in sorted(results, key=lambda r: (r["file"], r["line"], r["id"])):
        row = {**r, "equivalence_claim": claim_for(r, claims) if r["status"] == "survived" else ""}
        if row["equivalence_claim"]:
            row["status"] = "equivalent"
        rows.append(row)
    modules = {Path(f).stem: [] for f in mutated_files()}
    operators = defaultdict(list)
    for r in rows:
        modules.setdefault(Path(r["file"]).stem, []).append(r)
        operators[r["operator"]].append(r)
    total = _counts(rows)
    killers = Counter(r["killed_by"] for r in rows if r["status"] == "killed")
    score = "n/a" if total["score"] is None else f"{total['score']:.1f}%"
    summary = (
        f"score {score}: {total['killed']} killed, {total['survived']} survived of"
        f" {total['mutants']} mutants ({total['equivalent']} equivalent,"
        f" {total['stillborn']} stillborn, {total['error']} errors not counted)"
    )
    return {
        "summary": summary,
        "run": run or {},
        "total": total,
        "modules": {m: _counts(rs) for m, rs in modules.items() if rs},
        "operators": {op: _counts(operators[op]) for op in OPERATORS if op in operators},
        "killed_by": dict(killers.most_common()),
        "median_seconds": {
            "build": _median(r["build_s"] for r in rows if r["status"] != "stillborn"),
            "fuzz": _median(r["fuzz_s"] for r in rows),
            "pytest": _median(r["pytest_s"] for r in rows),
            "total": _median(
                sum(r[k] or 0 for k in ("build_s", "fuzz_s", "pytest_s"))
                for r in rows
                if r["build_s"] is not None
            ),
        },
        "survivors": [r for r in rows if r["status"] == "survived"],
        "mutants": rows,
    }


def _table(title: str, groups: dict[str, dict]) -> list[str]:
    out = [f"| {title} | mutants | killed | survived | equivalent | stillborn | error | score |"]
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, c in groups.items():
        score = "-" if c["score"] is None else f"{c['score']:.1f}%"
        cells = [c[k] for k in ("mutants", *STATUSES)]
        out.append(f"| {name} | " + " | ".join(map(str, cells)) + f" | {score} |")
    return out


def _mutant_line(r: dict) -> str:
    return (
        f"- `{r['id']}` {r['file']}:{r['line']} ({r['operator']}, {r['description']}):"
        f" `{one_line(r['original'])}` -> `{one_line(r['replacement'])}`"
        + (f" in `{r['context']}`" if r.get("context") else "")
    )


def markdown(rep: dict) -> str:
    run = rep["run"]
    how = "`python -m verif.mutate run` (results of several runs)"
    if run.get("n") == rep["total"]["mutants"]:  # the report of one run
        tier = "then the directed RTL tests" if run["tests"] else "no directed tests"
        how = (
            f"`python -m verif.mutate run --seed {run['seed']} -n {run['n']}`"
            f" ({run['fuzz_programs']} random programs of seed {run['fuzz_seed']}, {tier})"
        )
    sec = rep["median_seconds"]
    fmt = {k: "-" if v is None else f"{v:.1f} s" for k, v in sec.items()}
    out = [
        "# Mutation testing of rtl/",
        "",
        f"Measured {run.get('date', date.today().isoformat())} on {run.get('machine', '')}"
        f" by {how}; verif/mutate.py, docs/verification.md.",
        "",
        f"**{rep['summary']}.** Score = killed / (killed + survived).",
        "",
        *_table("module", {**rep["modules"], "**all**": rep["total"]}),
        "",
        *_table("operator", rep["operators"]),
        "",
        f"Median seconds per mutant: build {fmt['build']}, random programs {fmt['fuzz']},"
        f" directed tests {fmt['pytest']} (run only when the programs pass), in all"
        f" {fmt['total']}.",
        "",
        "Killed by:",
        "",
        *([f"- {check}: {n}" for check, n in rep["killed_by"].items()] or ["- none"]),
        "",
        "Survivors (no equivalence claim in verif/mutate_equivalent.yaml):",
        "",
        *([_mutant_line(r) for r in rep["survivors"]] or ["- none"]),
    ]
    for status, title in (("equivalent", "Claimed equivalent"), ("stillborn", "Stillborn"),
                          ("error", "Errors (not run to a verdict)")):  # fmt: skip
        rows = [r for r in rep["mutants"] if r["status"] == status]
        if rows:
            out += ["", f"{title}:", ""]
            for r in rows:
                why = r["equivalence_claim"] if status == "equivalent" else r["detail"]
                out.append(_mutant_line(r) + f": {one_line(why, 160)}")
    return "\n".join(out) + "\n"


def write_report(results: list[dict], out_dir: Path, bench: bool = False) -> dict:
    run_file = out_dir / "run.json"
    run = json.loads(run_file.read_text()) if run_file.exists() else {}
    rep = summarize(results, load_claims(), run)
    text = markdown(rep)
    targets = [out_dir / "report"] + ([BENCH] if bench else [])
    for base in targets:
        base.parent.mkdir(parents=True, exist_ok=True)
        base.with_suffix(".json").write_text(json.dumps(rep, indent=1) + "\n")
        base.with_suffix(".md").write_text(text)
    print(text, end="")
    print(f"report: {', '.join(str(b.with_suffix('.{json,md}')) for b in targets)}")
    return rep


# ------------------------------------------------------------------ command line
def _list(args) -> int:
    mutants = all_mutants()
    shown = mutants if args.all else sample(args.seed, args.n, mutants)
    for m in shown:
        print(
            f"{m.id:<22} {m.file}:{m.line:<4} {m.operator:<10} {m.description}:"
            f" `{one_line(m.original, 60)}` -> `{one_line(m.replacement, 60)}`"
        )
    sites = distribution(mutants)
    picked = distribution(shown)
    print(f"\n{len(shown)} of {len(mutants)} mutants")
    for axis in ("module", "operator"):
        print(f"{axis:<16} {'sample':>6} {'all':>6}")
        for name, total in sites[axis].items():
            print(f"  {name:<14} {picked[axis].get(name, 0):>6} {total:>6}")
    return 0


def _run_cmd(args) -> int:
    out_dir = Path(args.out)
    mutants = all_mutants()
    chosen = sample(args.seed, args.n, mutants)
    if args.only:
        by_id = {m.id: m for m in mutants}
        unknown = [i for i in args.only if i not in by_id]
        if unknown:
            print(f"error: no mutant {', '.join(unknown)} (see `list --all`)", file=sys.stderr)
            return 2
        chosen = [by_id[i] for i in args.only]
    out_dir.mkdir(parents=True, exist_ok=True)
    fuzz_seed = args.seed if args.fuzz_seed is None else args.fuzz_seed
    run = {
        "seed": args.seed,
        "n": len(chosen),
        "fuzz_seed": fuzz_seed,
        "fuzz_programs": args.fuzz_programs,
        "tests": not args.no_tests,
        "jobs": args.jobs,
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    (out_dir / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    print(f"{len(chosen)} mutants, {args.jobs} at a time; work in {out_dir}/<id>/", flush=True)
    results = run_all(
        chosen,
        args.jobs,
        resume=args.resume,
        out_dir=out_dir,
        fuzz_seed=fuzz_seed,
        fuzz_programs=args.fuzz_programs,
        tests=not args.no_tests,
        timeout=args.timeout,
    )
    write_report(results, out_dir, bench=args.bench)
    return 0


def _report(args) -> int:
    out_dir = Path(args.dir)
    results = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*/result.json"))]
    if not results:
        print(f"error: no */result.json in {out_dir}", file=sys.stderr)
        return 2
    write_report(results, out_dir, bench=args.bench)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m verif.mutate", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="print the sampled mutants and their distribution")
    ls.add_argument("--all", action="store_true", help="every mutant, not a sample")
    r = sub.add_parser("run", help="build and test the sampled mutants; write the report")
    r.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants at a time")
    r.add_argument("--out", default=str(DEFAULT_OUT), help="work directories and the report")
    r.add_argument("--only", action="append", default=[], help="this mutant id (repeatable)")
    r.add_argument("--fuzz-programs", type=int, default=150, help="random programs per mutant")
    r.add_argument("--fuzz-seed", type=int, default=None, help="their seed (default: --seed)")
    r.add_argument("--no-tests", action="store_true", help="random programs only")
    r.add_argument("--timeout", type=float, default=600.0, help="seconds per build or tier")
    r.add_argument("--resume", action="store_true", help="keep the results already in --out")
    for p in (ls, r):
        p.add_argument("--seed", type=int, default=0, help="the sample's seed")
        p.add_argument("-n", type=int, default=DEFAULT_MUTANTS, help="mutants in the sample")
    rep = sub.add_parser("report", help="the report of every DIR/*/result.json")
    rep.add_argument("dir", nargs="?", default=str(DEFAULT_OUT))
    for p in (r, rep):
        p.add_argument("--bench", action="store_true", help="also bench/mutation.{json,md}")
    args = ap.parse_args(argv)
    if getattr(args, "n", 1) <= 0:
        ap.error("-n must be positive")
    return {"list": _list, "run": _run_cmd, "report": _report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
