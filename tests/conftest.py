"""Shared test configuration: pytester for the pytest-plugin tests, and Hypothesis profiles."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile("convspec-tests", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=os.environ.get("CI") == "true")
settings.load_profile("convspec-tests")
collect_ignore = ["broken", "misbehaving"]
