"""The backend protocol: the contract every implementation under test follows.

A *backend* is any module or object with some of the protocol functions below
(:data:`FUNCTION_NAMES`; one record per operation in :mod:`spec.operations`).
Arrays are NumPy arrays; ``stride``, ``dilation`` and ``kernel_size`` are
tuples of ints with one entry per spatial dim; ``padding`` is a tuple of
``(before, after)`` pairs; ``b`` may be None. Every function returns fresh
arrays of the input dtype and never writes into its inputs. A callable the
backend lacks is an operation it does not support.

What a backend supports beyond that is declared by a :class:`Capabilities`
value in the attribute ``CAPABILITIES`` (a module) or ``capabilities`` (an
object). Without one, everything the spec defines is assumed supported. The
conformance suite generates only inside the declared capabilities and lists
what it therefore left uncovered. ``import reference`` is itself a backend:

>>> import reference
>>> list(supported_functions(reference))[:3]
['conv_forward', 'conv_backward', 'conv_transpose_forward']
>>> capabilities_of(reference).accuracy
'direct'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

from spec.accuracy import ACCUMULATIONS, SIGNIFICANT_BITS, AccuracyClass, accumulation_of, checkable_terms
from spec.errors import SpecError

# The registry's names, importable from here as before (spec.operations holds one record per operation).
from spec.operations import FUNCTION_NAMES as FUNCTION_NAMES
from spec.operations import OPERATIONS as OPERATIONS
from spec.operations import Operation as Operation
from spec.operations import OpName as OpName
from spec.params import DTYPES, SPATIAL_RANKS
from spec.shapes import POOL_PADDING_KINDS, Padding, PoolPaddingKind

Array: TypeAlias = NDArray[np.floating[Any]]
class ConvForward(Protocol):
    def __call__(
        self, x: Array, w: Array, b: Array | None, *,
        stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
    ) -> Array: ...


class ConvBackward(Protocol):
    def __call__(
        self, x: Array, w: Array, dy: Array, *,
        stride: tuple[int, ...], padding: Padding, dilation: tuple[int, ...], groups: int,
    ) -> tuple[Array, Array, Array]: ...


class MaxPoolForward(Protocol):
    def __call__(
        self, x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
    ) -> Array: ...


class MaxPoolBackward(Protocol):
    def __call__(
        self, x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
    ) -> Array: ...


class AvgPoolForward(Protocol):
    def __call__(
        self, x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        padding: Padding, dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
    ) -> Array: ...


class AvgPoolBackward(Protocol):
    def __call__(
        self, x: Array, dy: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        padding: Padding, dilation: tuple[int, ...], ceil_mode: bool, count_include_pad: bool,
    ) -> Array: ...


class ConvTransposeForward(Protocol):
    def __call__(
        self, x: Array, w: Array, b: Array | None, *, stride: tuple[int, ...], padding: Padding,
        output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    ) -> Array: ...


class ConvTransposeBackward(Protocol):
    def __call__(
        self, x: Array, w: Array, dy: Array, *, stride: tuple[int, ...], padding: Padding,
        output_padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    ) -> tuple[Array, Array, Array]: ...


class MaxPoolIndices(Protocol):
    def __call__(
        self, x: Array, *, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        padding: Padding, dilation: tuple[int, ...], ceil_mode: bool,
    ) -> NDArray[np.int64]: ...


class AdaptivePoolForward(Protocol):
    def __call__(self, x: Array, *, output_size: tuple[int, ...]) -> Array: ...


class AdaptivePoolBackward(Protocol):
    def __call__(self, x: Array, dy: Array, *, output_size: tuple[int, ...]) -> Array: ...


class LinearForward(Protocol):
    def __call__(self, x: Array, w: Array, b: Array | None) -> Array: ...


class LinearBackward(Protocol):
    def __call__(self, x: Array, w: Array, dy: Array) -> tuple[Array, Array, Array]: ...


class Backend(Protocol):
    """A complete backend: every protocol function (the reference is one)."""

    conv_forward: ConvForward
    conv_backward: ConvBackward
    conv_transpose_forward: ConvTransposeForward
    conv_transpose_backward: ConvTransposeBackward
    max_pool_forward: MaxPoolForward
    max_pool_backward: MaxPoolBackward
    max_pool_indices: MaxPoolIndices
    avg_pool_forward: AvgPoolForward
    avg_pool_backward: AvgPoolBackward
    adaptive_avg_pool_forward: AdaptivePoolForward
    adaptive_avg_pool_backward: AdaptivePoolBackward
    adaptive_max_pool_forward: AdaptivePoolForward
    adaptive_max_pool_backward: AdaptivePoolBackward
    linear_forward: LinearForward
    linear_backward: LinearBackward


@dataclass(frozen=True)
class Capabilities:
    """What a backend implements, so the suite generates only inside it.

    Every field defaults to "all the spec defines"; a backend narrows what it
    lacks. Each ``False`` or narrowed field appears in the suite's summary as
    not covered.

    >>> Capabilities(dtypes=frozenset({"float32"}), ceil_mode=False).uncovered()
    ['dtypes: bfloat16, float16, float64', 'ceil_mode']
    >>> Capabilities(accumulation={"float16": "float16"}).uncovered()
    ['accumulation: float16 summed in float16 (reductions limited to K <= 121 terms)']
    """

    #: Floating dtypes the backend computes in (names as NumPy spells them).
    dtypes: frozenset[str] = frozenset(DTYPES)
    #: Numbers of spatial dimensions (1, 2 and 3).
    spatial_ranks: frozenset[int] = frozenset(SPATIAL_RANKS)
    #: Convolution dilation > 1.
    dilation: bool = True
    #: Convolution groups > 1.
    groups: bool = True
    #: Convolution padding with before != after (and pooling too, unless ``asymmetric_pool_padding`` says otherwise).
    asymmetric_padding: bool = True
    #: Pooling padding with before != after; None: the same as ``asymmetric_padding``.
    asymmetric_pool_padding: bool | None = None
    #: Max pooling dilation > 1.
    max_pool_dilation: bool = True
    #: Average pooling dilation > 1.
    avg_pool_dilation: bool = True
    #: Transposed convolution ``output_padding`` > 0.
    output_padding: bool = True
    #: Adaptive pooling's output sizes: ``"any"`` (larger than the input included) or ``"global"`` (all 1).
    adaptive_output_size: Literal["any", "global"] = "any"
    #: Pooling ``ceil_mode=True``.
    ceil_mode: bool = True
    #: The values of ``count_include_pad`` the backend accepts.
    count_include_pad: frozenset[bool] = frozenset({True, False})
    #: ``"half_kernel"``: pooling padding at most ``k // 2``, dilation not counted; defined once by
    #: :func:`spec.pool_padding_allowed` (PyTorch 2.13's real limit, within ONNX Runtime's).
    pool_padding: PoolPaddingKind = "any"
    #: Batch size N = 0.
    empty_batch: bool = True
    #: NaN and infinite input values (forward only; the spec leaves
    #: gradients at non-finite inputs unconstrained).
    nonfinite: bool = True
    #: The accuracy class of the backend's convolutions (see spec.accuracy): "direct"
    #: (elementwise) unless an FFT or Winograd convolution declares "fast".
    accuracy: AccuracyClass = "direct"
    #: Input dtype -> precision its sums are accumulated in, where it differs from
    #: spec.accuracy.DEFAULT_ACCUMULATION (float16 and bfloat16 in float32), e.g. {"float16": "float16"}.
    accumulation: Mapping[str, str] = field(default_factory=dict)
    #: The backend compiles a kernel per input shape and parameter set (``jax.jit``, XLA, TVM, tinygrad):
    #: the suite then draws shapes from a small pool per operation and dtype and varies the values, so
    #: each shape compiles once (see conformance/shape_pool.py). Not a narrowing: nothing is left out.
    compiles_per_shape: bool = False
    #: Free-form notes shown in reports (e.g. "uses oneDNN").
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # Any iterable is accepted where a set is meant (a list, a tuple, a generator), but not a lone string.
        for name, example in (("dtypes", "{'float64'}"), ("spatial_ranks", "{2}"), ("count_include_pad", "{True}")):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise SpecError(f"Capabilities.{name}", value, f"must be a collection such as {example}")
            object.__setattr__(self, name, frozenset(value))
        if isinstance(self.notes, str) or not hasattr(self.notes, "__iter__"):
            raise SpecError("Capabilities.notes", self.notes, "must be a tuple of strings")
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.asymmetric_pool_padding is None:
            object.__setattr__(self, "asymmetric_pool_padding", self.asymmetric_padding)
        for f in fields(self):
            if f.type in ("bool", "bool | None") and not isinstance(getattr(self, f.name), (bool, np.bool_)):
                raise SpecError(f"Capabilities.{f.name}", getattr(self, f.name), "must be True or False")
            if f.type in ("bool", "bool | None"):
                object.__setattr__(self, f.name, bool(getattr(self, f.name)))
        if not all(isinstance(d, str) for d in self.dtypes):
            raise SpecError("Capabilities.dtypes", sorted(map(str, self.dtypes)), f"must be dtype names from {DTYPES}")
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in self.spatial_ranks):
            raise SpecError("Capabilities.spatial_ranks", sorted(map(str, self.spatial_ranks)),
                            f"must be integers from {SPATIAL_RANKS}")
        if not self.count_include_pad <= {True, False}:
            raise SpecError("Capabilities.count_include_pad", sorted(map(str, self.count_include_pad)),
                            "must be a subset of {True, False}")
        unknown = set(self.dtypes) - set(DTYPES)
        if unknown:
            raise SpecError("Capabilities.dtypes", sorted(unknown), f"must be a subset of {DTYPES}")
        if not set(self.spatial_ranks) <= set(SPATIAL_RANKS):
            ranks = sorted(self.spatial_ranks)
            raise SpecError("Capabilities.spatial_ranks", ranks, f"must be a subset of {SPATIAL_RANKS}")
        if self.pool_padding not in POOL_PADDING_KINDS:
            raise SpecError("Capabilities.pool_padding", self.pool_padding, "must be 'any' or 'half_kernel'")
        if self.adaptive_output_size not in ("any", "global"):
            raise SpecError("Capabilities.adaptive_output_size", self.adaptive_output_size, "must be 'any' or 'global'")
        if self.accuracy not in ("direct", "fast"):
            raise SpecError("Capabilities.accuracy", self.accuracy, "must be 'direct' or 'fast'")
        if not isinstance(self.accumulation, Mapping):
            raise SpecError("Capabilities.accumulation", self.accumulation, "must map dtype names to precisions")
        for dtype, precision in self.accumulation.items():
            if dtype not in DTYPES:
                raise SpecError("Capabilities.accumulation", dtype, f"keys must be dtypes of {DTYPES}")
            if precision not in ACCUMULATIONS:
                raise SpecError(f"Capabilities.accumulation[{dtype!r}]", precision, f"must be one of {ACCUMULATIONS}")
        # A plain dict (picklable for the isolation worker), a copy the caller cannot change afterwards.
        object.__setattr__(self, "accumulation", dict(self.accumulation))

    def accumulation_for(self, dtype: str) -> str:
        """The precision the backend accumulates ``dtype`` in (declared, or the spec's default).

        >>> declared = Capabilities(accumulation={"float16": "float16"})
        >>> Capabilities().accumulation_for("float16"), declared.accumulation_for("float16")
        ('float32', 'float16')
        """
        return accumulation_of(dtype, self.accumulation)

    def uncovered(self) -> list[str]:
        """Human-readable list of what these capabilities leave out of the spec."""
        full = Capabilities()
        out: list[str] = []
        for f in fields(self):
            if f.name in ("accuracy", "notes", "compiles_per_shape"):
                continue
            if f.name == "accumulation":
                for dtype in sorted(self.dtypes):
                    acc = self.accumulation_for(dtype)
                    if SIGNIFICANT_BITS[acc] < SIGNIFICANT_BITS[accumulation_of(dtype)]:
                        out.append(f"accumulation: {dtype} summed in {acc} (reductions limited to "
                                   f"K <= {checkable_terms(dtype, acc)} terms)")
                continue
            mine, everything = getattr(self, f.name), getattr(full, f.name)
            if mine == everything:
                continue
            if isinstance(everything, frozenset):
                missing = ", ".join(str(v) for v in sorted(everything - mine))
                out.append(f"{f.name}: {missing}")
            elif f.name == "pool_padding":
                out.append("pool_padding beyond half the kernel")
            elif f.name == "adaptive_output_size":
                out.append("adaptive_output_size other than global (1)")
            else:
                out.append(f.name)
        return out


def capabilities_of(backend: object) -> Capabilities:
    """The backend's declared capabilities, or the full spec if it declares none."""
    declared = getattr(backend, "CAPABILITIES", None) or getattr(backend, "capabilities", None)
    if declared is None:
        return Capabilities()
    if not isinstance(declared, Capabilities):
        raise SpecError("backend.CAPABILITIES", type(declared).__name__, "must be a spec.Capabilities")
    return declared


def supported_functions(backend: object) -> dict[str, Callable[..., Any]]:
    """The protocol functions the backend has, by name."""
    found: dict[str, Callable[..., Any]] = {}
    for name in FUNCTION_NAMES:
        fn = getattr(backend, name, None)
        if callable(fn):
            found[name] = fn
    return found
