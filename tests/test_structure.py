"""The structure the architecture promises (docs/architecture.md), checked: imports flow
one way between the rooms, facts shared by Python, SystemVerilog and C++ live once in
the contract, and the generated files are current."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from contract import gen
from contract.isa import ADDRESS_ROLES, FORMATS

ROOT = Path(__file__).resolve().parent.parent

# Room of a module, by the longest matching prefix.
ROOMS = {
    "contract": "contract",
    "sim.ref": "isa model",
    "compiler": "compiler",
    "golden": "golden",
    "sim.runtime": "runtime",
    "testbench": "testbench",
    "sim.torch_backend": "torch backend",
    "sim.rtl": "rtl backend",
    "sim.cli": "command line",
    "sim.__main__": "command line",
    "verif": "verification",
    "sim": "api",  # sim/__init__.py
}
# What each room may import (besides itself). Lower rooms never import higher ones.
ALLOWED = {
    "contract": set(),
    "isa model": {"contract"},
    "compiler": {"contract", "isa model"},
    "golden": {"contract"},
    "runtime": {"contract", "isa model", "golden"},
    "testbench": {"contract", "isa model"},
    "torch backend": {"contract", "isa model", "runtime"},
    "rtl backend": {"contract", "isa model", "runtime", "testbench"},
    "api": {"runtime"},
    "verification": {"contract", "isa model", "rtl backend"},
    "command line": {
        "contract",
        "isa model",
        "compiler",
        "golden",
        "runtime",
        "testbench",
        "torch backend",
        "rtl backend",
        "api",
    },
}
PACKAGES = ["contract", "compiler", "golden", "sim", "testbench", "verif"]


def room_of(module: str) -> str | None:
    for prefix in sorted(ROOMS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return ROOMS[prefix]
    return None


def sources() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it is (also in functions)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from sim import dumps` imports the submodule sim.dumps
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def test_imports_flow_one_way():
    wrong = []
    for module, path in sources():
        mine = room_of(module)
        for line, target in imports(path):
            theirs = room_of(target)  # None: not Loom
            if theirs is None or theirs == mine:
                continue
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mine} imports {target} ({theirs})")
    assert not wrong, "imports against the architecture:\n" + "\n".join(wrong)


def test_the_import_check_sees_a_wrong_import(tmp_path):
    """The check itself: a contract module importing the ISA model is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nfrom sim.ref import RefMachine\n")
    targets = [t for _, t in imports(bad)]
    assert "sim.ref" in targets and room_of("sim.ref") not in ALLOWED["contract"]


def test_contract_imports_nothing_of_loom():
    for module, path in sources():
        if room_of(module) != "contract":
            continue
        others = {room_of(t) for _, t in imports(path)} - {None, "contract"}
        assert not others, f"{path.relative_to(ROOT)} imports {others}"


# ---------------------------------------------------------------- one source
ADDRESS_FIELDS = {f.name for fmt in FORMATS.values() for f in fmt.fields if f.role in ADDRESS_ROLES}
DTYPE_NAMES = {"float32", "bfloat16", "int32", "bool"}


def _literal_strings(node) -> set[str]:
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
        elts = node.elts
    elif isinstance(node, ast.Dict):
        elts = [k for k in node.keys if k is not None]
    else:
        return set()
    return {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def tables_outside_contract(files: list[tuple[str, Path]]) -> list[str]:
    """Literal collections that restate a contract table: two or more address-field names
    (a hand-kept list of which fields are addresses), or a dtype-name table."""
    found = []
    for module, path in files:
        if room_of(module) == "contract":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = _literal_strings(node)
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if len(names & ADDRESS_FIELDS) >= 2:
                found.append(f"{where}: address fields {sorted(names & ADDRESS_FIELDS)}")
            if isinstance(node, ast.Dict) and len(names & DTYPE_NAMES) >= 2:
                found.append(f"{where}: dtype table {sorted(names & DTYPE_NAMES)}")
    return found


def test_no_address_field_or_dtype_table_outside_the_contract():
    found = tables_outside_contract(sources())
    assert not found, "restated contract tables:\n" + "\n".join(found)


def test_the_table_check_sees_restated_tables(tmp_path):
    """The tables this structure removed, as they stood in sim/torch_loops.py,
    compiler/verify.py and sim/dram.py, are each reported."""
    old = tmp_path / "old.py"
    old.write_text(
        'ADDRESS_FIELDS = {"sram", "dram", "dst", "a", "b", "bias", "src", "offset"}\n'
        'reads = [v for k, v in args.items() if k in ("dram", "table_addr", "idx")]\n'
        '_NP = {"float32": 4, "bfloat16": 2, "int32": 4, "bool": 1}\n'
    )
    found = tables_outside_contract([("sim.torch_loops", old)])
    assert sorted(f.split(":")[1] for f in found) == ["1", "2", "3"], found


def test_generated_files_are_current():
    assert gen.stale() == [], "run `make gen`"
    assert (ROOT / "rtl" / "loom_pkg.sv").read_text() == gen.render_sv_package()
    assert gen.LOCKSTEP_HEADER.read_text() == gen.render_lockstep_header()


def test_lockstep_checker_takes_its_constants_from_the_generated_header():
    cc = (ROOT / "sim" / "rtl" / "hdl" / "loom_lockstep.cc").read_text()
    assert '#include "loom_lockstep_gen.h"' in cc
    # No enum or digest constant of its own: those are the contract's.
    assert not re.search(r"\benum\b", cc)
    assert "0x9E3779B97F4A7C15" not in cc.upper().replace("ULL", "")
    assert not re.search(r"wave_mode == \d", cc)


def test_drift_check_fails_on_an_edited_header(tmp_path, monkeypatch):
    """gen --check reports a hand-edited generated header."""
    fake = tmp_path / "loom_lockstep_gen.h"
    fake.write_text(gen.render_lockstep_header().replace("kReasonPc = 1", "kReasonPc = 7"))
    monkeypatch.setattr(gen, "LOCKSTEP_HEADER", fake)
    assert fake in gen.stale()
    assert gen.main(["--check"]) == 1


def test_rtl_numerics_constants_come_from_the_contract():
    """loom_fp_pkg computes with the contract's constants, generated into loom_pkg: it
    declares none of its own (a hand copy once held exp's flush threshold one ulp off)."""
    fp = (ROOT / "rtl" / "loom_fp_pkg.sv").read_text()
    assert "import loom_pkg::*;" in fp
    assert not re.search(r"localparam\s+logic\s*\[\s*(31|15)\s*:\s*0\s*\]", fp)
    pkg = (ROOT / "rtl" / "loom_pkg.sv").read_text()
    from contract import numerics

    for name in numerics.rtl_constants():
        assert f" {name} = " in pkg, name
