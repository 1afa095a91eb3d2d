"""Finding a backend by name: built-in adapters, ``module[:attribute]``, ``path/to/file.py[:attribute]``, entry points.

Resolving a name (:func:`resolve_target`) never imports anything of the
backend: ``convspec check`` imports it only in its worker process
(:mod:`conformance.isolation`), which reports back plain data
(:class:`BackendInfo`). :func:`load_backend` imports it in the current process,
for ``--isolation none``, benchmarks and tests.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from spec import FUNCTION_NAMES, Capabilities, SpecError, capabilities_of, supported_functions

#: Built-in backend names -> (module, the extra that installs what it needs).
BUILTIN_BACKENDS: dict[str, tuple[str, str | None]] = {
    "reference": ("reference", None),
    "torch": ("conformance.backends.torch_backend", "torch"),
    "jax": ("conformance.backends.jax_backend", "jax"),
    "tensorflow": ("conformance.backends.tensorflow_backend", "tensorflow"),
    "onnxruntime": ("conformance.backends.onnxruntime_backend", "onnxruntime"),
}
ENTRY_POINT_GROUP = "convspec.backends"
#: The forms a backend name may take, for error messages.
FORMS = ("a built-in name (reference, torch, jax, tensorflow, onnxruntime), package.module[:attribute] "
         "or path/to/file.py[:attribute]")


class BackendLoadError(Exception):
    """The backend named on the command line cannot be loaded; the message is one line."""


@dataclass(frozen=True)
class Target:
    """Where a backend comes from: a module on the Python path, or a file named by its path."""

    #: The name as the user gave it.
    name: str
    #: ``module[:attribute]`` or ``/absolute/path.py[:attribute]``.
    spec: str
    #: The module's dotted name (for a file: the name it is imported under).
    module: str
    attribute: str = ""
    #: The absolute path of a file target, or None for a module target.
    path: str | None = None
    #: The optional extra that installs a built-in adapter's framework.
    extra: str | None = None

    @property
    def import_line(self) -> str:
        """Python source that binds ``backend`` to this backend, for reproduction snippets."""
        if self.path is not None:
            line = (f"import importlib.util as _iu; _s = _iu.spec_from_file_location({self.module!r}, {self.path!r}); "
                    "backend = _iu.module_from_spec(_s); _s.loader.exec_module(backend)")
            return line + (f"; backend = backend.{self.attribute}" if self.attribute else "")
        if self.attribute:
            return f"from {self.module} import {self.attribute} as backend"
        return f"import {self.module} as backend"


def _known_names() -> list[str]:
    return list(BUILTIN_BACKENDS) + [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)]


def suggestion(name: str) -> str:
    """A hint for a name that resolves to nothing: the closest known name, or a file beside it, or the forms."""
    stem = name.partition(":")[0]
    close = difflib.get_close_matches(stem, _known_names(), n=1, cutoff=0.75)
    if close:
        return f"did you mean {close[0]!r}?"
    as_file = Path(stem.replace(".", os.sep) + ".py")
    if "/" not in stem and as_file.is_file():
        return f"did you mean './{as_file}'?"
    if "/" in stem and Path(stem + ".py").is_file():
        return f"did you mean '{stem}.py'?"
    return f"name {FORMS}"


def _is_path(stem: str) -> bool:
    return stem.endswith(".py") or "/" in stem or stem.startswith(".") or os.sep in stem


def resolve_target(name: str) -> Target:
    """What a backend name stands for, found without importing anything of the backend.

    >>> resolve_target("reference").spec
    'reference'
    >>> t = resolve_target("mypkg.kernels:backend")
    >>> (t.module, t.attribute, t.path)
    ('mypkg.kernels', 'backend', None)
    """
    if not name or name.strip() != name:
        raise BackendLoadError(f"backend name {name!r} is empty or has surrounding spaces")
    if name in BUILTIN_BACKENDS:
        module, extra = BUILTIN_BACKENDS[name]
        return Target(name, module, module, extra=extra)
    value = name
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            value = str(ep.value)
            break
    stem, sep, attribute = value.rpartition(":")
    if not sep:
        stem, attribute = value, ""
    if attribute and not all(part.isidentifier() for part in attribute.split(".")):
        raise BackendLoadError(f"backend {name!r}: {attribute!r} is not an attribute name; {suggestion(name)}")
    if _is_path(stem):
        path = Path(stem).expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            hint = suggestion(name)
            raise BackendLoadError(f"backend file {stem!r} {what}; {hint}")
        if path.suffix != ".py":
            raise BackendLoadError(f"backend file {stem!r} is not a Python file (.py); {suggestion(name)}")
        module = path.stem if path.stem.isidentifier() else "convspec_backend"
        full = str(path.resolve())
        return Target(name, f"{full}:{attribute}" if attribute else full, module, attribute, full)
    if not stem or not all(part.isidentifier() for part in stem.split(".")):
        raise BackendLoadError(f"backend {name!r} is neither a module name nor a file; {suggestion(name)}")
    return Target(name, value, stem, attribute)


# --------------------------------------------------------------------------- importing (worker, or --isolation none)

def _import_file(target: Target) -> object:
    assert target.path is not None
    module_name = target.module
    if module_name in sys.modules:  # e.g. ./reference.py: never replace convspec's own modules
        module_name = f"convspec_backend_{module_name}"
    directory = str(Path(target.path).parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # the file's own sibling imports; convspec's packages are already imported
    file_spec = importlib.util.spec_from_file_location(module_name, target.path)
    if file_spec is None or file_spec.loader is None:
        raise BackendLoadError(f"cannot load backend file {target.path!r}")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[module_name] = module
    file_spec.loader.exec_module(module)
    return module


def _import_target(target: Target) -> object:
    what = f"backend file {target.path!r}" if target.path else f"backend module {target.module!r}"
    try:
        if target.path is not None:
            return _import_file(target)
        return importlib.import_module(target.module)
    except BackendLoadError:
        raise
    except ModuleNotFoundError as exc:
        if target.extra is not None:
            raise BackendLoadError(f"backend {target.name!r} needs an optional dependency ({exc}); "
                                   f"install it with: pip install 'convspec[{target.extra}]'") from exc
        missing = exc.name or ""
        if target.path is None and (target.module == missing or target.module.startswith(missing + ".")):
            raise BackendLoadError(f"cannot import backend module {target.module!r}: {exc}; {suggestion(target.name)}"
                                   ) from exc
        raise BackendLoadError(f"cannot import {what}: {exc}") from exc
    except SystemExit as exc:
        raise BackendLoadError(f"importing {what} called sys.exit({exc.code!r})") from exc
    except (Exception, KeyboardInterrupt) as exc:  # a module that fails while importing: report, never crash the CLI
        raise BackendLoadError(f"importing {what} failed: {type(exc).__name__}: {exc}") from exc


def import_backend(target: Target) -> tuple[object, dict[str, Callable[..., Any]], Capabilities]:
    """Import ``target`` here and inspect it; raise :class:`BackendLoadError` with one clear line."""
    if target.path is None and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: a backend module in the working directory loads
    obj = _import_target(target)
    for part in filter(None, target.attribute.split(".")):
        if not hasattr(obj, part):
            raise BackendLoadError(f"module {target.module!r} has no attribute {part!r} (backend {target.name!r})")
        obj = getattr(obj, part)
    functions = supported_functions(obj)
    if not functions:
        raise BackendLoadError(f"{target.name!r} is not a backend: it has none of conv_forward, conv_backward, "
                               "max_pool_forward, ... (see spec.protocol)")
    try:
        capabilities = capabilities_of(obj)
    except SpecError as exc:
        raise BackendLoadError(f"backend {target.name!r} declares invalid capabilities: {exc}") from exc
    return obj, functions, capabilities


def version_of(obj: object) -> str | None:
    for attr in ("VERSION", "__version__"):
        value = getattr(obj, attr, None)
        if isinstance(value, str):
            return value[:200]
    return None


# --------------------------------------------------------------------------- plain data about a backend

def capabilities_to_data(caps: Capabilities) -> dict[str, Any]:
    """Capabilities as builtins only (frozensets become sorted lists)."""
    data: dict[str, Any] = {}
    for f in fields(caps):
        value = getattr(caps, f.name)
        if isinstance(value, (frozenset, set)):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        data[f.name] = value
    return data


def capabilities_from_data(data: Mapping[str, Any]) -> Capabilities:
    """Rebuild :class:`spec.Capabilities` from :func:`capabilities_to_data`, checking every field's type."""
    defaults = Capabilities()
    values: dict[str, Any] = {}
    for f in fields(defaults):
        if f.name not in data:
            continue
        default, value = getattr(defaults, f.name), data[f.name]
        if isinstance(default, frozenset):
            if not isinstance(value, list) or not all(isinstance(v, (str, int, bool)) for v in value):
                raise BackendLoadError(f"backend sent invalid capabilities: {f.name}={value!r}")
            values[f.name] = frozenset(value)
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BackendLoadError(f"backend sent invalid capabilities: {f.name}={value!r}")
            values[f.name] = tuple(value)
        else:
            if type(value) is not type(default):
                raise BackendLoadError(f"backend sent invalid capabilities: {f.name}={value!r}")
            values[f.name] = value
    try:
        return Capabilities(**values)
    except (SpecError, TypeError) as exc:
        raise BackendLoadError(f"backend declares invalid capabilities: {exc}") from exc


@dataclass(frozen=True)
class BackendInfo:
    """What the worker reports about the backend it imported: names and plain values only."""

    functions: tuple[str, ...]
    capabilities: Capabilities
    version: str | None

    def to_data(self) -> dict[str, Any]:
        return {"functions": list(self.functions), "capabilities": capabilities_to_data(self.capabilities),
                "version": self.version}

    @classmethod
    def from_data(cls, data: Any) -> BackendInfo:
        if not isinstance(data, dict):
            raise BackendLoadError("the worker process sent no description of the backend")
        functions = data.get("functions")
        if not isinstance(functions, list) or not functions or not all(f in FUNCTION_NAMES for f in functions):
            raise BackendLoadError(f"the worker process sent invalid function names: {functions!r}")
        version = data.get("version")
        return cls(tuple(functions), capabilities_from_data(data.get("capabilities") or {}),
                   version if isinstance(version, str) else None)


def _runs_in_worker(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this backend runs in a worker process: call it through its SubprocessCaller")


@dataclass(frozen=True)
class LoadedBackend:
    """A backend resolved from its name, with what it supports.

    ``obj`` and ``functions`` are the backend's own objects when it was
    imported in this process (:func:`load_backend`); for a backend that lives
    in a worker process (:meth:`remote`) ``obj`` is None and ``functions``
    maps each name to a stub: only membership is meaningful.
    """

    name: str
    #: How to load it again, e.g. in a worker process or a reproduction snippet.
    target: str
    obj: object
    functions: Mapping[str, Callable[..., Any]]
    capabilities: Capabilities
    #: The backend's VERSION or __version__, if it has one.
    version: str | None = None
    #: Python source binding ``backend`` for snippets (defaults from ``target``).
    import_source: str | None = None

    @property
    def import_line(self) -> str:
        """Python source that binds ``backend`` to this backend, for reproduction snippets."""
        if self.import_source is not None:
            return self.import_source
        module, _, attribute = self.target.partition(":")
        if "." in attribute:
            head, _, rest = attribute.partition(".")
            return f"from {module} import {head}; backend = {head}.{rest}"
        if attribute:
            return f"from {module} import {attribute} as backend"
        return f"import {module} as backend"

    @property
    def in_process(self) -> bool:
        return self.obj is not None

    @classmethod
    def remote(cls, target: Target, info: BackendInfo) -> LoadedBackend:
        """A backend imported in a worker process, described by the plain data the worker sent."""
        return cls(target.name, target.spec, None, dict.fromkeys(info.functions, _runs_in_worker), info.capabilities,
                   info.version, target.import_line)


def load_backend(name: str) -> LoadedBackend:
    """Import and inspect a backend in this process; raise :class:`BackendLoadError` with one clear line."""
    target = resolve_target(name)
    obj, functions, capabilities = import_backend(target)
    return LoadedBackend(name, target.spec, obj, functions, capabilities, version_of(obj), target.import_line)
