"""The conformance rules. Each is named (its spec citations are in conformance.citations),
draws its cases from :mod:`conformance.strategies` and raises a
:class:`~conformance.compare.Violation` when the backend breaks it.

One module per kind of rule; each defines its :class:`Rule` records and :data:`RULES` lists them in
the order they run and report (a bug is reported by the first rule that catches it, so the ordinary
value rules come first and the expensive large shapes last):

* :mod:`.values` — output shapes, forward and backward values against the reference;
* :mod:`.oracle` — 2-D convolution against scipy.signal, an oracle independent of the reference;
* :mod:`.gradients` — finite differences and the adjoint identity, against the backend's own forward;
* :mod:`.metamorphic` — relations between several calls of the backend;
* :mod:`.disputed` — where frameworks disagree: padding value, ties, ceil mode, divisor, empty windows/batch;
* :mod:`.nonfinite` — NaN, infinities and overflow;
* :mod:`.invalid` — invalid parameters must raise;
* :mod:`.large` — sizes one past the block sizes kernels tile by.

:mod:`.base` holds the :class:`Rule` record and the helpers the modules share.
"""

from __future__ import annotations

from conformance.rules.adaptive import ADAPTIVE_GLOBAL, ADAPTIVE_IDENTITY, ADAPTIVE_WINDOWS
from conformance.rules.base import ALL_OPS, CaseStrategy, Check, Rule
from conformance.rules.disputed import (
    AVGPOOL_DIVISOR,
    CEIL_MODE,
    EMPTY_BATCH,
    EMPTY_WINDOWS,
    MAXPOOL_PAD_VALUE,
    TIE_ROUTING,
    TIE_VALUES,
)
from conformance.rules.gradients import ADJOINT, FINITE_DIFFERENCES
from conformance.rules.indices import INDICES_AGREEMENT, INDICES_EMPTY_WINDOWS, INDICES_NAN, INDICES_TIES
from conformance.rules.invalid import INVALID_MUTATIONS, INVALID_PARAMS, break_case
from conformance.rules.large import LARGE_SHAPES
from conformance.rules.metamorphic import METAMORPHIC
from conformance.rules.nonfinite import NAN_PROPAGATION, NONFINITE_BACKWARD, OVERFLOW
from conformance.rules.oracle import CORRELATE2D, correlate2d_oracle
from conformance.rules.transposed import TRANSPOSE_IDENTITY
from conformance.rules.values import BACKWARD_VALUES, FORWARD_VALUES, OUTPUT_SHAPE

RULES: tuple[Rule, ...] = (
    OUTPUT_SHAPE,
    FORWARD_VALUES,
    BACKWARD_VALUES,
    CORRELATE2D,
    FINITE_DIFFERENCES,
    ADJOINT,
    METAMORPHIC,
    MAXPOOL_PAD_VALUE,
    NAN_PROPAGATION,
    NONFINITE_BACKWARD,
    OVERFLOW,
    TIE_ROUTING,
    CEIL_MODE,
    AVGPOOL_DIVISOR,
    EMPTY_WINDOWS,
    EMPTY_BATCH,
    TRANSPOSE_IDENTITY,
    INDICES_TIES,
    INDICES_NAN,
    INDICES_EMPTY_WINDOWS,
    INDICES_AGREEMENT,
    ADAPTIVE_WINDOWS,
    ADAPTIVE_GLOBAL,
    ADAPTIVE_IDENTITY,
    INVALID_PARAMS,
    # Last, so that a bug the ordinary rules catch is reported by them first.
    LARGE_SHAPES,
)
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

__all__ = ["ALL_OPS", "INVALID_MUTATIONS", "RULES", "RULES_BY_ID", "TIE_VALUES", "CaseStrategy", "Check", "Rule",
           "break_case", "correlate2d_oracle"]
