"""Export the reference of an older commit as a separately importable backend, to time before/after.

    python benchmarks/reference_at.py 3d7a957 /tmp/ref_before
    PYTHONPATH=/tmp/ref_before convspec bench reference_before --against reference --dtypes float64

writes ``/tmp/ref_before/reference_before/`` (the package ``reference`` of that
commit with its imports renamed) and leaves the work tree alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path


def _modules(repo: Path, commit: str) -> list[str]:
    """The reference package's modules at ``commit``."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{commit}:reference"], cwd=repo, check=True, capture_output=True, text=True,
    ).stdout
    return [name[:-3] for name in listing.split() if name.endswith(".py")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="a commit whose reference/ to export, e.g. 3d7a957")
    parser.add_argument("destination", type=Path, help="directory to put on PYTHONPATH")
    parser.add_argument("--name", default="reference_before", help="package name (default reference_before)")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    package = args.destination / args.name
    package.mkdir(parents=True, exist_ok=True)
    for module in _modules(repo, args.commit):
        source = subprocess.run(
            ["git", "show", f"{args.commit}:reference/{module}.py"], cwd=repo, check=True, capture_output=True, text=True,
        ).stdout
        source = re.sub(r"\b(from|import) reference\b", rf"\1 {args.name}", source)
        (package / f"{module}.py").write_text(source)
    print(f"wrote {package}; load it as backend {args.name!r} with PYTHONPATH={args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
