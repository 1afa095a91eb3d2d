"""Shared test configuration: pytester for the pytest-plugin tests, and Hypothesis profiles."""

import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile("convspec-tests", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=os.environ.get("CI") == "true")
settings.load_profile("convspec-tests")
collect_ignore = ["broken", "misbehaving"]


@pytest.fixture(autouse=True)
def _private_example_database(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runs save and replay failing examples in a directory of their own, never in the repository."""
    monkeypatch.setenv("CONVSPEC_DATABASE", str(tmp_path_factory.mktemp("examples")))


#: The longest tests (whole ci runs against frameworks and broken backends) start first, the files with the
#: longest single tests (PyTorch's and JAX's whole-profile runs, 30-120 s) before the others, so that with
#: ``pytest -n 2`` no worker is left running one of them alone at the end.
_LONGEST_FIRST = ("test_frameworks.py", "test_calibration.py", "test_compile_friendly.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return _LONGEST_FIRST.index(name) if name in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file stays
