"""Loading a blob is a trust boundary (docs/blob.md): hostile blobs with a valid checksum
are refused with the field named, honest ones load and run as before, and a fuzzer
mutates every metadata field and the binary sections of real blobs."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler
import sim
from compiler.registry import REGISTRY
from contract import hostops
from contract.blob import (
    _HEADER,
    FORMAT_VERSION,
    MAX_BINDINGS,
    BlobError,
    Program,
    hw_config_of,
    printable,
)
from contract.hw import CONFIG_DIR, DEFAULT_HW, HwConfig
from contract.isa import INSN_BYTES
from sim.cli.models import build
from sim.ref import ExecError
from sim.rtl.build import _key
from sim.runtime.host import HostOpError
from sim.runtime.image import ImageBoundsError
from sim.runtime.run import CheckpointError

REPO_MODELS = ["gpt2-tiny", "mlp", "opt-tiny", "bloom-tiny", "neox-tiny", "llama-tiny"]
REPO_MODELS += ["bert-tiny"]


# ---------------------------------------------------------------- re-sealing blobs
def unpack(blob: bytes) -> tuple[tuple, list[list]]:
    """The header fields and the section table as [name, data] pairs (no checks)."""
    header = _HEADER.unpack_from(blob)
    payload = blob[_HEADER.size :]
    (count,) = struct.unpack_from("<I", payload)
    sections = []
    for i in range(count):
        name, off, n = struct.unpack_from("<16sQQ", payload, 4 + 32 * i)
        sections.append([name.rstrip(b"\0").decode(), payload[off : off + n]])
    return header, sections


def seal(header: tuple, payload: bytes, hw: dict | None = None) -> bytes:
    """A blob whose header matches its payload (length, SHA-256) and, given the blob's
    hardware config, its config hash (HwConfig.hash's canonical JSON)."""
    magic, fmt, isa_v, hw_hash, _, _ = header
    if hw is not None:
        canonical = json.dumps(hw, sort_keys=True, separators=(",", ":"), default=str)
        hw_hash = hashlib.sha256(canonical.encode()).digest()
    digest = hashlib.sha256(payload).digest()
    return _HEADER.pack(magic, fmt, isa_v, hw_hash, len(payload), digest) + payload


def pack(sections: list[list], table: list[tuple] | None = None) -> bytes:
    """A payload: the table (name, offset, length; computed when not given) and data."""
    start = 4 + 32 * len(sections)
    if table is None:
        table, at = [], start
        for name, data in sections:
            table.append((name, at, len(data)))
            at += len(data)
    head = struct.pack("<I", len(table))
    head += b"".join(struct.pack("<16sQQ", n.encode(), o, ln) for n, o, ln in table)
    return head + b"".join(data for _, data in sections)


def edit_meta(blob: bytes, edit) -> bytes:
    """The blob with edit(meta) applied to its metadata, re-sealed with a valid checksum."""
    header, sections = unpack(blob)
    by_name = dict(sections)
    meta = json.loads(by_name["meta"])
    edit(meta)
    data = json.dumps(meta).encode()
    sections = [[n, data if n == "meta" else d] for n, d in sections]
    hw = meta.get("hw") if isinstance(meta, dict) else None
    return seal(header, pack(sections), hw if isinstance(hw, dict) else None)


def edit_section(blob: bytes, name: str, edit) -> bytes:
    header, sections = unpack(blob)
    sections = [[n, edit(d) if n == name else d] for n, d in sections]
    return seal(header, pack(sections))


# ---------------------------------------------------------------- programs
class Fallback(torch.nn.Module):
    """Device and host segments, constants and layers: exact GELU and cumsum run on the
    CPU between two Linear layers."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 16)
        self.fc2 = torch.nn.Linear(16, 8)

    def forward(self, x):
        return self.fc2(torch.cumsum(torch.nn.functional.gelu(self.fc1(x)), dim=-1))


class Gathered(torch.nn.Module):
    """Embedding (GATHER) and softmax on the device; cat, index.Tensor, cumsum with a
    dtype and mean on the host (tensor lists, optional tensors, kwargs, bools); two
    outputs."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(32, 16)
        self.fc = torch.nn.Linear(32, 16)
        self.register_buffer("pick", torch.tensor([3, 0, 7, 1]))

    def forward(self, ids):
        e = self.emb(ids)
        both = torch.cat([e, e * 0.5], dim=-1)
        picked = torch.cumsum(both[:, :, self.pick], dim=-1, dtype=torch.float32)
        return torch.softmax(self.fc(both) - both.mean(dim=-1, keepdim=True), dim=-1), picked


aten = torch.ops.aten
X = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
IDS = torch.tensor([[1, 5, 31, 0]])


def compile_on_host(
    model: torch.nn.Module, inputs: tuple, host: tuple, kwargs: dict | None = None
) -> Program:
    """Compile with the device lowerings of `host` removed, so those ops run on the CPU
    whatever the compiler lowers today: the loader's tests need host ops of each argument
    kind (tensor lists, str choices, kwargs, bools), not a particular compiler."""
    with pytest.MonkeyPatch.context() as patch:
        for target in host:
            patch.delitem(REGISTRY, target, raising=False)
        return compiler.compile(model.eval(), inputs, kwargs=kwargs)


@pytest.fixture(scope="module")
def fallback():
    program = compile_on_host(Fallback(), (X,), (aten.gelu.default,))
    return program, program.to_bytes(), (X,)


@pytest.fixture(scope="module")
def gathered():
    program = compile_on_host(Gathered(), (IDS,), (aten.cat.default, aten.mean.dim))
    return program, program.to_bytes(), (IDS,)


def refused(blob: bytes, match: str) -> None:
    with pytest.raises(BlobError, match=match):
        Program.from_bytes(blob)


# ---------------------------------------------------------------- honest blobs
def test_compiled_blobs_load_and_run_as_before(fallback, gathered):
    for program, blob, inputs in (fallback, gathered):
        kinds = {s["kind"] for s in program.segments}
        assert kinds == {"device", "host"}, kinds
        got, want = Program.from_bytes(blob)(*inputs), program(*inputs)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_repo_models_emit_only_allowed_host_ops_and_load():
    """Every model of sim/cli/models.py compiles (the partitioner checks each host op
    against the allow-list) into a blob the loader accepts. Then llama-tiny with its
    rotary cat and RMSNorm mean forced to the CPU (the fallbacks a lowering's
    Unsupported leads to): allowed, loaded, and run from its blob as in memory."""
    forced = (aten.cat.default, aten.mean.dim)
    for name in REPO_MODELS:
        spec = build(name)
        program = compiler.compile(spec.model, spec.inputs, kwargs=spec.kwargs)
        Program.from_bytes(program.to_bytes())
    spec = build("llama-tiny")
    program = compile_on_host(spec.model, spec.inputs, forced, spec.kwargs)
    targets = set()
    for op in program.meta["host_ops"]:
        hostops.check_call(
            op["target"], op["args"], op["kwargs"], len(op["inputs"]), len(op["outputs"])
        )
        targets.add(op["target"])
    assert targets == {"aten.cat.default", "aten.mean.dim"}, targets
    loaded = Program.from_bytes(program.to_bytes())
    want = sim.run(program, spec.inputs, check=False).outputs
    got = sim.run(loaded, spec.inputs, check=False).outputs
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_allow_list_is_torchs_own_schemas_of_pure_ops():
    """Each entry is PyTorch's schema text of the overload; none mutates, none draws
    random numbers unless CHOICES pins the argument that would (dropout_p = 0)."""
    for target, spec in hostops.HOST_OPS.items():
        ns, op, overload = target.split(".")
        overload_fn = getattr(getattr(getattr(torch.ops, ns), op), overload)
        assert str(overload_fn._schema) == spec.schema, target
        assert not overload_fn._schema.is_mutable, target
        if torch.Tag.nondeterministic_seeded in overload_fn.tags:
            assert "dropout_p" in hostops.CHOICES.get(target, {}), target
    for forbidden in ("aten.from_file.default", "aten.normal.Tensor_float", "aten.add_.Tensor"):
        assert forbidden not in hostops.HOST_OPS


@pytest.mark.parametrize(
    "schema",
    [
        "aten::from_file(str filename, bool? shared=None, int? size=0, *, ScalarType? dtype=None,"
        " Layout? layout=None, Device? device=None, bool? pin_memory=None) -> Tensor",
        "aten::add_.Tensor(Tensor(a!) self, Tensor other, *, Scalar alpha=1) -> Tensor(a!)",
        "aten::normal.Tensor_float(Tensor mean, float std=1., *, Generator? generator=None)"
        " -> Tensor",
        "aten::split.Tensor(Tensor(a -> *) self, SymInt split_size, int dim=0) -> Tensor(a)[]",
        "aten::add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)",
    ],
)
def test_allow_list_parser_refuses_impure_schemas(schema):
    with pytest.raises(ValueError):
        hostops.parse_schema(schema)


def test_compiler_refuses_a_host_op_outside_the_allow_list():
    """Loudly, at compile time, with the node and its module path."""

    class Inner(torch.nn.Module):
        def forward(self, x):
            return torch.logcumsumexp(x, dim=-1)  # pure, but not on the list

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) * 2

    with pytest.raises(
        NotImplementedError,
        match=r"aten\.logcumsumexp\.default at node \w+ \(module inner\) .* not an allowed",
    ):
        compiler.compile(Outer(), (X,))


def test_an_older_format_is_refused_with_the_recompile_message(fallback):
    blob = bytearray(fallback[1])
    blob[8] = FORMAT_VERSION - 1
    refused(bytes(blob), f"blob format version {FORMAT_VERSION - 1}.*recompile the model")


# ---------------------------------------------------------------- hostile blobs
def _host_op(i, **fields):
    def edit(meta):
        meta["host_ops"][i].update(fields)

    return edit


def _set(path, value):
    """An edit that sets meta[path...] = value."""

    def edit(meta):
        node = meta
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value

    return edit


def _move_buffer(binding_path, buffer_name):
    """Point a binding at another buffer, address included (only the kind is wrong)."""

    def edit(meta):
        node = meta
        for k in binding_path:
            node = node[k]
        buf = next(b for b in meta["memory"]["buffers"] if b["name"] == buffer_name(meta))
        node.update(buffer=buf["name"], addr=buf["addr"])

    return edit


def _first_constant(meta):
    return meta["constants"][0]["name"]


HOSTILE = {
    "from_file": (
        _host_op(0, target="aten.from_file.default", args=["/etc/passwd", True, 100]),
        r"meta\.host_ops\[0\]\.target: 'aten\.from_file\.default' is not an allowed host op",
    ),
    "torch_ops_normal": (
        _host_op(0, target="torch.ops.aten.normal"),
        r"meta\.host_ops\[0\]\.target: 'torch\.ops\.aten\.normal' is not an allowed",
    ),
    "outside_list": (
        _host_op(1, target="aten.nonzero.default"),
        r"meta\.host_ops\[1\]\.target: 'aten\.nonzero\.default' is not an allowed",
    ),
    "target_not_a_string": (
        _host_op(1, target=["aten", "cumsum"]),
        r"meta\.host_ops\[1\]\.target: .* is not an allowed host op",
    ),
    "wrong_arg_kind": (
        _host_op(1, args=[{"tensor": 0}, "-1"]),
        r"meta\.host_ops\[1\]\.args\[1\]: expected an integer, got '-1'",
    ),
    "bool_for_int": (
        _host_op(1, args=[{"tensor": 0}, True]),
        r"meta\.host_ops\[1\]\.args\[1\]: expected an integer, got True",
    ),
    "tensor_index_out_of_range": (
        _host_op(0, args=[{"tensor": 3}]),
        r"meta\.host_ops\[0\]\.args\[0\]: tensor index 3 is not one of the op's 1 inputs",
    ),
    "dtype_import": (
        _host_op(1, kwargs={"dtype": {"dtype": "__import__"}}),
        r"meta\.host_ops\[1\]\.kwargs\.dtype: dtype '__import__' is not one of",
    ),
    "enum_string": (
        _host_op(0, kwargs={"approximate": "os.system"}),
        r"meta\.host_ops\[0\]\.kwargs\.approximate: approximate must be one of",
    ),
    "unknown_kwarg": (
        _host_op(0, kwargs={"out": {"tensor": 0}}),
        r"meta\.host_ops\[0\]\.kwargs\.out: is not an argument of aten\.gelu\.default",
    ),
    "too_many_args": (
        _host_op(0, args=[{"tensor": 0}, "tanh"]),
        r"meta\.host_ops\[0\]\.args: aten\.gelu\.default takes 1 positional",
    ),
    "host_op_writes_a_constant": (
        _move_buffer(("host_ops", 0, "outputs", 0), _first_constant),
        r"meta\.host_ops\[0\]\.outputs\[0\]\.buffer: .* is a constant buffer",
    ),
    "input_addr_outside_image": (
        _set(("inputs", 0, "addr"), 2**31),
        r"meta\.inputs\[0\]\.addr: 0x80000000; buffer 'x' is at",
    ),
    "input_outside_its_buffer": (
        _set(("inputs", 0, "offset"), 64),
        r"meta\.inputs\[0\]: tensor bytes .* are outside its buffer 'x'",
    ),
    "input_in_a_constant": (
        _move_buffer(("inputs", 0), _first_constant),
        r"meta\.inputs\[0\]\.buffer: .* is a constant buffer, not \['input'\]",
    ),
    "output_outside_its_buffer": (
        _set(("outputs", 0, "strides"), [10**6, 1]),
        r"meta\.outputs\[0\]: tensor bytes .* are outside its buffer",
    ),
    "layer_output_outside_its_buffer": (
        _set(("layers", 0, "output", "shape"), lambda s: [s[0] * 2, *s[1:]]),
        r"meta\.layers\[0\]\.output: tensor bytes .* are outside its buffer",
    ),
    "layer_input_unknown_buffer": (
        _set(("layers", 1, "inputs", 0, "buffer"), "no-such-buffer"),
        r"meta\.layers\[1\]\.inputs\[0\]\.buffer: 'no-such-buffer' is not a buffer",
    ),
    "host_op_input_outside_image": (
        _set(("host_ops", 1, "inputs", 0, "offset"), 2**32),
        r"meta\.host_ops\[1\]\.inputs\[0\]: tensor bytes .* are outside its buffer",
    ),
    "buffer_outside_its_region": (
        _set(("memory", "buffers", 0, "addr"), 0),
        r"meta\.memory\.buffers\[0\]: .* buffer \[0x0, .* is outside the memory plan's",
    ),
    "terabyte_shape": (
        _set(("inputs", 0), lambda b: {**b, "shape": [2**20, 2**20], "strides": [0, 0]}),
        r"meta\.inputs\[0\]\.shape\[0\]: 1048576 is outside \[0, \d+\]",
    ),
    "too_many_dims": (
        _set(("inputs", 0), lambda b: {**b, "shape": [1] * 40, "strides": [0] * 40}),
        r"meta\.inputs\[0\]\.shape: 40 dimensions",
    ),
    "negative_stride": (
        _set(("inputs", 0, "strides"), [-16, 1]),
        r"meta\.inputs\[0\]\.strides\[0\]: -16 is outside",
    ),
    "negative_offset": (
        _set(("outputs", 0, "offset"), -8),
        r"meta\.outputs\[0\]\.offset: -8 is outside",
    ),
    "unknown_dtype": (
        _set(("outputs", 0, "dtype"), "object"),
        r"meta\.outputs\[0\]\.dtype: 'object' is not one of",
    ),
    "segment_past_the_code": (
        _set(("segments", -1, "insns"), lambda n: n + 100),
        r"meta\.segments\[\d+\]\.insns: the segment ends at .* past the code",
    ),
    "segment_starts_past_the_code": (
        _set(("segments", 0, "pc"), 2**20),
        r"meta\.segments\[0\]\.pc: 1048576 is outside",
    ),
    "segment_skips_a_halt": (
        _set(("segments", 0, "insns"), lambda n: n - 1),
        r"meta\.segments\[0\]\.insns: a device segment ends with its only HALT",
    ),
    "host_op_index": (
        _set(("segments", 1, "host_op"), 7),
        r"meta\.segments\[1\]\.host_op: 7 is outside",
    ),
    "checkpoint_without_layer": (
        _set(("layers",), []),
        r"code\[pc 0x[0-9a-f]+\]: CHECKPOINT names layer 0, not in meta\.layers",
    ),
    "constants_over_code": (
        _set(("memory", "constants", 0), 0),
        r"meta\.memory\.constants\[0\]: 0x0; the previous region ends at 0x[0-9a-f]+",
    ),
    "constant_from_outside_section": (
        _set(("constants", 0, "offset"), 10**9),
        r"meta\.constants\[0\]\.offset: 1000000000 is outside",
    ),
    "memory_beyond_dram": (
        _set(("memory", "total"), 2**40),
        r"meta\.memory\.total: 1099511627776 is outside \[0, 1073741824\]",
    ),
    "hw_sram_terabytes": (
        _set(("hw", "spad_kib"), 2**40),
        r"meta\.hw\.spad_kib: 1099511627776 is not a number in",
    ),
    "hw_wrong_type": (
        _set(("hw", "array_dim"), "16"),
        r"meta\.hw\.array_dim: '16' is not a number",
    ),
    "missing_key": (
        lambda meta: meta["host_ops"][0].pop("kwargs"),
        r"meta\.host_ops\[0\]\.kwargs: missing",
    ),
    "unknown_key": (
        _set(("layers", 0, "exec"), "rm -rf /"),
        r"meta\.layers\[0\]\.exec: unknown field",
    ),
    "wrong_type": (
        _set(("layers", 0, "id"), "0"),
        r"meta\.layers\[0\]\.id: expected an integer, got '0'",
    ),
    "isa_version": (
        _set(("isa_version",), 2),
        r"meta\.isa_version: 2; the header says",
    ),
    # the DRAM image is the memory plan's footprint, not a size of the blob's choosing
    "image_larger_than_the_plan": (
        _set(("memory", "total"), 2**30),
        r"meta\.memory\.total: 0x40000000; the memory plan ends at 0x[0-9a-f]+",
    ),
    "region_past_its_last_buffer": (
        lambda meta: meta["memory"].update(
            activations=[meta["memory"]["activations"][0], 2**20], total=2**20
        ),
        r"meta\.memory\.activations\[1\]: 0x100000; its last buffer ends at 0x[0-9a-f]+",
    ),
    "host_op_input_no_argument_reads": (
        lambda meta: meta["host_ops"][0]["inputs"].append(meta["host_ops"][0]["inputs"][0]),
        r"meta\.host_ops\[0\]\.inputs\[1\]: no argument of the op references this input",
    ),
    "empty_tensor_with_huge_dimensions": (
        _set(("outputs", 0), lambda b: {**b, "shape": [0, 2**32, 2**32], "strides": [1, 1, 1]}),
        r"meta\.outputs\[0\]\.shape\[1\]: 4294967296 is outside \[0, \d+\]",
    ),
    "empty_tensor_too_many_elements": (
        _set(("outputs", 0), lambda b: {**b, "shape": [2000, 0, 2000], "strides": [1, 1, 1]}),
        r"meta\.outputs\[0\]\.shape: \[2000, 0, 2000\] is 4000000 float32 elements",
    ),
    # numbers PyTorch cannot convert (OverflowError inside it), CUDA-only arguments
    "scalar_beyond_int64": (
        _host_op(0, target="aten.mul.Scalar", args=[{"tensor": 0}, 10**30], kwargs={}),
        r"meta\.host_ops\[0\]\.args\[1\]: integer 10{30} does not fit in int64",
    ),
    "number_for_tensor_beyond_int64": (
        _host_op(0, target="aten.add.Tensor", args=[{"tensor": 0}, -(10**40)], kwargs={}),
        r"meta\.host_ops\[0\]\.args\[1\]: integer -10{40} does not fit in int64",
    ),
    "clamp_bound_beyond_int64": (
        _host_op(0, target="aten.clamp.default", args=[{"tensor": 0}], kwargs={"max": 2**64}),
        r"meta\.host_ops\[0\]\.kwargs\.max: integer 18446744073709551616 does not fit",
    ),
    "softmax_half_to_float": (
        _host_op(0, target="aten._softmax.default", args=[{"tensor": 0}, -1, True], kwargs={}),
        r"meta\.host_ops\[0\]\.args\[2\]: half_to_float must be one of \[False\]",
    ),
    # the hardware config: names that name directories, sizes the RTL and ISA cannot have
    "hw_name_path": (
        _set(("hw", "name"), "../../etc"),
        r"meta\.hw\.name: '\.\./\.\./etc' is not 1 to 64 of \[A-Za-z0-9\._-\]",
    ),
    "hw_name_long": (_set(("hw", "name"), "x" * 300), r"meta\.hw\.name: 'x+' is not 1 to 64"),
    "hw_name_escape": (_set(("hw", "name"), "\x1b[2J"), r"meta\.hw\.name: '\\x1b\[2J' is not"),
    "hw_name_surrogate": (_set(("hw", "name"), "\ud800"), r"meta\.hw\.name: '\\ud800' is not"),
    "hw_array_256": (
        _set(("hw", "array_dim"), 256),
        r"meta\.hw\.array_dim: 256 is not .* \[2, 64\]",
    ),
    "hw_spad_64mib": (
        _set(("hw", "spad_kib"), 64 * 1024),
        r"meta\.hw\.spad_kib: 65536 is not a number in \[1, 2048\]",
    ),
    "hw_acc_64mib": (
        _set(("hw", "acc_kib"), 64 * 1024),
        r"meta\.hw\.acc_kib: 65536 is not a number in \[1, 4096\]",
    ),
    "hw_bus_not_a_power_of_two": (
        _set(("hw", "dram_bus_bits"), 384),
        r"meta\.hw\.dram_bus_bits: 384 is not a power of two",
    ),
    # identifiers reach terminals: no escape sequences, newlines or endless names
    "node_name_escape": (
        _host_op(0, node="gelu)\n00000000:  HALT\x1b[31m"),
        r"meta\.host_ops\[0\]\.node: .*\\n00000000.* holds characters other than printable",
    ),
    "layer_path_long": (
        _set(("layers", 0, "path"), "a." * 200),
        r"meta\.layers\[0\]\.path: 400 characters \(at most 256\)",
    ),
    "buffer_name_newline": (
        _set(("memory", "buffers", 0, "name"), "p\nq"),
        r"meta\.memory\.buffers\[0\]\.name: .* holds characters other than printable",
    ),
    "binding_name_bell": (
        _set(("inputs", 0, "name"), "x\x07"),
        r"meta\.inputs\[0\]\.name: .* holds characters other than printable",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_meta_is_refused_naming_the_field(fallback, name):
    edit, match = HOSTILE[name]
    refused(edit_meta(fallback[1], edit), match)


def test_hostile_sections_are_refused(fallback):
    blob = fallback[1]
    header, sections = unpack(blob)
    start = 4 + 32 * len(sections)
    offsets = {}
    at = start
    for n, d in sections:
        offsets[n] = (at, len(d))
        at += len(d)
    overlapping = [(n, o, ln) for n, (o, ln) in offsets.items()]
    overlapping[1] = (overlapping[1][0], overlapping[0][1], overlapping[1][2])
    refused(
        seal(header, pack(sections, overlapping)), r"sections\[\d\] \(\w+\)\.offset: \d+ overlaps"
    )
    past = [(n, o, ln) for n, (o, ln) in offsets.items()]
    past[2] = (past[2][0], past[2][1], past[2][2] + 4096)
    refused(seal(header, pack(sections, past)), r"sections\[2\] \(const\)\.length: .* runs past")
    renamed = [[("exec" if n == "const" else n), d] for n, d in sections]
    refused(seal(header, pack(renamed)), r"sections\[2\]\.name: unknown section b'exec")
    refused(seal(header, pack(sections[:2])), r"sections: 2 sections; a blob has 3")
    refused(seal(header, pack(sections) + b"hidden"), r"sections: 6 bytes after the last section")
    refused(edit_section(blob, "code", lambda c: c[:-3]), r"sections\.code: .* whole number")
    refused(
        edit_section(blob, "code", lambda c: c[:-INSN_BYTES]),
        r"meta\.memory\.code_bytes: \d+; the code has",
    )
    refused(edit_section(blob, "meta", lambda m: m[:-1]), r"meta: not valid JSON")
    refused(edit_section(blob, "meta", lambda m: b"[" * 100000), r"meta: not valid JSON")
    refused(edit_section(blob, "const", lambda c: c[:-4]), r"meta\.constants\[\d+\]\.offset")


def _grow_image(meta: dict, nbytes: int) -> dict:
    """The activation buffer that ends last made nbytes larger, the memory plan with it
    (a program with a larger footprint, as the planner would lay it out); returns it."""
    mem = meta["memory"]
    buf = max(
        (b for b in mem["buffers"] if b["kind"] == "activation"),
        key=lambda b: b["addr"] + b["size"],
    )
    buf["size"] += nbytes
    mem["activations"][1] = buf["addr"] + buf["size"]
    mem["total"] = -(-mem["activations"][1] // 64) * 64
    return buf


def _view(buf: dict, shape: list[int], strides: list[int] | None = None, offset=0) -> dict:
    if strides is None:  # dense
        strides = [1] * len(shape)
        for k in range(len(shape) - 2, -1, -1):
            strides[k] = strides[k + 1] * shape[k + 1]
    b = {"name": "v", "addr": buf["addr"], "buffer": buf["name"], "dtype": "float32"}
    return {**b, "shape": shape, "strides": strides, "offset": offset}


def test_zero_stride_reads_are_bounded_by_the_image(fallback):
    """A zero-stride view of a few bytes may claim as many elements as the image holds
    bytes, each read out at every checkpoint: a run's reads are bounded (read_budget)."""

    def edit(meta):
        buf = _grow_image(meta, 16 << 20)
        zero = _view(buf, [4 << 20], [0])  # 16 MiB read per view
        meta["layers"][0]["inputs"] = [zero] * 13

    refused(
        edit_meta(fallback[1], edit),
        r"meta: a run would read \d+ bytes .*; the budget of a \d+-byte image is"
        r" \d+ \(8 x image \+ 67108864\)",
    )

    def many(meta):
        meta["layers"][0]["inputs"] = [meta["layers"][0]["output"]] * MAX_BINDINGS

    refused(
        edit_meta(fallback[1], many),
        rf"meta\.layers\[0\]\.inputs\[\d+\]: more than {MAX_BINDINGS} tensor bindings",
    )


CONV_ARGS = [{"tensor": 0}, {"tensor": 1}, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1]


def _conv(blob: bytes, zero_stride: bool) -> Program:
    """Host op 0 as a convolution of [1, 64, 64, 64] by [64, 64, 9, 9] (2.1e9 flops), its
    operands zero-stride views of one element or dense tensors."""

    def edit(meta):
        buf = _grow_image(meta, 4 << 20)
        shapes = ([1, 64, 64, 64], [64, 64, 9, 9], [1, 64, 56, 56])
        if zero_stride:
            views = [_view(buf, s, [0] * 4) for s in shapes]
        else:
            at, views = 0, []
            for s in shapes:
                views.append(_view(buf, s, offset=at))
                at += -(-math.prod(s) // 16) * 16
        meta["host_ops"][0].update(
            target="aten.convolution.default", args=CONV_ARGS, kwargs={}, inputs=views[:2]
        )
        meta["host_ops"][0]["outputs"] = views[2:]

    return Program.from_bytes(edit_meta(blob, edit))


def test_host_op_flops_are_bounded_by_the_elements_it_holds(fallback):
    """Counted on the meta device before anything runs: a convolution of zero-stride
    views asks for far more arithmetic than its tensors hold; the dense one runs."""
    with pytest.raises(
        HostOpError,
        match=r"host op 0 aten\.convolution\.default \(node \w+\): asks for 2\.08e\+09 flops;"
        r" its tensors hold 3 elements",
    ):
        _conv(fallback[1], zero_stride=True)(X)
    _conv(fallback[1], zero_stride=False)(X)  # 794,624 elements: within the budget


def test_hardware_configs_and_the_rtl_build_key():
    """configs/hw/ are inside the loader's bounds; a config named like the default one
    but otherwise different never shares its RTL build directory."""
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        hw = HwConfig.from_yaml(path)
        assert hw_config_of(hw.to_dict()) == hw, path
    twin = dataclasses.replace(DEFAULT_HW, spad_kib=64)
    assert twin.name == DEFAULT_HW.name
    keys = {_key(h, "loom_tb_top", False, {}, []) for h in (DEFAULT_HW, twin)}
    assert len(keys) == 2 and all(k.startswith("loom-16x16-") for k in keys), keys
    for name in ("a/b", "", "x" * 65, "\ud800", "a\nb"):
        with pytest.raises(ValueError, match="name must be 1 to 64"):
            dataclasses.replace(DEFAULT_HW, name=name)


def test_blob_strings_are_escaped_when_printed(fallback):
    """Defence in depth for a Program built in memory: the listing escapes them."""
    program = in_memory_copy(fallback[0])
    program.meta["host_ops"][0]["node"] = "gelu)\n00000000:  HALT\x1b[31m"
    text = program.describe_segments()
    assert "\x1b" not in text and "\\n00000000:  HALT\\x1b[31m" in text
    assert printable("linear_3 transformer.h.0.attn") == "linear_3 transformer.h.0.attn"


# ---------------------------------------------------------------- the runtime's guards
def in_memory_copy(program: Program) -> Program:
    return Program(program.hw, program.code, program.const_data, copy.deepcopy(program.meta))


def test_runtime_refuses_a_host_op_the_loader_would_refuse(fallback):
    """Defence in depth: a Program built in memory (not loaded) meets the same list."""
    program = in_memory_copy(fallback[0])
    program.meta["host_ops"][0]["target"] = "aten.from_file.default"
    with pytest.raises(HostOpError, match="host op 0 aten.from_file.default .* not an allowed"):
        program(X)


def test_pytorch_assertions_are_host_op_errors_and_bounds_have_their_own_error(fallback):
    """PyTorch's Python code checks arguments with assert (embedding with a 1-D weight):
    a HostOpError naming the op. A binding outside the image (only a Program built in
    memory gets one past the loader) stops with ImageBoundsError, not AssertionError."""
    program = in_memory_copy(fallback[0])
    op = program.meta["host_ops"][0]
    ids = {**op["inputs"][0], "dtype": "int32", "shape": [2], "strides": [1]}
    op.update(target="aten.embedding.default", args=[{"tensor": 0}, {"tensor": 1}], kwargs={})
    op["inputs"] = [{**op["inputs"][0], "shape": [64], "strides": [1]}, ids]
    with pytest.raises(HostOpError, match=r"host op 0 aten\.embedding\.default .* must be 2-D"):
        program(X)
    program = in_memory_copy(fallback[0])
    program.meta["outputs"][0]["offset"] = 10**6
    with pytest.raises(ImageBoundsError, match=r"outside the \d+-byte image"):
        program(X)
    assert not issubclass(ImageBoundsError, AssertionError)


def test_host_results_that_do_not_fit_their_bindings_are_refused_before_running(fallback):
    """The op runs on the meta device first: a result shape the output binding does not
    have is refused before PyTorch computes (or allocates) anything."""
    program = in_memory_copy(fallback[0])
    out = program.meta["host_ops"][1]["outputs"][0]
    out["shape"] = [out["shape"][0] // 2, *out["shape"][1:]]
    with pytest.raises(HostOpError, match=r"host op 1 aten\.cumsum\.default .*output 0 returns"):
        program(X)


# ---------------------------------------------------------------- fuzzing
# A mutated blob that loads must run to completion on the ISA model or stop with a
# clear Loom error naming where: a device fault (ExecError), a host op PyTorch refuses
# (HostOpError) or a checkpoint outside the layer table (CheckpointError). Any other
# exception, an ImageBoundsError of the image's bounds guard included, is a bug.
CLEAR_RUN_ERRORS = (ExecError, HostOpError, CheckpointError)

HOSTILE_INTS = [-1, 0, 1, 2, 3, 7, 64, 2**31 - 1, 2**31, 2**32, 2**63, -(2**63), 10**30]
HOSTILE_STRINGS = ["", "__import__", "aten.from_file.default", "aten.cat.default", "float32"]
HOSTILE_STRINGS += ["int32", "bool", "tensor", "x" * 300, "device", "cpu", "\0"]
OTHER_VALUES = [
    None,
    True,
    False,
    0.5,
    float("nan"),
    float("inf"),
    1e308,
    [],
    {},
    [0],
    {"tensor": 0},
]


def paths(node, at=()):
    """Every path into the meta tree (the root excluded)."""
    out = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for k, v in items:
        out.append((*at, k))
        out.extend(paths(v, (*at, k)))
    return out


@st.composite
def mutations(draw, value):
    """A replacement for value: of its own type (nearby or hostile) or of another."""
    kind = draw(st.sampled_from(["same", "other"]))
    if kind == "same" and type(value) is int:
        return draw(
            st.one_of(
                st.sampled_from(HOSTILE_INTS),
                st.integers(-4, 4).map(lambda d: value + d),
                st.integers(1, 40).map(lambda s: value << s),
            )
        )
    if kind == "same" and isinstance(value, str):
        return draw(st.sampled_from([*HOSTILE_STRINGS, *hostops.HOST_OPS]))
    if kind == "same" and isinstance(value, list) and value:
        how = draw(st.sampled_from(["drop", "dup", "swap", "clear"]))
        v = list(value)
        i = draw(st.integers(0, len(v) - 1))
        if how == "drop":
            del v[i]
        elif how == "dup":
            v.insert(i, copy.deepcopy(v[i]))
        elif how == "swap":
            j = draw(st.integers(0, len(v) - 1))
            v[i], v[j] = v[j], v[i]
        else:
            v = []
        return v
    if kind == "same" and isinstance(value, dict) and value:
        v = dict(value)
        if draw(st.booleans()):
            del v[draw(st.sampled_from(sorted(v)))]
        else:
            v[draw(st.sampled_from(["extra", "tensor", "dtype", "addr"]))] = 0
        return v
    # a copy: a shared [] placed in the tree and later mutated would change the constant
    return copy.deepcopy(
        draw(st.sampled_from([*OTHER_VALUES, *HOSTILE_INTS[:4], *HOSTILE_STRINGS[:3]]))
    )


@st.composite
def meta_mutations(draw, meta):
    meta = copy.deepcopy(meta)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(meta)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = meta
        for k in path[:-1]:
            parent = parent[k]
        if isinstance(parent, dict) and draw(st.integers(0, 9)) == 0:
            del parent[path[-1]]  # a dropped key
        else:
            parent[path[-1]] = draw(mutations(parent[path[-1]]))
    return meta


def inputs_for(program: Program) -> list[torch.Tensor]:
    """Inputs of the shapes and types the (possibly mutated) program binds."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for b in program.meta["inputs"]:
        if "addr" not in b:
            continue
        if b["dtype"] == "int32":
            out.append(torch.randint(0, 32, b["shape"], generator=gen))
        elif b["dtype"] == "bool":
            out.append(torch.rand(b["shape"], generator=gen) > 0.5)
        else:
            out.append(torch.randn(b["shape"], generator=gen))
    return out


def load_and_run(blob: bytes) -> str:
    """The property: refused, or runs to the end, or stops with a clear Loom error."""
    try:
        program = Program.from_bytes(blob)
    except BlobError:
        return "refused"
    try:
        sim.run(program, inputs_for(program), check=False)
    except CLEAR_RUN_ERRORS:
        return "fault"
    return "ran"


FUZZ = settings(
    max_examples=1200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _fuzz_meta(blob: bytes, data) -> None:
    header, sections = unpack(blob)
    meta = json.loads(dict(sections)["meta"])
    mutated = data.draw(meta_mutations(meta))
    payload_sections = [
        [n, json.dumps(mutated).encode() if n == "meta" else d] for n, d in sections
    ]
    hw = mutated.get("hw") if isinstance(mutated.get("hw"), dict) else None
    load_and_run(seal(header, pack(payload_sections), hw))


def _fuzz_binary(blob: bytes, data) -> None:
    header, sections = unpack(blob)
    how = data.draw(st.sampled_from(["flip", "flip", "flip", "resize", "table"]))
    if how == "flip":
        i = data.draw(st.sampled_from([1, 2]))  # code or const
        d = bytearray(sections[i][1])
        for _ in range(data.draw(st.integers(1, 8))):
            if d:
                at = data.draw(st.integers(0, len(d) - 1))
                d[at] ^= 1 << data.draw(st.integers(0, 7))
        sections[i][1] = bytes(d)
        payload = pack(sections)
    elif how == "resize":
        i = data.draw(st.integers(0, 2))
        n = data.draw(st.sampled_from([-16, -8, -1, 1, 8, 16]))
        d = sections[i][1]
        sections[i][1] = d[:n] if n < 0 else d + bytes(n)
        payload = pack(sections)
    else:
        start = 4 + 32 * len(sections)
        table, at = [], start
        for n, d in sections:
            table.append([n, at, len(d)])
            at += len(d)
        row, col = data.draw(st.integers(0, 2)), data.draw(st.integers(1, 2))
        table[row][col] = max(
            0, table[row][col] + data.draw(st.sampled_from([-32, -1, 1, 32, 2**40]))
        )
        payload = pack(sections, [tuple(r) for r in table])
    load_and_run(seal(header, payload))


@FUZZ
@given(data=st.data())
def test_fuzz_meta_fallback(fallback, data):
    _fuzz_meta(fallback[1], data)


@FUZZ
@given(data=st.data())
def test_fuzz_meta_gathered(gathered, data):
    _fuzz_meta(gathered[1], data)


@settings(FUZZ, max_examples=1200)
@given(data=st.data())
def test_fuzz_binary_sections(fallback, gathered, data):
    blob = fallback[1] if data.draw(st.booleans()) else gathered[1]
    _fuzz_binary(blob, data)


@pytest.mark.slow
@settings(FUZZ, max_examples=10000)
@given(data=st.data())
def test_fuzz_meta_many(fallback, gathered, data):
    blob = fallback[1] if data.draw(st.booleans()) else gathered[1]
    if data.draw(st.booleans()):
        _fuzz_meta(blob, data)
    else:
        _fuzz_binary(blob, data)
