"""Finding a backend by name: built-in adapters, ``module[:attribute]`` and entry points."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from spec import Capabilities, SpecError, capabilities_of, supported_functions

#: Built-in backend names -> (module, the extra that installs what it needs).
BUILTIN_BACKENDS: dict[str, tuple[str, str | None]] = {
    "reference": ("reference", None),
    "torch": ("conformance.backends.torch_backend", "torch"),
    "jax": ("conformance.backends.jax_backend", "jax"),
    "tensorflow": ("conformance.backends.tensorflow_backend", "tensorflow"),
    "onnxruntime": ("conformance.backends.onnxruntime_backend", "onnxruntime"),
}
ENTRY_POINT_GROUP = "convspec.backends"


class BackendLoadError(Exception):
    """The backend named on the command line cannot be loaded; the message is one line."""


@dataclass(frozen=True)
class LoadedBackend:
    """A backend resolved from its name, with what it supports."""

    name: str
    #: How to load it again, e.g. in a worker process or a reproduction snippet.
    target: str
    obj: object
    functions: dict[str, Callable[..., Any]]
    capabilities: Capabilities

    @property
    def import_line(self) -> str:
        """Python source that binds ``backend`` to this backend, for reproduction snippets."""
        module, _, attribute = self.target.partition(":")
        if "." in attribute:
            head, _, rest = attribute.partition(".")
            return f"from {module} import {head}; backend = {head}.{rest}"
        if attribute:
            return f"from {module} import {attribute} as backend"
        return f"import {module} as backend"


def resolve_target(name: str) -> str:
    """The ``module[:attribute]`` a backend name stands for.

    >>> resolve_target("reference")
    'reference'
    >>> resolve_target("mypkg.kernels:backend")
    'mypkg.kernels:backend'
    """
    if name in BUILTIN_BACKENDS:
        return BUILTIN_BACKENDS[name][0]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return str(ep.value)
    return name


def load_backend(name: str) -> LoadedBackend:
    """Import and inspect a backend; raise :class:`BackendLoadError` with one clear line."""
    if not name or name.strip() != name:
        raise BackendLoadError(f"backend name {name!r} is empty or has surrounding spaces")
    target = resolve_target(name)
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: a backend module in the working directory loads
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = BUILTIN_BACKENDS.get(name, (None, None))[1]
        if extra is not None:
            raise BackendLoadError(
                f"backend {name!r} needs an optional dependency ({exc}); install it with: pip install 'convspec[{extra}]'"
            ) from exc
        raise BackendLoadError(f"cannot import backend module {module_name!r}: {exc}") from exc
    except Exception as exc:  # a module that fails while importing: report, never crash the CLI
        raise BackendLoadError(f"importing backend module {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    obj: object = module
    for part in filter(None, attribute.split(".")):
        if not hasattr(obj, part):
            raise BackendLoadError(f"module {module_name!r} has no attribute {part!r} (backend {name!r})")
        obj = getattr(obj, part)
    functions = supported_functions(obj)
    if not functions:
        raise BackendLoadError(
            f"{target!r} is not a backend: it has none of conv_forward, conv_backward, max_pool_forward, ... "
            "(see spec.protocol)"
        )
    try:
        capabilities = capabilities_of(obj)
    except SpecError as exc:
        raise BackendLoadError(f"backend {name!r} declares invalid capabilities: {exc}") from exc
    return LoadedBackend(name, target, obj, functions, capabilities)
