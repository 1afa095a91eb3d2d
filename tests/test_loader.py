"""Resolving backend names: built-ins, module:attribute, entry points, and the install hint."""

from __future__ import annotations

import builtins
import sys
import types
from importlib.metadata import EntryPoint
from typing import Any

import pytest

import conformance.loader as loader
from conformance.loader import BackendLoadError, load_backend


def test_a_registered_entry_point_name_resolves_to_its_target(monkeypatch: pytest.MonkeyPatch) -> None:
    registered = [EntryPoint(name="mykernels", value="examples_backend_module:backend", group=loader.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(loader, "entry_points", lambda group: registered if group == loader.ENTRY_POINT_GROUP else [])
    module = types.ModuleType("examples_backend_module")
    namespace = types.SimpleNamespace(linear_forward=lambda x, w, b: x @ w.T)
    module.backend = namespace
    monkeypatch.setitem(sys.modules, module.__name__, module)
    backend = load_backend("mykernels")
    assert backend.target == "examples_backend_module:backend"
    assert list(backend.functions) == ["linear_forward"]
    assert backend.import_line == "from examples_backend_module import backend as backend"


def test_a_missing_framework_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_torch(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "conformance.backends.torch_backend", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(BackendLoadError, match=r"pip install 'convspec\[torch\]'"):
        load_backend("torch")


def test_invalid_capabilities_are_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("convspec_bad_caps")
    module.linear_forward = lambda x, w, b: x
    module.CAPABILITIES = {"dtypes": ["float32"]}
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(BackendLoadError, match="must be a spec.Capabilities"):
        load_backend("convspec_bad_caps")
