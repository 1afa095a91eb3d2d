"""Import boundaries the layout promises, checked in a fresh interpreter (nothing imported by other tests leaks in)."""

from __future__ import annotations

import ast
import json
import re
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


def test_only_textio_renames_files_into_place_or_splits_comma_lists() -> None:
    """One atomic writer and one comma-list parser: another module doing either has its own copy again."""
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in (ROOT / "conformance").rglob("*.py")}
    assert sorted(name for name, text in sources.items() if "os.replace(" in text) == ["conformance/textio.py"]
    assert sorted(name for name, text in sources.items() if 'split(",")' in text) == ["conformance/textio.py"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    from conformance.textio import replacing, write_atomically

    target = tmp_path / "report.json"
    write_atomically(target, "old")
    try:
        with replacing(target) as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_spec_never_imports_the_reference_or_the_suite() -> None:
    """spec/docs/README.md's claim: ``import spec`` loads neither, and no spec module imports them, even lazily.
    (The spec's doctests do import ``reference``, as a user would, to show a call: those are examples, not code.)"""
    loaded = _modules_loaded_by("spec")
    assert not {m for m in loaded if m.split(".")[0] in ("reference", "conformance")}
    importing = []
    for path in sorted((ROOT / "spec").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            importing += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("reference", "conformance")]
    assert not importing


def test_every_path_and_spec_name_in_contributing_exists() -> None:
    """CONTRIBUTING.md's recipes name real files: a renamed or moved file fails here, not in a contributor's hands."""
    import spec

    quoted = re.findall(r"`([^`\s<>]+)`", (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    paths = [q for q in quoted if "/" in q or q.endswith((".py", ".md", ".toml"))]
    assert len(paths) > 20, paths  # the recipes are lists of files: a parsing slip must not pass vacuously
    assert [p for p in paths if not (ROOT / p).exists()] == []
    names = [q.removeprefix("spec.") for q in quoted if q.startswith("spec.") and "/" not in q]
    assert names and [n for n in names if not hasattr(spec, n)] == []
    # The tables it names (BUILDERS, HEADS, RULES, ...) are defined at module level somewhere in the code.
    sources = "\n".join(p.read_text(encoding="utf-8") for d in ("spec", "reference", "conformance", "tests")
                        for p in (ROOT / d).rglob("*.py"))
    tables = {q for q in quoted if re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", q)}
    assert len(tables) > 10, tables
    assert sorted(t for t in tables if not re.search(rf"^{t}\b[^=\n]*=", sources, re.MULTILINE)) == []
