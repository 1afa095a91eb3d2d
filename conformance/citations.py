"""Which spec constraints (spec/docs/*.md) each conformance rule enforces, per operation.

Reports cite these ids so a failure points at the sentence of the spec it breaks.
``tests/test_citations.py`` checks that every id exists in the documents and
that every constraint of the documents is enforced by at least one rule.
"""

from __future__ import annotations

_SHAPES = {"conv": ("CONV-C1", "CONV-C2", "CONV-C8", "CONV-C10"),
           "max_pool": ("MAXPOOL-C1", "MAXPOOL-C2", "MAXPOOL-C5", "MAXPOOL-C9"),
           "avg_pool": ("AVGPOOL-C1", "AVGPOOL-C2", "AVGPOOL-C5", "AVGPOOL-C10"),
           "linear": ("LINEAR-C1", "LINEAR-C2", "LINEAR-C5")}
_FORWARD = {"conv": ("CONV-C3", "CONV-C4", "CONV-C5", "CONV-C6", "CONV-C7", "CONV-C15"),
            "max_pool": ("MAXPOOL-C3", "MAXPOOL-C4", "MAXPOOL-C14"),
            "avg_pool": ("AVGPOOL-C3", "AVGPOOL-C4", "AVGPOOL-C6", "AVGPOOL-C7", "AVGPOOL-C14"),
            "linear": ("LINEAR-C3", "LINEAR-C8")}
_BACKWARD = {"conv": ("CONV-C11", "CONV-C12", "CONV-C13", "CONV-C15"),
             "max_pool": ("MAXPOOL-C10", "MAXPOOL-C14"),
             "avg_pool": ("AVGPOOL-C11", "AVGPOOL-C14"),
             "linear": ("LINEAR-C6", "LINEAR-C8")}

CITATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "output-shape": _SHAPES,
    "output-contract": {"conv": ("CONV-C16",), "max_pool": ("MAXPOOL-C15",), "avg_pool": ("AVGPOOL-C15",),
                        "linear": ("LINEAR-C9",)},
    "input-mutation": {"conv": ("CONV-C16",), "max_pool": ("MAXPOOL-C15",), "avg_pool": ("AVGPOOL-C15",),
                       "linear": ("LINEAR-C9",)},
    "forward-values": _FORWARD,
    "backward-values": _BACKWARD,
    "correlate2d": {"conv": ("CONV-C3", "CONV-C11", "CONV-C12")},
    "finite-differences": _BACKWARD,
    "adjoint": {op: ids for op, ids in _BACKWARD.items() if op != "max_pool"},
    "metamorphic": {"conv": ("CONV-C3", "CONV-C4"), "max_pool": ("MAXPOOL-C3",), "avg_pool": ("AVGPOOL-C3",),
                    "linear": ("LINEAR-C3",)},
    "maxpool-pad-value": {"max_pool": ("MAXPOOL-C3",)},
    "nan-propagation": {"conv": ("CONV-C15",), "max_pool": ("MAXPOOL-C6",), "avg_pool": ("AVGPOOL-C14",),
                        "linear": ("LINEAR-C8",)},
    "tie-routing": {"max_pool": ("MAXPOOL-C10",)},
    "ceil-mode": {"max_pool": ("MAXPOOL-C5",), "avg_pool": ("AVGPOOL-C5", "AVGPOOL-C6")},
    "avgpool-divisor": {"avg_pool": ("AVGPOOL-C6", "AVGPOOL-C7")},
    "empty-windows": {"max_pool": ("MAXPOOL-C7", "MAXPOOL-C11"), "avg_pool": ("AVGPOOL-C8", "AVGPOOL-C12")},
    "empty-batch": {"conv": ("CONV-C9",), "max_pool": ("MAXPOOL-C8",), "avg_pool": ("AVGPOOL-C9",),
                    "linear": ("LINEAR-C4",)},
    "invalid-params": {"conv": ("CONV-C14",), "max_pool": ("MAXPOOL-C13",), "avg_pool": ("AVGPOOL-C13",),
                       "linear": ("LINEAR-C7",)},
}

#: Constraints no conformance rule can check on a backend, and why.
NOT_CHECKED_ON_BACKENDS: dict[str, str] = {
    "MAXPOOL-C12": "the spec leaves gradients at NaN inputs unconstrained: nothing to check",
}


def cited(rule: str, op: str) -> tuple[str, ...]:
    """The constraint ids a rule enforces for an operation (empty if none are recorded).

    >>> cited("tie-routing", "max_pool")
    ('MAXPOOL-C10',)
    """
    return CITATIONS.get(rule, {}).get(op, ())


_DOCUMENTS = {"CONV": "conv.md", "MAXPOOL": "max_pool.md", "AVGPOOL": "avg_pool.md", "LINEAR": "linear.md"}


def anchor(constraint: str) -> str:
    """The link to a constraint's sentence in its document (each bullet carries an ``<a id>``).

    >>> anchor("CONV-C3")
    'spec/docs/conv.md#conv-c3'
    """
    return f"spec/docs/{_DOCUMENTS[constraint.split('-')[0]]}#{constraint.lower()}"
