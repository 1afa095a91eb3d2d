"""Benchmark problems: a one-line grammar, FLOP counts, and named shape sets from real networks.

A *problem* is one call configuration of one operation, written on one line::

    conv2d n8 c64 h56 w56 o64 k3 s1 p1        a ResNet-50 3x3 convolution
    conv1d n2 c64 w8000 o128 k2 s1 p256:0 d256   a causal, dilated WaveNet layer
    mp2d n8 c64 h112 w112 k3 s2 p1             ResNet-50's max pool
    ap1d n2 c64 w8000 k3 s2 p1 ceil exclpad    average pool, ceil mode, padding not counted
    fc n32 c2048 o1000                         a linear layer, 2048 -> 1000

Grammar: a head, then ``letter value`` tokens in any order, each at most once.

* head: an operation's short name (:data:`HEADS`) and, for all but ``fc``, its
  number of spatial dims: ``conv1d`` .. ``conv3d`` (convolution), ``convt1d`` ..
  ``convt3d`` (transposed convolution), ``mp1d`` .. (max pool), ``mpi1d`` .. (max-pool
  indices), ``ap1d`` .. (average pool), ``aap1d`` .. and ``amp1d`` .. (adaptive
  average and max pool), ``fc`` (linear);
* ``n`` batch, ``c`` input channels (``in_features`` for fc), ``o`` output channels
  (``out_features``; operations with weights only);
* spatial sizes by letter: 1-D ``w``; 2-D ``h w``; 3-D ``t h w`` (t: depth or time);
* ``k`` kernel, ``s`` stride, ``d`` dilation: one int for every spatial dim, or one
  per dim joined by ``x`` (``k3x1``);
* ``p`` padding: one entry for every dim or one per dim joined by ``x``; an entry
  is ``P`` (both sides) or ``B:A`` (before:after), e.g. ``p1``, ``p256:0``, ``p1x0:1``;
* ``g`` groups (convolutions); ``e`` output padding (transposed convolution, like ``k``);
  ``a`` output size (adaptive pools, like ``k``: ``a1`` is global pooling);
  flags ``ceil`` (pools: ceil mode) and ``exclpad`` (average pool: ``count_include_pad=False``).

Which tokens a head takes follows from its operation's record in :mod:`spec.operations`
(its weights and parameter names). Defaults: ``s1`` for convolutions and ``s`` = ``k``
for pools, ``p0``, ``d1``, ``g1``, ``e0``.
:func:`format_problem` writes the canonical form, which :func:`parse_problem`
reads back to the same :class:`Problem`.

>>> p = parse_problem("conv2d n8 c64 h56 w56 o64 k3 p1")
>>> p.stride, p.padding
((1, 1), ((1, 1), (1, 1)))
>>> format_problem(p)
'conv2d n8 c64 h56 w56 o64 k3 s1 p1'
>>> format_problem(parse_problem("mp1d w10 c2 n1 k2"))
'mp1d n1 c2 w10 k2 s2 p0'
>>> parse_problem("convt2d n1 c64 h28 w28 o32 k3 s2 p1 e1").y_shape()   # a decoder doubling 28 to 56
(1, 32, 56, 56)
>>> parse_problem("aap2d n8 c2048 h7 w7 a1").y_shape()                   # a ResNet head
(8, 2048, 1, 1)
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

import numpy as np

import spec
from spec import OPERATIONS, Operation, OpName, Padding

Mode: TypeAlias = Literal["forward", "backward", "fwd+bwd"]
#: The timed modes, in table order.
MODES: tuple[Mode, ...] = ("forward", "backward", "fwd+bwd")

#: Each operation's head in a descriptor (a test checks every operation of the registry has one).
HEADS: dict[OpName, str] = {
    "conv": "conv", "conv_transpose": "convt", "max_pool": "mp", "max_pool_indices": "mpi", "avg_pool": "ap",
    "adaptive_avg_pool": "aap", "adaptive_max_pool": "amp", "linear": "fc",
}
_OP_OF_HEAD: dict[str, OpName] = {head: op for op, head in HEADS.items()}
_SPATIAL_LETTERS: dict[int, tuple[str, ...]] = {1: ("w",), 2: ("h", "w"), 3: ("t", "h", "w")}
#: Flags and the parameter each sets.
_FLAGS = {"ceil": "ceil_mode", "exclpad": "count_include_pad"}


class ProblemSyntaxError(ValueError):
    """A problem descriptor that does not follow the grammar; the message is one line."""


@dataclass(frozen=True)
class Problem:
    """One call configuration of one operation.

    For ``linear``, ``spatial``, ``kernel``, ``stride``, ``padding`` and ``dilation``
    are empty, ``c`` is ``in_features`` and ``o`` is ``out_features``. For pools
    ``o`` equals ``c``. Fields an operation does not take keep their defaults.
    """

    op: OpName
    n: int
    c: int
    o: int
    spatial: tuple[int, ...] = ()
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: Padding = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    #: Transposed convolution's output padding, one per spatial dim.
    output_padding: tuple[int, ...] = ()
    #: Adaptive pooling's output size, one per spatial dim.
    output_size: tuple[int, ...] = ()

    @property
    def operation(self) -> Operation:
        return OPERATIONS[self.op]

    @property
    def ndim(self) -> int:
        """Number of spatial dims (0 for linear)."""
        return len(self.spatial)

    def x_shape(self) -> tuple[int, ...]:
        return (self.n, self.c, *self.spatial)

    def w_shape(self) -> tuple[int, ...]:
        """The weight's shape in the operation's layout (conv: (C_out, C_in / groups, *kernel)); () without weights."""
        layout = self.operation.weight_shape
        return () if layout is None else layout(self.c, self.o, self.groups, self.kernel)

    def kwargs(self) -> dict[str, object]:
        """The keyword arguments of the operation's protocol functions (its parameter model's fields)."""
        values: dict[str, object] = {
            "kernel_size": self.kernel, "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
            "groups": self.groups, "ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad,
            "output_padding": self.output_padding, "output_size": self.output_size,
        }
        return {name: values[name] for name in self.operation.param_names}

    def y_shape(self) -> tuple[int, ...]:
        """The forward output's shape, by the operation's output-shape function (spec.SpecError when invalid)."""
        x = np.empty(self.x_shape(), dtype=np.float32)  # never written: no memory is touched
        w = np.empty(self.w_shape(), dtype=np.float32) if self.operation.has_weights else None
        return self.operation.output_shape(x, w, None, **self.kwargs())

    def out_spatial(self) -> tuple[int, ...]:
        """The output's spatial shape, by the spec's output-size rule."""
        return self.y_shape()[2:]


def _positive(value: str, token: str, *, minimum: int = 1) -> int:
    if not value.isdigit():
        raise ProblemSyntaxError(f"{token!r}: {value!r} is not a non-negative integer")
    number = int(value)
    if number < minimum:
        raise ProblemSyntaxError(f"{token!r}: must be >= {minimum}")
    return number


def _per_dim(value: str, token: str, ndim: int, *, minimum: int = 1) -> tuple[int, ...]:
    parts = value.split("x")
    if len(parts) not in (1, ndim):
        raise ProblemSyntaxError(f"{token!r}: give one value or {ndim} joined by 'x'")
    numbers = tuple(_positive(part, token, minimum=minimum) for part in parts)
    return numbers * ndim if len(numbers) == 1 else numbers


def _padding(value: str, token: str, ndim: int) -> Padding:
    parts = value.split("x")
    if len(parts) not in (1, ndim):
        raise ProblemSyntaxError(f"{token!r}: give one padding entry or {ndim} joined by 'x'")
    pairs: list[tuple[int, int]] = []
    for part in parts:
        sides = part.split(":")
        if len(sides) == 1:
            both = _positive(sides[0], token, minimum=0)
            pairs.append((both, both))
        elif len(sides) == 2:
            pairs.append((_positive(sides[0], token, minimum=0), _positive(sides[1], token, minimum=0)))
        else:
            raise ProblemSyntaxError(f"{token!r}: a padding entry is P or BEFORE:AFTER")
    return tuple(pairs) * ndim if len(pairs) == 1 else tuple(pairs)


def parse_problem(text: str) -> Problem:
    """Read a one-line descriptor (see the module docstring); raise :class:`ProblemSyntaxError`.

    >>> parse_problem("fc n32 c2048 o1000") == Problem("linear", n=32, c=2048, o=1000)
    True
    >>> parse_problem("ap1d n1 c4 w9 k3 ceil exclpad").stride
    (3,)
    >>> parse_problem("conv2d n1 c3 h8 w8 o4")
    Traceback (most recent call last):
    ...
    conformance.bench_shapes.ProblemSyntaxError: 'conv2d n1 c3 h8 w8 o4': missing k (kernel)
    """
    tokens = text.split()
    if not tokens:
        raise ProblemSyntaxError("empty problem descriptor")
    head, rest = tokens[0], tokens[1:]
    match = re.fullmatch(r"([a-z]+?)([123])d", head)
    if head == HEADS["linear"]:
        op: OpName = "linear"
        ndim = 0
    elif match and match.group(1) in _OP_OF_HEAD and OPERATIONS[_OP_OF_HEAD[match.group(1)]].windowing != "none":
        op, ndim = _OP_OF_HEAD[match.group(1)], int(match.group(2))
    else:
        heads = ", ".join(f"{h}1d..{h}3d" for o, h in HEADS.items() if OPERATIONS[o].windowing != "none")
        raise ProblemSyntaxError(f"{text!r}: unknown head {head!r} ({heads} or {HEADS['linear']})")
    record = OPERATIONS[op]
    names = record.param_names
    spatial_letters = _SPATIAL_LETTERS.get(ndim, ())
    allowed = {"n", "c"} | set(spatial_letters)
    required = {"n": "batch", "c": "channels", **{letter: "spatial size" for letter in spatial_letters}}
    if record.has_weights:
        allowed.add("o")
        required["o"] = "output channels"
    if record.windowing == "kernel":
        allowed |= {"k", "s", "p", "d"}
        required["k"] = "kernel"
    for letter, name in (("g", "groups"), ("e", "output_padding")):
        if name in names:
            allowed.add(letter)
    if "output_size" in names:
        allowed.add("a")
        required["a"] = "output size"
    flags_allowed = tuple(flag for flag, name in _FLAGS.items() if name in names)
    values: dict[str, str] = {}
    flags: set[str] = set()
    for token in rest:
        if token in _FLAGS:
            if token not in flags_allowed:
                raise ProblemSyntaxError(f"{text!r}: flag {token!r} does not apply to {head}")
            if token in flags:
                raise ProblemSyntaxError(f"{text!r}: {token!r} given twice")
            flags.add(token)
            continue
        letter, value = token[:1], token[1:]
        if letter not in allowed or not value:
            raise ProblemSyntaxError(f"{text!r}: unexpected token {token!r} for {head}")
        if letter in values:
            raise ProblemSyntaxError(f"{text!r}: {letter!r} given twice")
        values[letter] = value
    for letter, meaning in required.items():
        if letter not in values:
            raise ProblemSyntaxError(f"{text!r}: missing {letter} ({meaning})")
    n = _positive(values["n"], f"n{values['n']}", minimum=0)
    c = _positive(values["c"], f"c{values['c']}")
    o = _positive(values["o"], f"o{values['o']}") if "o" in values else c
    if record.windowing == "none":
        problem = Problem(op, n, c, o)
    else:
        spatial = tuple(_positive(values[letter], f"{letter}{values[letter]}") for letter in spatial_letters)
        fields: dict[str, Any] = {}
        if record.windowing == "kernel":
            kernel = _per_dim(values["k"], "k" + values["k"], ndim)
            default_stride = "x".join(map(str, kernel)) if not record.has_weights else "1"
            fields = {
                "kernel": kernel,
                "stride": _per_dim(values.get("s", default_stride), "s" + values.get("s", default_stride), ndim),
                "padding": _padding(values.get("p", "0"), "p" + values.get("p", "0"), ndim),
                "dilation": _per_dim(values.get("d", "1"), "d" + values.get("d", "1"), ndim),
            }
        if "groups" in names:
            fields["groups"] = _positive(values.get("g", "1"), "g" + values.get("g", "1"))
        if "output_padding" in names:
            fields["output_padding"] = _per_dim(values.get("e", "0"), "e" + values.get("e", "0"), ndim, minimum=0)
        if "output_size" in names:
            fields["output_size"] = _per_dim(values["a"], "a" + values["a"], ndim)
        problem = dataclasses.replace(Problem(op, n, c, o, spatial), ceil_mode="ceil" in flags,
                                      count_include_pad="exclpad" not in flags, **fields)
    check_problem(problem, text)
    return problem


def check_problem(problem: Problem, text: str = "") -> None:
    """Reject a problem whose groups do not divide the channels, or whose output would be empty or is invalid."""
    where = text or format_problem(problem)
    if "groups" in problem.operation.param_names and (problem.c % problem.groups or problem.o % problem.groups):
        raise ProblemSyntaxError(f"{where!r}: groups g{problem.groups} must divide c{problem.c} and o{problem.o}")
    try:
        problem.y_shape()
    except spec.SpecError as error:
        if error.parameter.startswith("output size"):
            raise ProblemSyntaxError(f"{where!r}: the output would be empty ({error})") from None
        raise ProblemSyntaxError(f"{where!r}: {error}") from None


def _join(values: tuple[int, ...]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def format_problem(problem: Problem) -> str:
    """The canonical one-line descriptor of a problem (read back by :func:`parse_problem`).

    >>> format_problem(Problem("conv", 2, 64, 128, (8000,), (2,), (1,), ((256, 0),), (256,)))
    'conv1d n2 c64 w8000 o128 k2 s1 p256:0 d256'
    """
    record = problem.operation
    if record.windowing == "none":
        return f"{HEADS[problem.op]} n{problem.n} c{problem.c} o{problem.o}"
    ndim = problem.ndim
    parts = [f"{HEADS[problem.op]}{ndim}d", f"n{problem.n}", f"c{problem.c}"]
    parts += [f"{letter}{size}" for letter, size in zip(_SPATIAL_LETTERS[ndim], problem.spatial)]
    if record.has_weights:
        parts.append(f"o{problem.o}")
    if record.windowing == "kernel":
        parts += [f"k{_join(problem.kernel)}", f"s{_join(problem.stride)}"]
        entries = [str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in problem.padding]
        parts.append("p" + (entries[0] if len(set(entries)) == 1 else "x".join(entries)))
        if set(problem.dilation) != {1}:
            parts.append(f"d{_join(problem.dilation)}")
    if "output_padding" in record.param_names and set(problem.output_padding) != {0}:
        parts.append(f"e{_join(problem.output_padding)}")
    if "output_size" in record.param_names:
        parts.append(f"a{_join(problem.output_size)}")
    if problem.groups != 1:
        parts.append(f"g{problem.groups}")
    if problem.ceil_mode:
        parts.append("ceil")
    if not problem.count_include_pad:
        parts.append("exclpad")
    return " ".join(parts)


class Flops(NamedTuple):
    """Floating-point operations of one call: a multiply-add counts 2, a compare, add or divide 1."""

    forward: int
    backward: int

    def of(self, mode: Mode) -> int:
        """The count for a timed mode (``fwd+bwd`` is the sum)."""
        return {"forward": self.forward, "backward": self.backward, "fwd+bwd": self.forward + self.backward}[mode]


def conv_flops(problem: Problem) -> Flops:
    """Convolution: M = N * C_out * P * (C_in / groups) * K multiply-adds, P output positions, K kernel taps.

    Every tap of every window counts, those reading padding included (the dense
    count frameworks report). Forward 2M + N*C_out*P (the bias); backward 2M for
    dx, 2M for dW and N*C_out*P adds for db.

    Hand count: x (1, 2, 4), w (3, 2, 3), stride 1, no padding -> P = 2, M = 1*3*2*2*3 = 36:

    >>> conv_flops(parse_problem("conv1d n1 c2 w4 o3 k3"))
    Flops(forward=78, backward=150)
    """
    positions = math.prod(problem.out_spatial())
    outputs = problem.n * problem.o * positions
    macs = outputs * (problem.c // problem.groups) * math.prod(problem.kernel)
    return Flops(2 * macs + outputs, 4 * macs + outputs)


def max_pool_flops(problem: Problem) -> Flops:
    """Max pooling: K - 1 comparisons per output forward; one add per output backward (into dx).

    >>> max_pool_flops(parse_problem("mp2d n1 c1 h4 w4 k2"))   # 4 outputs, 3 comparisons each
    Flops(forward=12, backward=4)
    """
    outputs = problem.n * problem.c * math.prod(problem.out_spatial())
    return Flops(outputs * (math.prod(problem.kernel) - 1), outputs)


def avg_pool_flops(problem: Problem) -> Flops:
    """Average pooling: K - 1 adds and one divide per output forward; one divide and K adds backward.

    >>> avg_pool_flops(parse_problem("ap1d n1 c1 w6 k3"))   # 2 outputs of 3 taps
    Flops(forward=6, backward=8)
    """
    outputs = problem.n * problem.c * math.prod(problem.out_spatial())
    taps = math.prod(problem.kernel)
    return Flops(outputs * taps, outputs * (taps + 1))


def linear_flops(problem: Problem) -> Flops:
    """Linear: M = N * in * out multiply-adds; forward 2M + N*out (bias), backward 4M + N*out (dx, dW, db).

    >>> linear_flops(parse_problem("fc n2 c3 o4"))   # M = 24
    Flops(forward=56, backward=104)
    """
    macs = problem.n * problem.c * problem.o
    outputs = problem.n * problem.o
    return Flops(2 * macs + outputs, 4 * macs + outputs)


def conv_transpose_flops(problem: Problem) -> Flops:
    """Transposed convolution: every input element scatters to C_out / groups * K outputs, M = N * C_in * P_in * that.

    Forward 2M + N*C_out*P_out (the bias); backward 2M for dx, 2M for dW and N*C_out*P_out adds for db.
    The same M as the convolution it transposes (its x is this y).

    >>> conv_transpose_flops(parse_problem("convt1d n1 c3 w2 o2 k3"))   # M = 1*3*2*2*3 = 36, P_out = 4
    Flops(forward=80, backward=152)
    >>> conv_flops(parse_problem("conv1d n1 c2 w4 o3 k3")).backward - 6 == conv_transpose_flops(
    ...     parse_problem("convt1d n1 c3 w2 o2 k3")).backward - 8   # 4M either way
    True
    """
    outputs = problem.n * problem.o * math.prod(problem.out_spatial())
    macs = problem.n * problem.c * math.prod(problem.spatial) * (problem.o // problem.groups) * math.prod(problem.kernel)
    return Flops(2 * macs + outputs, 4 * macs + outputs)


def max_pool_indices_flops(problem: Problem) -> Flops:
    """Max-pool indices: the max pool's K - 1 comparisons per output; no backward.

    >>> max_pool_indices_flops(parse_problem("mpi2d n1 c1 h4 w4 k2"))
    Flops(forward=12, backward=0)
    """
    return Flops(max_pool_flops(problem).forward, 0)


def _adaptive_taps(problem: Problem) -> int:
    """The summed window sizes over one output plane: a product of per-dim sums (windows differ in length)."""
    return math.prod(sum(end - start for start, end in spec.adaptive_windows(n, o))
                     for n, o in zip(problem.spatial, problem.output_size))


def adaptive_avg_pool_flops(problem: Problem) -> Flops:
    """Adaptive average pooling: per output its window's adds and one divide; as many backward.

    >>> adaptive_avg_pool_flops(parse_problem("aap1d n1 c1 w10 a4"))   # 4 windows of 3
    Flops(forward=12, backward=16)
    """
    planes = problem.n * problem.c
    outputs = planes * math.prod(problem.output_size)
    return Flops(planes * _adaptive_taps(problem), planes * _adaptive_taps(problem) + outputs)


def adaptive_max_pool_flops(problem: Problem) -> Flops:
    """Adaptive max pooling: per output its window's size - 1 comparisons; one add per output backward.

    >>> adaptive_max_pool_flops(parse_problem("amp1d n1 c1 w10 a4"))
    Flops(forward=8, backward=4)
    """
    planes = problem.n * problem.c
    outputs = planes * math.prod(problem.output_size)
    return Flops(planes * _adaptive_taps(problem) - outputs, outputs)


#: Each operation's operation count (a test checks every operation of the registry has one).
FLOP_COUNTS: dict[OpName, Callable[[Problem], Flops]] = {
    "conv": conv_flops, "conv_transpose": conv_transpose_flops, "max_pool": max_pool_flops,
    "max_pool_indices": max_pool_indices_flops, "avg_pool": avg_pool_flops,
    "adaptive_avg_pool": adaptive_avg_pool_flops, "adaptive_max_pool": adaptive_max_pool_flops,
    "linear": linear_flops,
}


def flops(problem: Problem) -> Flops:
    """The operation count of one forward and one backward call of ``problem``."""
    return FLOP_COUNTS[problem.op](problem)


class NamedProblem(NamedTuple):
    """A problem in a shape set, with the layer it comes from."""

    shape_set: str
    label: str
    problem: Problem

    @property
    def descriptor(self) -> str:
        return format_problem(self.problem)


def _set(name: str, rows: list[tuple[str, str]]) -> tuple[NamedProblem, ...]:
    return tuple(NamedProblem(name, label, parse_problem(text)) for label, text in rows)


#: Named shape sets: representative layers of real networks, at small batch sizes
#: (ImageNet 224x224 inputs for the 2-D networks).
SHAPE_SETS: dict[str, tuple[NamedProblem, ...]] = {
    "resnet50": _set("resnet50", [
        ("conv1 7x7/2 stem 3->64", "conv2d n8 c3 h224 w224 o64 k7 s2 p3"),
        ("maxpool 3x3/2", "mp2d n8 c64 h112 w112 k3 s2 p1"),
        ("layer1 1x1 64->64", "conv2d n8 c64 h56 w56 o64 k1 s1 p0"),
        ("layer1 3x3 64->64", "conv2d n8 c64 h56 w56 o64 k3 s1 p1"),
        ("layer1 1x1 64->256", "conv2d n8 c64 h56 w56 o256 k1 s1 p0"),
        ("layer1 1x1 256->64", "conv2d n8 c256 h56 w56 o64 k1 s1 p0"),
        ("layer2 3x3/2 128->128", "conv2d n8 c128 h56 w56 o128 k3 s2 p1"),
        ("layer2 1x1/2 downsample 256->512", "conv2d n8 c256 h56 w56 o512 k1 s2 p0"),
        ("layer2 3x3 128->128", "conv2d n8 c128 h28 w28 o128 k3 s1 p1"),
        ("layer2 1x1 512->128", "conv2d n8 c512 h28 w28 o128 k1 s1 p0"),
        ("layer3 3x3 256->256", "conv2d n8 c256 h14 w14 o256 k3 s1 p1"),
        ("layer3 1x1 1024->256", "conv2d n8 c1024 h14 w14 o256 k1 s1 p0"),
        ("layer4 3x3 512->512", "conv2d n8 c512 h7 w7 o512 k3 s1 p1"),
        ("layer4 1x1 512->2048", "conv2d n8 c512 h7 w7 o2048 k1 s1 p0"),
        ("avgpool 7x7 global", "ap2d n8 c2048 h7 w7 k7 s7 p0"),
        ("avgpool adaptive global (torchvision head)", "aap2d n8 c2048 h7 w7 a1"),
        ("fc 2048->1000", "fc n8 c2048 o1000"),
    ]),
    "vgg16": _set("vgg16", [
        ("conv1_1 3x3 3->64 @224", "conv2d n1 c3 h224 w224 o64 k3 s1 p1"),
        ("conv1_2 3x3 64->64 @224", "conv2d n1 c64 h224 w224 o64 k3 s1 p1"),
        ("pool1 2x2/2 @224", "mp2d n1 c64 h224 w224 k2 s2 p0"),
        ("conv2_2 3x3 128->128 @112", "conv2d n1 c128 h112 w112 o128 k3 s1 p1"),
        ("pool2 2x2/2 @112", "mp2d n1 c128 h112 w112 k2 s2 p0"),
        ("conv3_2 3x3 256->256 @56", "conv2d n1 c256 h56 w56 o256 k3 s1 p1"),
        ("pool3 2x2/2 @56", "mp2d n1 c256 h56 w56 k2 s2 p0"),
        ("conv4_2 3x3 512->512 @28", "conv2d n1 c512 h28 w28 o512 k3 s1 p1"),
        ("pool4 2x2/2 @28", "mp2d n1 c512 h28 w28 k2 s2 p0"),
        ("conv5_2 3x3 512->512 @14", "conv2d n1 c512 h14 w14 o512 k3 s1 p1"),
        ("pool5 2x2/2 @14", "mp2d n1 c512 h14 w14 k2 s2 p0"),
    ]),
    "mobilenet": _set("mobilenet", [
        ("stem 3x3/2 3->32", "conv2d n8 c3 h224 w224 o32 k3 s2 p1"),
        ("depthwise 3x3 32 @112", "conv2d n8 c32 h112 w112 o32 k3 s1 p1 g32"),
        ("pointwise 1x1 32->16 @112", "conv2d n8 c32 h112 w112 o16 k1 s1 p0"),
        ("depthwise 3x3/2 96 @112", "conv2d n8 c96 h112 w112 o96 k3 s2 p1 g96"),
        ("depthwise 3x3 144 @56", "conv2d n8 c144 h56 w56 o144 k3 s1 p1 g144"),
        ("depthwise 3x3 384 @14", "conv2d n8 c384 h14 w14 o384 k3 s1 p1 g384"),
        ("depthwise 3x3 960 @7", "conv2d n8 c960 h7 w7 o960 k3 s1 p1 g960"),
        ("pointwise 1x1 960->320 @7", "conv2d n8 c960 h7 w7 o320 k1 s1 p0"),
        ("grouped 3x3 g32 128 @56 (ResNeXt)", "conv2d n8 c128 h56 w56 o128 k3 s1 p1 g32"),
        ("grouped 1x1 g3 240->240 @28 (ShuffleNet)", "conv2d n8 c240 h28 w28 o240 k1 s1 p0 g3"),
        ("avgpool 7x7 global", "ap2d n8 c1280 h7 w7 k7 s7 p0"),
    ]),
    "unet3d": _set("unet3d", [
        ("enc1 3x3x3 1->32 @64^3", "conv3d n1 c1 t64 h64 w64 o32 k3 s1 p1"),
        ("enc1 3x3x3 32->64 @32^3", "conv3d n1 c32 t32 h32 w32 o64 k3 s1 p1"),
        ("pool 2x2x2/2 @32^3", "mp3d n1 c64 t32 h32 w32 k2 s2 p0"),
        ("enc2 3x3x3 64->128 @16^3", "conv3d n1 c64 t16 h16 w16 o128 k3 s1 p1"),
        ("pool 2x2x2/2 @16^3", "mp3d n1 c128 t16 h16 w16 k2 s2 p0"),
        ("bottleneck 3x3x3 128->256 @8^3", "conv3d n1 c128 t8 h8 w8 o256 k3 s1 p1"),
        ("avgpool 2x2x2/2 @16^3", "ap3d n1 c64 t16 h16 w16 k2 s2 p0"),
    ]),
    "segmentation": _set("segmentation", [
        ("U-Net up-conv 2x2/2 512->256 @16", "convt2d n4 c512 h16 w16 o256 k2 s2"),
        ("U-Net up-conv 2x2/2 256->128 @32", "convt2d n4 c256 h32 w32 o128 k2 s2"),
        ("U-Net up-conv 2x2/2 128->64 @64", "convt2d n4 c128 h64 w64 o64 k2 s2"),
        ("U-Net up-conv 2x2/2 64->32 @128", "convt2d n4 c64 h128 w128 o32 k2 s2"),
        ("decoder 3x3/2 p1 output_padding 1 64->32 @64", "convt2d n4 c64 h64 w64 o32 k3 s2 p1 e1"),
        ("3-D U-Net up-conv 2x2x2/2 128->64 @16^3", "convt3d n1 c128 t16 h16 w16 o64 k2 s2"),
        ("SegNet pool with indices 2x2/2 @224", "mpi2d n4 c64 h224 w224 k2 s2"),
        ("PSPNet pyramid bin 6 @60", "aap2d n4 c512 h60 w60 a6"),
        ("adaptive max 7x7 @13 (RoI-style)", "amp2d n8 c256 h13 w13 a7"),
    ]),
    "audio1d": _set("audio1d", [
        ("wav2vec2 conv0 k10/5 1->512", "conv1d n2 c1 w16000 o512 k10 s5 p0"),
        ("wav2vec2 conv6 k2/2 512->512", "conv1d n2 c512 w799 o512 k2 s2 p0"),
        ("wav2letter k48/2 40->250", "conv1d n2 c40 w1600 o250 k48 s2 p23"),
        ("wav2letter k7 250->250", "conv1d n2 c250 w800 o250 k7 s1 p3"),
        ("wavenet causal k2 d256 64->128", "conv1d n2 c64 w8000 o128 k2 s1 p256:0 d256"),
        ("wavenet 1x1 residual 64->64", "conv1d n2 c64 w8000 o64 k1 s1 p0"),
        ("maxpool k4/4 (M5)", "mp1d n2 c128 w4000 k4 s4 p0"),
        ("avgpool k3/2 ceil exclpad", "ap1d n2 c64 w8000 k3 s2 p1 ceil exclpad"),
    ]),
    "classifier": _set("classifier", [
        ("resnet50 fc 2048->1000", "fc n32 c2048 o1000"),
        ("vgg16 fc7 4096->4096", "fc n32 c4096 o4096"),
        ("vgg16 fc8 4096->1000", "fc n32 c4096 o1000"),
        ("mobilenetv2 fc 1280->1000", "fc n32 c1280 o1000"),
        ("bert ffn 768->3072", "fc n128 c768 o3072"),
    ]),
}


def with_batch(problem: Problem, n: int) -> Problem:
    """The same problem with batch size ``n`` (``--quick`` runs the shape sets at n = 1)."""
    return dataclasses.replace(problem, n=n)
