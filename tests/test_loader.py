"""Resolving backend names: built-ins, module:attribute, entry points, and the install hint."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import conformance.loader as loader
from conformance.loader import BackendLoadError, load_backend, resolve_target


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


# --------------------------------------------------------------------------- names as people type them

ROOT = Path(__file__).resolve().parent.parent


def test_a_file_path_is_a_target_with_or_without_an_attribute() -> None:
    target = resolve_target("examples/mykernels.py")
    assert target.path == str(ROOT / "examples" / "mykernels.py") and target.module == "mykernels"
    with_attribute = resolve_target("examples/mykernels.py:linear_forward")
    assert with_attribute.attribute == "linear_forward" and with_attribute.path == target.path
    namespace: dict[str, Any] = {}
    exec(target.import_line, namespace)  # the snippet's import line loads the file by its path
    assert callable(namespace["backend"].linear_forward)


@pytest.mark.parametrize(("name", "says"), [
    ("refrence", "did you mean 'reference'?"),
    ("examples/mykernels", "did you mean 'examples/mykernels.py'?"),
    ("examples/nothing_here.py", "backend file 'examples/nothing_here.py' does not exist"),
    ("my-kernels", "is neither a module name nor a file"),
    ("examples/", "is a directory"),
    ("mypkg.kernels:not-a-name", "is not an attribute name"),
])
def test_an_unknown_target_suggests_the_closest_form(name: str, says: str) -> None:
    with pytest.raises(BackendLoadError) as raised:
        if "/" in name or ":" in name:
            resolve_target(name)
        else:
            load_backend(name)
    assert says in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


# --------------------------------------------------------------------------- never shadowed

def _cli(cwd: Path, *argv: str, pythonpath: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": pythonpath})


@pytest.fixture
def colliding_project(tmp_path: Path) -> Path:
    """A project with its own ``spec/`` package and a wrong ``reference.py`` (it marks that it was imported)."""
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "__init__.py").write_text('raise RuntimeError("the project\'s own spec package")\n')
    (tmp_path / "reference.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('imported').write_text('yes')\n"
        "def linear_forward(x, w, b):\n"
        "    return x @ w.T + 1.0  # wrong\n")
    return tmp_path


@pytest.mark.parametrize("pythonpath", ["{root}", ".:{root}"])
def test_convspec_uses_its_own_packages_whatever_the_directory_holds(colliding_project: Path, pythonpath: str) -> None:
    done = _cli(colliding_project, "check", "reference", "--profile", "quick", "--ops", "linear", "--dtypes", "float64",
                pythonpath=pythonpath.format(root=ROOT))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CONFORMANT: reference" in done.stdout and "NOT CONFORMANT" not in done.stdout
    assert not (colliding_project / "imported").exists(), "the project's reference.py was imported"


def test_a_colliding_module_is_a_backend_when_named_by_its_path(colliding_project: Path) -> None:
    done = _cli(colliding_project, "check", "./reference.py", "--profile", "quick", "--ops", "linear", "--dtypes",
                "float64", pythonpath=f".:{ROOT}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT CONFORMANT" in done.stdout and "forward-values" in done.stdout
    assert (colliding_project / "imported").exists()


def test_a_shadowed_package_already_imported_is_one_line_exit_2(colliding_project: Path) -> None:
    code = ("import sys; sys.path.insert(0, '.'); import reference; sys.path.insert(1, sys.argv[1]); "
            "from conformance.cli import main; sys.exit(main(['check', 'reference']))")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=colliding_project, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "convspec's own package 'reference' is shadowed by" in lines[0], done.stderr
