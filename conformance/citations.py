"""Which spec constraints (spec/docs/*.md) each conformance rule enforces, per operation.

Reports cite these ids so a failure points at the sentence of the spec it breaks.
``tests/test_citations.py`` checks that every id exists in the documents and
that every constraint of the documents is enforced by at least one rule.
"""

from __future__ import annotations

from spec import OPERATIONS

_SHAPES = {
    "conv": ("CONV-C1", "CONV-C2", "CONV-C8", "CONV-C10"),
    "conv_transpose": ("CONVT-C1", "CONVT-C2", "CONVT-C6", "CONVT-C9"),
    "max_pool": ("MAXPOOL-C1", "MAXPOOL-C2", "MAXPOOL-C5", "MAXPOOL-C9"),
    "max_pool_indices": ("MAXIDX-C1",),
    "avg_pool": ("AVGPOOL-C1", "AVGPOOL-C2", "AVGPOOL-C5", "AVGPOOL-C10"),
    "adaptive_avg_pool": ("ADAPTIVE-C1", "ADAPTIVE-C2"),
    "adaptive_max_pool": ("ADAPTIVE-C1", "ADAPTIVE-C2"),
    "linear": ("LINEAR-C1", "LINEAR-C2", "LINEAR-C5"),
}
_FORWARD = {
    "conv": ("CONV-C3", "CONV-C4", "CONV-C5", "CONV-C6", "CONV-C7", "CONV-C15"),
    "conv_transpose": ("CONVT-C3", "CONVT-C4", "CONVT-C5", "CONVT-C11"),
    "max_pool": ("MAXPOOL-C3", "MAXPOOL-C4", "MAXPOOL-C14"),
    "max_pool_indices": ("MAXIDX-C2", "MAXIDX-C3", "MAXIDX-C6"),
    "avg_pool": ("AVGPOOL-C3", "AVGPOOL-C4", "AVGPOOL-C6", "AVGPOOL-C7", "AVGPOOL-C14"),
    "adaptive_avg_pool": ("ADAPTIVE-C3", "ADAPTIVE-C4", "ADAPTIVE-C5", "ADAPTIVE-C7", "ADAPTIVE-C12"),
    "adaptive_max_pool": ("ADAPTIVE-C3", "ADAPTIVE-C4", "ADAPTIVE-C6", "ADAPTIVE-C7", "ADAPTIVE-C12"),
    "linear": ("LINEAR-C3", "LINEAR-C8"),
}
_BACKWARD = {
    "conv": ("CONV-C11", "CONV-C12", "CONV-C13", "CONV-C15"),
    "conv_transpose": ("CONVT-C9", "CONVT-C11"),
    "max_pool": ("MAXPOOL-C10", "MAXPOOL-C14"),
    "avg_pool": ("AVGPOOL-C11", "AVGPOOL-C14"),
    "adaptive_avg_pool": ("ADAPTIVE-C8", "ADAPTIVE-C12"),
    "adaptive_max_pool": ("ADAPTIVE-C9", "ADAPTIVE-C12"),
    "linear": ("LINEAR-C6", "LINEAR-C8"),
}

#: What every checked call reaches: the protocol functions (BACKEND-C1), the declared capabilities
#: bounding generation (BACKEND-C4, BACKEND-C5) and UnsupportedError counted as not covered (BACKEND-C6).
_PROTOCOL = ("BACKEND-C1", "BACKEND-C4", "BACKEND-C5", "BACKEND-C6")
_CONTRACT: dict[str, tuple[str, ...]] = {
    "conv": ("CONV-C16", "BACKEND-C2"), "conv_transpose": ("CONVT-C12", "BACKEND-C2"),
    "max_pool": ("MAXPOOL-C15", "BACKEND-C2"), "max_pool_indices": ("MAXIDX-C7", "BACKEND-C2"),
    "avg_pool": ("AVGPOOL-C15", "BACKEND-C2"), "adaptive_avg_pool": ("ADAPTIVE-C12", "BACKEND-C2"),
    "adaptive_max_pool": ("ADAPTIVE-C12", "BACKEND-C2"), "linear": ("LINEAR-C9", "BACKEND-C2"),
}

#: The constraints each invalid-params mutation (conformance.rules.INVALID_MUTATIONS) reaches.
MUTATION_CITATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "conv": {"stride=0": ("CONV-C5",), "dilation=0": ("CONV-C5",), "negative padding": ("CONV-C6",),
             "groups not dividing C_in": ("CONV-C4",), "w.shape[1] mismatch": ("CONV-C4",),
             "bias shape mismatch": ("CONV-C1",), "x of rank 2": ("CONV-C1",), "integer dtype": ("CONV-C2",),
             "empty output": ("CONV-C8",), "dy shape mismatch": ("CONV-C10",), "groups not dividing C_out": ("CONV-C4",),
             "groups=0": ("CONV-C4",), "kernel size 0": ("CONV-C1",), "C_in=0": ("CONV-C1",),
             "mixed dtypes": ("CONV-C2",), "bool inputs": ("CONV-C2",), "dy dtype mismatch": ("CONV-C10",)},
    "max_pool": {"kernel_size=0": ("MAXPOOL-C4",), "stride=0": ("MAXPOOL-C4",), "dilation=0": ("MAXPOOL-C4",),
                 "negative padding": ("MAXPOOL-C4",), "empty output": ("MAXPOOL-C5",), "integer dtype": ("MAXPOOL-C2",),
                 "x of rank 2": ("MAXPOOL-C1",), "dy shape mismatch": ("MAXPOOL-C9",), "C=0": ("MAXPOOL-C1",),
                 "non-bool ceil_mode": ("MAXPOOL-C4",), "bool inputs": ("MAXPOOL-C2",),
                 "dy dtype mismatch": ("MAXPOOL-C2", "MAXPOOL-C9")},
    "avg_pool": {"kernel_size=0": ("AVGPOOL-C4",), "stride=0": ("AVGPOOL-C4",), "dilation=0": ("AVGPOOL-C4",),
                 "negative padding": ("AVGPOOL-C4",), "empty output": ("AVGPOOL-C5",), "integer dtype": ("AVGPOOL-C2",),
                 "x of rank 2": ("AVGPOOL-C1",), "dy shape mismatch": ("AVGPOOL-C10",), "C=0": ("AVGPOOL-C1",),
                 "non-bool ceil_mode": ("AVGPOOL-C4",), "non-bool count_include_pad": ("AVGPOOL-C4",),
                 "bool inputs": ("AVGPOOL-C2",), "dy dtype mismatch": ("AVGPOOL-C2", "AVGPOOL-C10")},
    "linear": {"w.shape[1] mismatch": ("LINEAR-C1",), "bias shape mismatch": ("LINEAR-C1",),
               "integer dtype": ("LINEAR-C2",), "dy shape mismatch": ("LINEAR-C5",), "in_features=0": ("LINEAR-C1",),
               "mixed dtypes": ("LINEAR-C2",), "bool inputs": ("LINEAR-C2",), "dy dtype mismatch": ("LINEAR-C5",)},
}
_ADAPTIVE_MUTATIONS: dict[str, tuple[str, ...]] = {
    "output_size=0": ("ADAPTIVE-C2",), "negative output_size": ("ADAPTIVE-C2",),
    "output_size of wrong length": ("ADAPTIVE-C2",), "empty input plane": ("ADAPTIVE-C1",),
    "integer dtype": ("ADAPTIVE-C1",), "x of rank 2": ("ADAPTIVE-C1",), "C=0": ("ADAPTIVE-C1",),
    "dy shape mismatch": ("ADAPTIVE-C11",), "bool inputs": ("ADAPTIVE-C1",), "dy dtype mismatch": ("ADAPTIVE-C11",)}
MUTATION_CITATIONS |= {
    "conv_transpose": {"stride=0": ("CONVT-C5",), "dilation=0": ("CONVT-C5",), "negative padding": ("CONVT-C5",),
                       "groups not dividing C_in": ("CONVT-C4",), "w.shape[0] mismatch": ("CONVT-C1",),
                       "bias shape mismatch": ("CONVT-C1",), "x of rank 2": ("CONVT-C1",),
                       "integer dtype": ("CONVT-C2",), "output_padding too large": ("CONVT-C6",),
                       "empty output": ("CONVT-C6",), "dy shape mismatch": ("CONVT-C9",), "groups=0": ("CONVT-C4",),
                       "kernel size 0": ("CONVT-C1",), "C_in=0": ("CONVT-C1",), "mixed dtypes": ("CONVT-C2",),
                       "bool inputs": ("CONVT-C2",), "dy dtype mismatch": ("CONVT-C9",)},
    # MAXIDX-C7: every input max_pool_forward rejects must be rejected.
    "max_pool_indices": {mutation: ("MAXIDX-C7",) for mutation in (
        "kernel_size=0", "stride=0", "dilation=0", "negative padding", "empty output", "integer dtype", "x of rank 2",
        "C=0", "non-bool ceil_mode", "bool inputs")},
    "adaptive_avg_pool": _ADAPTIVE_MUTATIONS,
    "adaptive_max_pool": _ADAPTIVE_MUTATIONS,
}
_ERRORS = {"conv": "CONV-C14", "max_pool": "MAXPOOL-C13", "avg_pool": "AVGPOOL-C13", "linear": "LINEAR-C7",
           "conv_transpose": "CONVT-C10", "max_pool_indices": "MAXIDX-C7", "adaptive_avg_pool": "ADAPTIVE-C11",
           "adaptive_max_pool": "ADAPTIVE-C11"}


def _invalid(op: str) -> tuple[str, ...]:
    ids = {c for cs in MUTATION_CITATIONS[op].values() for c in cs}
    return (_ERRORS[op], "BACKEND-C3", *sorted(ids))


CITATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "output-shape": {op: (*ids, *_PROTOCOL) for op, ids in _SHAPES.items()},
    "output-contract": _CONTRACT,
    "input-mutation": _CONTRACT,
    "forward-values": _FORWARD,
    "backward-values": _BACKWARD,
    "correlate2d": {"conv": ("CONV-C3", "CONV-C11", "CONV-C12")},
    "finite-differences": _BACKWARD,
    "adjoint": {op: ids for op, ids in _BACKWARD.items() if OPERATIONS[op].linear},  # type: ignore[index]
    # The relations follow from each operation's formula: per sample and per channel (group), linear where it is.
    "metamorphic": {"conv": ("CONV-C3", "CONV-C4"), "max_pool": ("MAXPOOL-C3",), "avg_pool": ("AVGPOOL-C3",),
                    "linear": ("LINEAR-C3",), "conv_transpose": ("CONVT-C3", "CONVT-C4"),
                    "max_pool_indices": ("MAXIDX-C2", "MAXIDX-C3"), "adaptive_avg_pool": ("ADAPTIVE-C3", "ADAPTIVE-C5"),
                    "adaptive_max_pool": ("ADAPTIVE-C3", "ADAPTIVE-C6")},
    "maxpool-pad-value": {"max_pool": ("MAXPOOL-C3",)},
    "nan-propagation": {"conv": ("CONV-C17",), "max_pool": ("MAXPOOL-C6",), "avg_pool": ("AVGPOOL-C3", "AVGPOOL-C14"),
                        "linear": ("LINEAR-C10",), "conv_transpose": ("CONVT-C13",),
                        "adaptive_avg_pool": ("ADAPTIVE-C13",), "adaptive_max_pool": ("ADAPTIVE-C6", "ADAPTIVE-C13")},
    "nonfinite-backward": {"conv": ("CONV-C17", "CONV-C19"), "max_pool": ("MAXPOOL-C10", "MAXPOOL-C12"),
                           "avg_pool": ("AVGPOOL-C16",), "linear": ("LINEAR-C10", "LINEAR-C12"),
                           "conv_transpose": ("CONVT-C13", "CONVT-C15"), "adaptive_avg_pool": ("ADAPTIVE-C14",),
                           "adaptive_max_pool": ("ADAPTIVE-C9", "ADAPTIVE-C14")},
    "overflow": {"conv": ("CONV-C18",), "linear": ("LINEAR-C11",), "conv_transpose": ("CONVT-C14",)},
    "tie-routing": {"max_pool": ("MAXPOOL-C10",)},
    "ceil-mode": {"max_pool": ("MAXPOOL-C5",), "avg_pool": ("AVGPOOL-C5", "AVGPOOL-C6")},
    "avgpool-divisor": {"avg_pool": ("AVGPOOL-C6", "AVGPOOL-C7")},
    "empty-windows": {"max_pool": ("MAXPOOL-C7", "MAXPOOL-C11"), "avg_pool": ("AVGPOOL-C8", "AVGPOOL-C12")},
    "empty-batch": {"conv": ("CONV-C9",), "max_pool": ("MAXPOOL-C8",), "avg_pool": ("AVGPOOL-C9",),
                    "linear": ("LINEAR-C4",), "conv_transpose": ("CONVT-C7",), "max_pool_indices": ("MAXIDX-C8",),
                    "adaptive_avg_pool": ("ADAPTIVE-C10",), "adaptive_max_pool": ("ADAPTIVE-C10",)},
    "large-shapes": {op: _FORWARD[op] + _BACKWARD.get(op, ()) for op in _FORWARD},  # indices have no backward
    "invalid-params": {op: _invalid(op) for op in _ERRORS},
    # The rules of conformance.rules.transposed, .indices and .adaptive.
    "transpose-identity": {"conv_transpose": ("CONVT-C3", "CONVT-C8", "CONVT-C9")},
    "indices-ties": {"max_pool_indices": ("MAXIDX-C3",)},
    "indices-nan": {"max_pool_indices": ("MAXIDX-C4",)},
    "indices-empty-windows": {"max_pool_indices": ("MAXIDX-C5",)},
    "indices-agreement": {"max_pool_indices": ("MAXIDX-C2", "MAXIDX-C6")},
    "adaptive-windows": {"adaptive_avg_pool": ("ADAPTIVE-C3", "ADAPTIVE-C4", "ADAPTIVE-C5", "ADAPTIVE-C8"),
                         "adaptive_max_pool": ("ADAPTIVE-C3", "ADAPTIVE-C4", "ADAPTIVE-C6", "ADAPTIVE-C9")},
    "adaptive-global": {"adaptive_avg_pool": ("ADAPTIVE-C7", "ADAPTIVE-C8"),
                        "adaptive_max_pool": ("ADAPTIVE-C7", "ADAPTIVE-C9")},
    "adaptive-identity": {"adaptive_avg_pool": ("ADAPTIVE-C3", "ADAPTIVE-C5"),
                          "adaptive_max_pool": ("ADAPTIVE-C3", "ADAPTIVE-C6")},
}

#: Rules that are not searches of their own: the checked caller raises them from every call of every rule.
RAISED_BY_EVERY_CALL: frozenset[str] = frozenset({"output-contract", "input-mutation"})

#: Constraints no conformance rule can check on a backend, and why (none today).
NOT_CHECKED_ON_BACKENDS: dict[str, str] = {}


def cited(rule: str, op: str) -> tuple[str, ...]:
    """The constraint ids a rule enforces for an operation (empty if none are recorded).

    >>> cited("tie-routing", "max_pool")
    ('MAXPOOL-C10',)
    """
    return CITATIONS.get(rule, {}).get(op, ())


#: Constraint prefix -> document: the registry's, and the backend protocol's.
_DOCUMENTS = {**{record.constraint_prefix: record.document for record in OPERATIONS.values()}, "BACKEND": "backends.md"}


def anchor(constraint: str) -> str:
    """The link to a constraint's sentence in its document (each bullet carries an ``<a id>``).

    >>> anchor("CONV-C3")
    'spec/docs/conv.md#conv-c3'
    """
    return f"spec/docs/{_DOCUMENTS[constraint.split('-')[0]]}#{constraint.lower()}"
