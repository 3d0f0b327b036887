"""The host-op allow-list: the ATen overloads a program blob may ask the host to run.

A host op is a node the device cannot run; the runtime runs it with PyTorch on the DRAM
image (sim/runtime/host.py). Its target and arguments come from the blob, and a blob is
untrusted input (docs/blob.md): PyTorch's operator registry also holds ops that read
files (aten.from_file), draw random numbers, write their inputs in place or call out to
other libraries. So a host op may name only an overload listed here, and each argument
must be of the kind its schema says.

Each entry is PyTorch's own schema text of the overload (tests/test_blob_trust.py checks
it against torch, and that the op neither mutates nor draws random numbers), so the
argument kinds are not restated by hand. Schemas with alias or mutation annotations,
variable-length returns or types without a JSON encoding below are refused when this
module is imported. A `str` argument, and an argument whose schema allows values that are
not pure (dropout), must list its allowed values in CHOICES.

The list holds the ops that had no device lowering when it was drawn up and that models
of the field use (convolution, where, index.Tensor, arange, cumsum, comparisons, dtype
conversion; cat, mean, exact GELU and log_softmax have lowerings since), and every
overload with a device lowering, since a lowering may refuse an argument pattern and
leave the node to the CPU. Extending it: add the overload's schema
(`str(torch.ops.aten.<op>.<overload>._schema)`) and, for str arguments, its CHOICES; the
compiler refuses to emit anything else, with the node named.

JSON encoding of an argument (compiler/lower.py: _host_arg):
    Tensor               {"tensor": i}, i an index into the op's inputs (or a number,
                         which PyTorch wraps as a 0-d tensor: add.Tensor(x, 1))
    int, SymInt          a JSON integer            float        a JSON number
    bool                 true / false              Scalar       a number or a bool
    ScalarType           {"dtype": name}, name in DTYPES
    Layout               {"layout": "strided"}     Device       {"device": "cpu"}
    MemoryFormat         {"memory_format": name}, name in MEMORY_FORMATS
    T[] / T[N]           a JSON list of T          T?           T or null
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The dtype names a host-op argument may carry (as torch spells them without "torch.").
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8")
DTYPES += ("uint8", "bool")
LAYOUTS = ("strided",)
DEVICES = ("cpu",)
MEMORY_FORMATS = ("contiguous_format", "preserve_format")

# Bounds on what an argument may say, so a crafted blob cannot ask for absurd work:
# integers within +-2**32 (DRAM addresses are 32 bits), lists no longer than MAX_LIST.
INT_LIMIT = 2**32
MAX_LIST = 64
# A number where the schema says Scalar or float (or a number standing for a Tensor):
# an integer must fit in int64, what PyTorch converts it to (a larger one is an
# OverflowError inside PyTorch). Floats may be anything JSON can carry, inf and nan
# included (a fill value or clamp bound may be -inf; IEEE arithmetic, no exception).
SCALAR_INT_MIN, SCALAR_INT_MAX = -(2**63), 2**63 - 1

ALLOWED_SCHEMAS = (
    # emitted for the repository's models (tests/test_blob_trust.py compiles them)
    "aten::cat(Tensor[] tensors, int dim=0) -> Tensor",
    'aten::gelu(Tensor self, *, str approximate="none") -> Tensor',
    "aten::mean.dim(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None)"
    " -> Tensor",
    # known CPU fallbacks
    "aten::convolution(Tensor input, Tensor weight, Tensor? bias, SymInt[] stride,"
    " SymInt[] padding, SymInt[] dilation, bool transposed, SymInt[] output_padding,"
    " SymInt groups) -> Tensor",
    "aten::where.self(Tensor condition, Tensor self, Tensor other) -> Tensor",
    "aten::_log_softmax(Tensor self, int dim, bool half_to_float) -> Tensor",
    "aten::index.Tensor(Tensor self, Tensor?[] indices) -> Tensor",
    "aten::arange(Scalar end, *, ScalarType? dtype=None, Layout? layout=None,"
    " Device? device=None, bool? pin_memory=None) -> Tensor",
    "aten::arange.start_step(Scalar start, Scalar end, Scalar step=1, *,"
    " ScalarType? dtype=None, Layout? layout=None, Device? device=None,"
    " bool? pin_memory=None) -> Tensor",
    "aten::cumsum(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor",
    "aten::gt.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::lt.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::ge.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::le.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::eq.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::ne.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::gt.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::lt.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::ge.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::le.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::eq.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::ne.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::bitwise_and.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::bitwise_or.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::bitwise_not(Tensor self) -> Tensor",
    "aten::logical_not(Tensor self) -> Tensor",
    "aten::_to_copy(Tensor self, *, ScalarType? dtype=None, Layout? layout=None,"
    " Device? device=None, bool? pin_memory=None, bool non_blocking=False,"
    " MemoryFormat? memory_format=None) -> Tensor",
    "aten::sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *,"
    " ScalarType? dtype=None) -> Tensor",
    "aten::amax(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor",
    "aten::amin(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor",
    "aten::argmax(Tensor self, int? dim=None, bool keepdim=False) -> Tensor",
    "aten::erf(Tensor self) -> Tensor",
    "aten::sin(Tensor self) -> Tensor",
    "aten::cos(Tensor self) -> Tensor",
    "aten::log(Tensor self) -> Tensor",
    "aten::log1p(Tensor self) -> Tensor",
    "aten::constant_pad_nd(Tensor self, SymInt[] pad, Scalar value=0) -> Tensor",
    "aten::clamp(Tensor self, Scalar? min=None, Scalar? max=None) -> Tensor",
    "aten::index_select(Tensor self, int dim, Tensor index) -> Tensor",
    "aten::gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor",
    "aten::flip(Tensor self, int[] dims) -> Tensor",
    "aten::var.correction(Tensor self, int[1]? dim=None, *, Scalar? correction=None,"
    " bool keepdim=False) -> Tensor",
    "aten::topk(Tensor self, SymInt k, int dim=-1, bool largest=True, bool sorted=True)"
    " -> (Tensor values, Tensor indices)",
    "aten::pow.Tensor_Tensor(Tensor self, Tensor exponent) -> Tensor",
    "aten::div.Tensor_mode(Tensor self, Tensor other, *, str? rounding_mode) -> Tensor",
    "aten::sort(Tensor self, int dim=-1, bool descending=False) -> (Tensor values, Tensor indices)",
    "aten::max_pool2d_with_indices(Tensor self, int[2] kernel_size, int[2] stride=[],"
    " int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) -> (Tensor, Tensor)",
    "aten::avg_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0,"
    " bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None)"
    " -> Tensor",
    "aten::repeat(Tensor self, SymInt[] repeats) -> Tensor",
    "aten::linalg_vector_norm(Tensor self, Scalar ord=2, int[1]? dim=None,"
    " bool keepdim=False, *, ScalarType? dtype=None) -> Tensor",
    "aten::sign(Tensor self) -> Tensor",
    "aten::floor(Tensor self) -> Tensor",
    "aten::ceil(Tensor self) -> Tensor",
    "aten::round(Tensor self) -> Tensor",
    "aten::expm1(Tensor self) -> Tensor",
    "aten::remainder.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::remainder.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::fmod.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::fmod.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::hardtanh(Tensor self, Scalar min_val=-1, Scalar max_val=1) -> Tensor",
    "aten::leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor",
    "aten::elu(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1) -> Tensor",
    "aten::logical_and(Tensor self, Tensor other) -> Tensor",
    "aten::logical_or(Tensor self, Tensor other) -> Tensor",
    # every overload with a device lowering (compiler/ops/): a lowering may refuse
    "aten::addmm(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1)"
    " -> Tensor",
    "aten::mm(Tensor self, Tensor mat2) -> Tensor",
    "aten::bmm(Tensor self, Tensor mat2) -> Tensor",
    "aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor",
    "aten::scaled_dot_product_attention(Tensor query, Tensor key, Tensor value,"
    " Tensor? attn_mask=None, float dropout_p=0., bool is_causal=False, *,"
    " float? scale=None, bool enable_gqa=False) -> Tensor",
    "aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    "aten::add.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor",
    "aten::sub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    "aten::sub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor",
    "aten::mul.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::mul.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::div.Tensor(Tensor self, Tensor other) -> Tensor",
    "aten::div.Scalar(Tensor self, Scalar other) -> Tensor",
    "aten::maximum(Tensor self, Tensor other) -> Tensor",
    "aten::minimum(Tensor self, Tensor other) -> Tensor",
    "aten::tanh(Tensor self) -> Tensor",
    "aten::exp(Tensor self) -> Tensor",
    "aten::rsqrt(Tensor self) -> Tensor",
    "aten::reciprocal(Tensor self) -> Tensor",
    "aten::neg(Tensor self) -> Tensor",
    "aten::relu(Tensor self) -> Tensor",
    "aten::abs(Tensor self) -> Tensor",
    "aten::sqrt(Tensor self) -> Tensor",
    "aten::sigmoid(Tensor self) -> Tensor",
    "aten::silu(Tensor self) -> Tensor",
    "aten::pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor",
    "aten::embedding(Tensor weight, Tensor indices, SymInt padding_idx=-1,"
    " bool scale_grad_by_freq=False, bool sparse=False) -> Tensor",
    "aten::layer_norm(Tensor input, SymInt[] normalized_shape, Tensor? weight=None,"
    " Tensor? bias=None, float eps=1.0000000000000001e-05, bool cudnn_enable=True) -> Tensor",
    "aten::_softmax(Tensor self, int dim, bool half_to_float) -> Tensor",
    "aten::softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor",
)

# Allowed values of arguments whose type alone allows too much: every str argument (an
# enum in disguise), dropout (random unless 0), pinned memory (needs a GPU runtime).
CHOICES: dict[str, dict[str, tuple]] = {
    "aten.gelu.default": {"approximate": ("none", "tanh")},
    "aten.div.Tensor_mode": {"rounding_mode": (None, "trunc", "floor")},
    "aten.scaled_dot_product_attention.default": {"dropout_p": (0.0,)},
    "aten._to_copy.default": {"pin_memory": (None, False), "non_blocking": (False,)},
    "aten.arange.default": {"pin_memory": (None, False)},
    "aten.arange.start_step": {"pin_memory": (None, False)},
    # half_to_float=True is for CUDA half inputs only (PyTorch asserts in Python code)
    "aten._softmax.default": {"half_to_float": (False,)},
    "aten._log_softmax.default": {"half_to_float": (False,)},
}


class HostOpRefused(ValueError):
    """A host op outside the allow-list or with arguments of the wrong kinds. `field`
    is the path of the offending part relative to the op ("target", "args[1]",
    "kwargs.dim"); the blob loader prefixes where the op is, the compiler the node."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Param:
    name: str
    base: str  # Tensor, int, SymInt, float, bool, Scalar, ScalarType, Layout, ...
    optional: bool  # T?: null allowed
    is_list: bool  # T[] or T[N]
    item_optional: bool  # T?[]: null allowed per item
    has_default: bool
    keyword_only: bool


@dataclass(frozen=True)
class HostOpSpec:
    target: str  # "aten.cat.default"
    schema: str
    params: tuple[Param, ...]
    returns: int  # how many tensors it returns

    @property
    def positional(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.keyword_only)


_BASES = {"Tensor", "int", "SymInt", "float", "bool", "Scalar", "str"}
_BASES |= {"ScalarType", "Layout", "Device", "MemoryFormat"}
_TYPE = re.compile(r"^(?P<base>\w+)(?P<item_opt>\?)?(?P<list>\[\d*\])?(?P<opt>\?)?$")


def _split_top(text: str) -> list[str]:
    """Split on the commas outside brackets (defaults such as [0, 0] hold commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    return parts + [tail] if tail else parts


def parse_schema(schema: str) -> HostOpSpec:
    """A HostOpSpec from PyTorch's schema text; ValueError for anything the host-op
    encoding cannot carry or that is not a pure function of its arguments."""
    m = re.fullmatch(r"(\w+)::(\w+)(?:\.(\w+))?\((.*)\) -> (.+)", schema)
    if m is None:
        raise ValueError(f"not an operator schema: {schema!r}")
    ns, op, overload, arg_text, ret_text = m.groups()
    if "(" in arg_text or "!" in ret_text or "(a" in ret_text:
        raise ValueError(f"{schema!r}: aliasing or mutating schemas cannot be host ops")
    params, keyword_only = [], False
    for part in _split_top(arg_text):
        if part == "*":
            keyword_only = True
            continue
        decl, _, _default = part.partition("=")
        type_text, name = decl.rsplit(" ", 1)
        t = _TYPE.match(type_text)
        if t is None or t["base"] not in _BASES:
            raise ValueError(f"{schema!r}: argument type {type_text!r} has no host encoding")
        if name == "out":
            raise ValueError(f"{schema!r}: out= variants cannot be host ops")
        is_list = bool(t["list"])
        # "T?" is an optional T; "T?[]" a list of optional T; "T[]?" an optional list
        optional = bool(t["opt"]) or (bool(t["item_opt"]) and not is_list)
        item_optional = bool(t["item_opt"]) and is_list
        params.append(
            Param(name, t["base"], optional, is_list, item_optional, "=" in part, keyword_only)
        )
    ret = ret_text.strip()
    if ret.startswith("("):
        returns = [r.split()[0] for r in _split_top(ret[1:-1])]
    else:
        returns = [ret.split()[0]]
    if any(r != "Tensor" for r in returns):
        raise ValueError(f"{schema!r}: host ops return a fixed number of tensors")
    target = f"{ns}.{op}.{overload or 'default'}"
    for p in params:
        if p.base == "str" and p.name not in CHOICES.get(target, {}):
            raise ValueError(f"{schema!r}: str argument {p.name!r} needs its CHOICES")
    return HostOpSpec(target, schema, tuple(params), len(returns))


HOST_OPS: dict[str, HostOpSpec] = {
    spec.target: spec for spec in (parse_schema(s) for s in ALLOWED_SCHEMAS)
}


def _kind(p: Param) -> str:
    """How the schema's type reads to a person, for messages."""
    t = p.base + ("?" if p.item_optional else "") + ("[]" if p.is_list else "")
    return t + ("?" if p.optional else "")


def _is_int(v) -> bool:
    return type(v) is int


def _is_number(v) -> bool:
    return type(v) in (int, float)


def _check_number(v, field: str) -> None:
    """A number PyTorch can take as a Scalar: an integer within int64, or any float."""
    if type(v) is int and not SCALAR_INT_MIN <= v <= SCALAR_INT_MAX:
        raise HostOpRefused(field, f"integer {v} does not fit in int64"[:200])


def _check_item(base: str, v, n_inputs: int, field: str, used: set[int]) -> None:
    """One (non-list, non-null) value against its base type; tensor references are
    added to `used`."""
    if base == "Tensor":
        if _is_number(v) or type(v) is bool:
            _check_number(v, field)
            return  # a Python number, which PyTorch wraps as a 0-d tensor (add(x, 1))
        if not (isinstance(v, dict) and set(v) == {"tensor"} and _is_int(v["tensor"])):
            raise HostOpRefused(field, f'expected a tensor reference {{"tensor": i}}, got {v!r}')
        if not 0 <= v["tensor"] < n_inputs:
            raise HostOpRefused(
                field, f"tensor index {v['tensor']} is not one of the op's {n_inputs} inputs"
            )
        used.add(v["tensor"])
        return
    if base in ("int", "SymInt"):
        if not _is_int(v):
            raise HostOpRefused(field, f"expected an integer, got {v!r}")
        if abs(v) > INT_LIMIT:
            raise HostOpRefused(field, f"integer {v} is out of range (|v| <= 2**32)")
        return
    if base == "float":  # inf and nan included: a fill value may be -inf
        if not _is_number(v):
            raise HostOpRefused(field, f"expected a number, got {v!r}")
        _check_number(v, field)
    elif base == "Scalar":
        if not (_is_number(v) or type(v) is bool):
            raise HostOpRefused(field, f"expected a number or a bool, got {v!r}")
        _check_number(v, field)
    elif base == "bool":
        if type(v) is not bool:
            raise HostOpRefused(field, f"expected true or false, got {v!r}")
    elif base == "str":
        if type(v) is not str:
            raise HostOpRefused(field, f"expected a string, got {v!r}")
    else:
        key, names = {
            "ScalarType": ("dtype", DTYPES),
            "Layout": ("layout", LAYOUTS),
            "Device": ("device", DEVICES),
            "MemoryFormat": ("memory_format", MEMORY_FORMATS),
        }[base]
        if not (isinstance(v, dict) and set(v) == {key}):
            raise HostOpRefused(field, f'expected {{"{key}": name}}, got {v!r}')
        if v[key] not in names:
            raise HostOpRefused(field, f"{key} {v[key]!r} is not one of {list(names)}")


def _check_value(
    p: Param, v, n_inputs: int, field: str, choices: tuple | None, used: set[int]
) -> None:
    if choices is not None:
        # == would let 0 stand for False; compare type and value
        if not any(type(v) is type(c) and v == c for c in choices):
            raise HostOpRefused(field, f"{p.name} must be one of {list(choices)}, got {v!r}")
        return
    if v is None:
        if not p.optional:
            raise HostOpRefused(field, f"{p.name} ({_kind(p)}) cannot be null")
        return
    if not p.is_list:
        _check_item(p.base, v, n_inputs, field, used)
        return
    if not isinstance(v, list):
        raise HostOpRefused(field, f"{p.name} ({_kind(p)}) must be a list, got {v!r}")
    if len(v) > MAX_LIST:
        raise HostOpRefused(field, f"{p.name} has {len(v)} items (at most {MAX_LIST})")
    for i, item in enumerate(v):
        if item is None and p.item_optional:
            continue
        _check_item(p.base, item, n_inputs, f"{field}[{i}]", used)


def check_call(target, args, kwargs, n_inputs: int, n_outputs: int) -> HostOpSpec:
    """Refuse (HostOpRefused) a host op that is not on the allow-list, whose arguments
    are not of their schema's kinds or that has an input no argument references (it
    would be read out of DRAM for nothing); the op's spec otherwise."""
    spec = HOST_OPS.get(target) if type(target) is str else None
    if spec is None:
        raise HostOpRefused("target", f"{target!r} is not an allowed host op (contract.hostops)")
    if not isinstance(args, list):
        raise HostOpRefused("args", f"must be a list, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise HostOpRefused("kwargs", f"must be an object, got {type(kwargs).__name__}")
    positional = spec.positional
    if len(args) > len(positional):
        raise HostOpRefused(
            "args", f"{target} takes {len(positional)} positional arguments, got {len(args)}"
        )
    choices = CHOICES.get(target, {})
    given, used = set(), set()
    for i, (p, v) in enumerate(zip(positional, args, strict=False)):
        _check_value(p, v, n_inputs, f"args[{i}]", choices.get(p.name), used)
        given.add(p.name)
    by_name = {p.name: p for p in spec.params}
    for name, v in kwargs.items():
        p = by_name.get(name)
        if p is None or name in given:
            why = "given twice" if p is not None else f"is not an argument of {target}"
            raise HostOpRefused(f"kwargs.{name}", why)
        _check_value(p, v, n_inputs, f"kwargs.{name}", choices.get(name), used)
        given.add(name)
    missing = [p.name for p in spec.params if not p.has_default and p.name not in given]
    if missing:
        raise HostOpRefused("args", f"{target} needs {missing}")
    for j in range(n_inputs):
        if j not in used:
            raise HostOpRefused(f"inputs[{j}]", "no argument of the op references this input")
    if n_outputs != spec.returns:
        raise HostOpRefused(
            "outputs", f"{target} returns {spec.returns} tensor(s); {n_outputs} bound"
        )
    return spec
