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


#: The longest tests (whole ci runs against frameworks and broken backends) start first, so that with
#: ``pytest -n 2`` no worker is left running one of them alone at the end.
_LONGEST_FIRST = ("test_frameworks.py", "test_calibration.py", "test_compile_friendly.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in _LONGEST_FIRST)  # stable: the order within each group stays
