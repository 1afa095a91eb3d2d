"""Two small pieces of text handling every command shares: writing a file atomically, reading a comma list.

Reports, the matrix, bench results, their plot and the cached matmul ceiling are all written through
:func:`replacing`, so that a reader (or a run killed half-way) never sees a half-written file. Every option that
takes a comma-separated list of names (``--ops``, ``--dtypes``, ``--shapes``, the pytest plugin's options) is
read by :func:`parse_choices`, so they all accept and reject the same spellings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed over ``path`` when the block succeeds, deleted when it fails.

    The directory is created if missing; the file gets the permissions ``open()`` would give it (from the umask),
    not ``mkstemp``'s 0600.

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with replacing(target) as temporary:
    ...     _ = temporary.write_text("done")
    ...     target.exists()
    False
    >>> target.read_text()
    'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    temporary = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`, flushed to disk before the rename."""
    with replacing(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def parse_choices(text: str, allowed: Sequence[str]) -> list[str]:
    """The names of a comma-separated list, each one of ``allowed``; blanks and repeats dropped, order kept.

    Raises ValueError with a one-line message (without the option's name, which the caller adds).

    >>> parse_choices(" float32, float64,,float32", ("float64", "float32"))
    ['float32', 'float64']
    >>> parse_choices("conv,pool", ("conv", "linear"))
    Traceback (most recent call last):
    ...
    ValueError: unknown 'pool' (choose from conv, linear)
    >>> parse_choices(" , ", ("conv", "linear"))
    Traceback (most recent call last):
    ...
    ValueError: empty list (choose from conv, linear)
    """
    values = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    choices = ", ".join(allowed)
    if not values:
        raise ValueError(f"empty list (choose from {choices})")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {', '.join(map(repr, bad))} (choose from {choices})")
    return values


__all__ = ["parse_choices", "replacing", "write_atomically"]
