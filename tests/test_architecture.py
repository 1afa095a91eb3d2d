"""Import boundaries the layout promises, checked in a fresh interpreter (nothing imported by other tests leaks in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def test_the_renderers_of_results_do_not_import_the_runner() -> None:
    loaded = _modules_loaded_by("conformance.report, conformance.merge, conformance.progress")
    assert "conformance.results" in loaded
    assert "conformance.runner" not in loaded
