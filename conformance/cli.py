"""The ``convspec`` command: ``convspec check|merge|bench|matrix``.

Exit codes: 0 conformant (or benchmark done), 1 not conformant, 2 usage or loading error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

#: The directory holding convspec's own packages.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_own_packages() -> str | None:
    """Import convspec's own spec and reference from its root, whatever the working directory or PYTHONPATH hold.

    A ``spec/`` package or ``reference.py`` in the working directory (on the
    path through ``python -m`` or ``PYTHONPATH=.``) would otherwise replace
    them. Returns why they cannot be used, or None.
    """
    sys.path.insert(0, _ROOT)
    try:
        import reference
        import spec
    except ImportError as exc:
        return f"cannot import convspec's own packages from {_ROOT}: {exc}"
    finally:
        sys.path.remove(_ROOT)  # the first occurrence: the one just inserted
    for module in (spec, reference):
        file = os.path.abspath(getattr(module, "__file__", None) or "")
        if not file.startswith(os.path.join(_ROOT, module.__name__) + os.sep):
            return (f"convspec's own package {module.__name__!r} is shadowed by {file} (already imported); "
                    "rename or move the colliding module")
    return None


_SHADOWED = _import_own_packages()

from conformance.loader import BackendLoadError  # noqa: E402  (after convspec's own packages are in place)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"convspec: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convspec", description="Conformance and performance of convolution, pooling and linear layers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    import conformance.bench as bench
    import conformance.matrix as matrix
    import conformance.runner as runner

    runner.add_arguments(commands.add_parser("check", help="check a backend against the spec"))
    bench.add_arguments(commands.add_parser("bench", help="time a backend against a baseline"))
    matrix.add_arguments(commands.add_parser("matrix", help="check several backends and compose the conformance matrix"))
    import conformance.merge as merge

    merge.add_arguments(commands.add_parser("merge", help="combine the JSON reports of a run's shards into one verdict"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if _SHADOWED is not None:
        print(f"convspec: error: {_SHADOWED}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    try:
        if args.command == "check":
            import conformance.runner as runner

            return runner.run_from_args(args)
        if args.command == "merge":
            import conformance.merge as merge

            return merge.run_from_args(args)
        if args.command == "matrix":
            import conformance.matrix as matrix

            return matrix.run_from_args(args)
        import conformance.bench as bench

        return bench.run(args)
    except BackendLoadError as exc:
        if verbose:
            raise
        print(f"convspec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convspec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


if __name__ == "__main__":
    sys.exit(main())
