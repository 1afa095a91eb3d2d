"""Splitting a run into shards: ``convspec check BACKEND --shard K/N``.

A run's plan is a list of rule x operation x dtype items, each with an
example budget. Shard K of N takes a fixed subset of those items: every item
is in exactly one shard, and which one depends only on the plan (the backend's
functions and capabilities, ``--ops``, ``--dtypes``, ``--profile``), never on
the machine or the order shards run in. Items are dealt out by example budget,
largest first, each to the shard with the smallest total so far, so the shards
do about the same number of examples.

Every item keeps its own seed (derived from ``--seed``, the rule, the
operation and the dtype), so a shard finds exactly what the same item finds
in an unsharded run; ``convspec merge`` puts the shards' reports back together
into the report of the whole run (:mod:`conformance.merge`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


class Planned(Protocol):
    """What sharding needs of a plan item (:class:`conformance.runner.PlanItem`)."""

    @property
    def rule(self) -> _HasId: ...
    @property
    def op(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def examples(self) -> int: ...


Item = TypeVar("Item", bound=Planned)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``.

    >>> Shard.parse("2/3")
    Shard(index=2, count=3)
    >>> str(Shard(1, 4))
    '1/4'
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: must be K/N with 1 <= K <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` as a shard; ValueError with one line naming the problem."""
        index, slash, count = text.partition("/")
        try:
            if not slash:
                raise ValueError
            k, n = int(index), int(count)
        except ValueError:
            raise ValueError(f"shard {text!r}: must be K/N, e.g. 1/4") from None
        return cls(k, n)

    def select(self, items: Sequence[Item]) -> list[Item]:
        """This shard's items, in plan order."""
        return [item for item, owner in zip(items, assign(items, self.count)) if owner == self.index]


def assign(items: Sequence[Planned], count: int) -> list[int]:
    """The shard (1-based) of each item: largest example budget first, to the least-loaded shard.

    Ties are broken by the item's rule, operation and dtype and by the lower
    shard number, so the assignment is a function of the plan alone.

    >>> from types import SimpleNamespace as NS
    >>> plan = [NS(rule=NS(id=r), op="conv", dtype="float64", examples=e) for r, e in [("a", 8), ("b", 4), ("c", 4)]]
    >>> assign(plan, 2)
    [1, 2, 2]
    """
    load = [0] * count
    owner = [0] * len(items)
    order = sorted(range(len(items)), key=lambda i: (-items[i].examples, items[i].rule.id, items[i].op, items[i].dtype))
    for i in order:
        shard = min(range(count), key=lambda s: (load[s], s))
        load[shard] += items[i].examples
        owner[i] = shard + 1
    return owner


def shard_argument(text: str) -> Shard:
    """An argparse type for ``--shard K/N``."""
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
