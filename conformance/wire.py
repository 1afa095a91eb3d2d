"""What travels from the worker process to the suite: builtins and bytes, never the backend's objects.

The worker turns a :class:`~conformance.invoke.CallOutcome` into a structure of
``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``tuple``, ``list``
and ``dict`` only (:func:`encode_outcome`): each array becomes its dtype name,
shape and raw bytes, an exception its type name, message and the
:mod:`spec` error class it derives from. The suite reads it with an unpickler
that refuses to look up any class or function (:func:`loads_plain`), so
nothing the backend defined (a ``__reduce__``, an ndarray subclass, a lying
``dtype`` property) can run in the suite's process, and rebuilds arrays with
:func:`numpy.frombuffer` into fresh, writable copies.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

import spec
from conformance.invoke import CallOutcome

#: Array kinds a result may have on the wire: bool, signed and unsigned integers, floats, complex.
_KINDS = "biufc"
#: Longest exception message sent, in characters.
_MESSAGE_LIMIT = 2000


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the worker sent a reference to {module}.{name}; only plain data is accepted")


def loads_plain(payload: bytes) -> Any:
    """Unpickle builtins-only data; any class or function reference is refused."""
    return _PlainUnpickler(io.BytesIO(payload)).load()


def dumps_plain(data: Any) -> bytes:
    return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)


def _qualified_name(obj: object) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _spec_base(exc: BaseException) -> str | None:
    """The name of the first :mod:`spec` error class ``exc`` derives from, if any."""
    if isinstance(exc, spec.UnsupportedError):
        return "UnsupportedError"
    if isinstance(exc, spec.SpecError):
        return "SpecError"
    return None


def _sendable(dtype: np.dtype[Any]) -> bool:
    """Numbers only: bool, integers, floats (bfloat16 included), complex; never objects or records."""
    return not dtype.hasobject and (dtype.kind in _KINDS or dtype.name in spec.DTYPES)


def _encode_value(value: Any) -> Any:
    if value is None:
        return ("none",)
    if type(value) is np.ndarray and _sendable(value.dtype):
        return ("array", value.dtype.name, tuple(int(n) for n in value.shape), value.tobytes(order="C"))
    if type(value) is tuple or type(value) is list:
        return ("tuple", [_encode_value(v) for v in value])
    if type(value) is str:  # the answer of the backend's supports()
        return ("str", value[:_MESSAGE_LIMIT])
    return ("other", _qualified_name(value))


def encode_outcome(outcome: CallOutcome) -> bytes:
    """The outcome as builtins-only pickle bytes (call only after the contract checks of ``run_call``)."""
    error = None
    if outcome.error is not None:
        try:
            message = str(outcome.error)
        except Exception as exc:  # a backend's __str__ may fail too
            message = f"<message unavailable: {type(exc).__name__}>"
        error = (_qualified_name(outcome.error), message[:_MESSAGE_LIMIT], _spec_base(outcome.error))
    data = {
        "function": outcome.function, "result": _encode_value(outcome.result), "error": error,
        "crashed": outcome.crashed, "mutated": [str(m) for m in outcome.mutated],
        "problems": [str(p) for p in outcome.problems], "seconds": float(outcome.seconds),
    }
    return dumps_plain(data)


class BackendError(Exception):
    """An exception raised by the backend, rebuilt in the suite from its type name and message.

    The suite makes a subclass named after the original type (deriving from
    :class:`spec.SpecError` or :class:`spec.UnsupportedError` when the
    original did), so a report reads ``raised ValueErrorWithState`` and an
    ``UnsupportedError`` is still recognised.
    """

    type_name: str = ""


_ERROR_TYPES: dict[tuple[str, str | None], type[BackendError]] = {}


def rebuild_error(type_name: str, message: str, base: str | None) -> BackendError:
    """A :class:`BackendError` whose class is named after the backend's exception type."""
    cls = _ERROR_TYPES.get((type_name, base))
    if cls is None:
        short = type_name.rpartition(".")[2]
        name = short if short.isidentifier() else "BackendError"
        bases: tuple[type, ...] = (BackendError,)
        if base == "UnsupportedError":
            bases += (spec.UnsupportedError,)
        elif base == "SpecError":
            bases += (spec.SpecError,)
        cls = type(name, bases, {"__module__": __name__, "type_name": type_name})
        _ERROR_TYPES[(type_name, base)] = cls
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


class Unsendable:
    """Stands in for a result that was not an array, a tuple of arrays or None."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<unsendable {self.type_name}>"


def _decode_value(data: Any) -> Any:
    if not isinstance(data, tuple) or not data or not isinstance(data[0], str):
        raise ValueError("malformed value")
    kind = data[0]
    if kind == "none":
        return None
    if kind == "str" and len(data) == 2 and isinstance(data[1], str):
        return data[1]
    if kind == "array":
        _, dtype_name, shape, raw = data
        dtype = np.dtype(str(dtype_name))
        if not _sendable(dtype) or not isinstance(raw, bytes):
            raise ValueError(f"array of dtype {dtype_name!r}")
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"array shape {shape!r}")
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{len(raw)} bytes for an array of shape {shape} and dtype {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if kind == "tuple":
        return tuple(_decode_value(v) for v in data[1])
    if kind == "other":
        return Unsendable(str(data[1]))
    raise ValueError(f"unknown value kind {kind!r}")


def decode_outcome(function: str, payload: bytes) -> CallOutcome:
    """Rebuild the outcome the worker sent; anything malformed becomes a contract problem of the call."""
    try:
        data = loads_plain(payload)
        if not isinstance(data, dict) or data.get("function") != function:
            raise ValueError("not an outcome of this call")
        outcome = CallOutcome(function, result=_decode_value(data["result"]),
                              crashed=data["crashed"] if isinstance(data["crashed"], str) else None,
                              mutated=[str(m) for m in data["mutated"]], problems=[str(p) for p in data["problems"]],
                              seconds=float(data["seconds"]))
        if data["error"] is not None:
            type_name, message, base = data["error"]
            outcome.error = rebuild_error(str(type_name), str(message), base if base in (
                "SpecError", "UnsupportedError") else None)
    except Exception as exc:  # a malformed message is the backend's doing (it shares the worker)
        return CallOutcome(function, problems=[f"the worker process sent an unreadable outcome: "
                                               f"{type(exc).__name__}: {exc}"])
    return outcome
