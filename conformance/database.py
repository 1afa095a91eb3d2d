"""Saving failing examples and replaying them first: Hypothesis's example database.

When a rule fails, Hypothesis saves the minimal failing example in the
database; the next run of the same rule on the same backend, operation and
dtype replays it before generating anything new, so a bug found once is found
again at once, and a fix is confirmed on the very case that showed the bug.
An example that no longer fails is dropped from the database by Hypothesis.

Examples are keyed by backend target x rule x operation x dtype (not by
seed: a failure found with one seed is replayed with every seed). The
default directory is ``.convspec/examples`` under the working directory
(``CONVSPEC_DATABASE`` in the environment changes the default). Any of
Hypothesis's database classes works through :func:`conformance.runner.run`'s
``database=``, e.g. ``GitHubArtifactDatabase`` to replay what CI found.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

#: Where failing examples are kept unless ``--database DIR`` or ``CONVSPEC_DATABASE`` says otherwise.
DEFAULT_DIRECTORY = ".convspec/examples"
ENVIRONMENT_VARIABLE = "CONVSPEC_DATABASE"


def default_directory() -> str:
    return os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_DIRECTORY


def example_key(target: str, rule: str, op: str, dtype: str) -> bytes:
    """The database key of one rule x operation x dtype of one backend.

    >>> example_key("mykernels", "forward-values", "conv", "float32")
    b'convspec/mykernels/forward-values/conv/float32'
    """
    return f"convspec/{target}/{rule}/{op}/{dtype}".encode()


def use_key(test: Any, key: bytes) -> None:
    """Make the Hypothesis test ``test`` (made by ``@given``) save and replay under ``key``.

    Hypothesis derives a test's key from its source, which is the same for
    every rule here; this is the attribute its own ``find()`` sets for the
    same purpose. tests/test_database.py checks that the key is used.
    """
    test._hypothesis_internal_database_key = key


def open_database(directory: str | os.PathLike[str] | None) -> ExampleDatabase | None:
    """The database in ``directory`` (created when first written), or None for no database."""
    if directory is None:
        return None
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--database {str(directory)!r} is a file, not a directory")
    return DirectoryBasedExampleDatabase(path)


def saved_keys(database: ExampleDatabase, keys: list[bytes]) -> dict[bytes, int]:
    """How many examples are saved under each of ``keys`` (for reports and tests)."""
    return {key: len(list(database.fetch(key))) for key in keys}
