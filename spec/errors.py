"""The one error family of convspec.

Every invalid parameter, shape or dtype raises :class:`SpecError`, a
``ValueError`` subclass whose message names the parameter, the value it was
given and the requirement it broke::

    stride[1]=0 is invalid: must be >= 1

Backends are not required to raise this exact type (frameworks have their own
errors); they are required to *raise* rather than return a result. The
reference and every helper in :mod:`spec` raise ``SpecError``.
"""

from __future__ import annotations

from typing import Any


class SpecError(ValueError):
    """An operation was given a parameter, shape or dtype the spec forbids.

    Attributes
    ----------
    parameter:
        The name of the offending parameter, e.g. ``"stride[1]"`` or ``"w.shape"``.
    value:
        The value it was given.
    requirement:
        The rule it broke, phrased as what it *must* be, e.g. ``"must be >= 1"``.

    >>> err = SpecError("stride[1]", 0, "must be >= 1")
    >>> str(err)
    'stride[1]=0 is invalid: must be >= 1'
    >>> isinstance(err, ValueError)
    True
    """

    def __init__(self, parameter: str, value: Any, requirement: str) -> None:
        self.parameter = parameter
        self.value = value
        self.requirement = requirement
        super().__init__(f"{parameter}={value!r} is invalid: {requirement}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the three fields when the error crosses a process boundary.
        return (type(self), (self.parameter, self.value, self.requirement))


class UnsupportedError(NotImplementedError):
    """Raised by a *backend* for a valid configuration it does not implement.

    The conformance suite counts such a case as "not covered", with the
    message as the reason, instead of as a failure. Declaring the limitation in
    the backend's :class:`spec.protocol.Capabilities` is better: then the suite
    never generates the case at all.
    """
