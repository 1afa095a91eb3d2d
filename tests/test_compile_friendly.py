"""Compile-friendly generation (``Capabilities.compiles_per_shape``) and the compilation cache.

1. The shape pools: deterministic per seed, valid, inside the declared capabilities, minimal first,
   smallest first, and covering every declared rank in both size classes.
2. A backend that compiles per shape is called on few shape signatures: far fewer than with
   ordinary generation, while the number of examples stays the same.
3. The calibration bank, each backend wrapped as a jit-compiled backend would look to the suite
   (``compiles_per_shape`` declared; every function "compiles" on its first call of a shape
   signature), is still caught 100%, by the rules expected to catch each bug.
4. The cache directory, ``--no-cache``, and JAX writing its persistent compilation cache there.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

import reference
import spec
from conformance.cache import CACHE_DIR_ENV, NO_CACHE_ENV, cache_dir
from conformance.cli import main
from conformance.context import shape_signature
from conformance.loader import LoadedBackend
from conformance.report import render_text
from conformance.rules import RULES
from conformance.rules.large import large_problems
from conformance.runner import run
from conformance.shape_pool import POOL_SIZES, _select, derived, features, pool_settings, pooled, rotation
from conformance.strategies import Choices, Problem
from tests.broken.bank import BANK, assert_caught

COMPILING = replace(reference.CAPABILITIES, compiles_per_shape=True)


def loaded(name: str, obj: object) -> LoadedBackend:
    return LoadedBackend(name, f"tests ({name})", obj, spec.supported_functions(obj), spec.capabilities_of(obj))


class Compiled:
    """A backend's functions as a jit-compiling framework runs them: a "compilation" per new shape signature.

    The functions are the same, so every bug stays; what changes is how the suite generates for it.
    """

    def __init__(self, obj: object) -> None:
        self.capabilities = replace(spec.capabilities_of(obj), compiles_per_shape=True)
        self.compiled: dict[str, set[str]] = {}
        for name, fn in spec.supported_functions(obj).items():
            setattr(self, name, self._jit(name, fn))

    def _jit(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.compiled.setdefault(name, set()).add(shape_signature(name, list(args), kwargs))
            return fn(*args, **kwargs)

        return call

    @property
    def compilations(self) -> int:
        return sum(len(s) for s in self.compiled.values())


# --------------------------------------------------------------------------- the pools

@pytest.mark.parametrize("op", list(spec.OPERATIONS))
def test_pools_are_valid_deterministic_and_cover_every_rank(op: spec.OpName) -> None:
    with pool_settings(seed=3, size=8):
        pool = pooled(op, COMPILING, "float32", {})
        again = pooled(op, COMPILING, "float32", {})
    with pool_settings(seed=4, size=8):
        other = pooled(op, COMPILING, "float32", {})
    described = [p.describe() for p in pool]
    assert described == [p.describe() for p in again], "the same seed must give the same pool"
    assert described != [p.describe() for p in other], "another seed must give another pool"
    assert len(set(described)) == len(pool), f"duplicates in {described}"
    # Eight, or as few as four once every edge case the candidates have is covered (a linear layer's few).
    assert 4 <= len(pool) <= 8, f"len(pool)={len(pool)}, but should be 4 to 8"
    sizes = [math.prod(p.x_shape) + math.prod(p.w_shape or ()) for p in pool]
    assert sizes == sorted(sizes), f"pool sizes {sizes} should be sorted, so that shrinking moves to small shapes"
    assert all(n == 1 for n in pool[0].x_shape), f"pool[0].x_shape={pool[0].x_shape}, but the first entry is all ones"
    for problem in pool:
        assert problem.dtype == "float32" and problem.x_shape[0] >= 1, problem.describe()
        problem.output_shape()  # raises spec.SpecError on an invalid problem
    if spec.OPERATIONS[op].windowing != "none":
        assert {p.spatial_rank for p in pool} == {1, 2, 3}, [p.describe() for p in pool]
        widest = max(max(p.x_shape[2:]) for p in pool)
        assert widest > 6, f"no pooled shape reaches the large size class (widest spatial size {widest})"


def test_pools_stay_inside_narrowed_capabilities() -> None:
    caps = spec.Capabilities(spatial_ranks=frozenset({2}), dilation=False, groups=False, asymmetric_padding=False,
                             ceil_mode=False, compiles_per_shape=True, count_include_pad=frozenset({True}))
    with pool_settings(seed=0, size=12):
        convs = pooled("conv", caps, "float64", {})
        pools = pooled("avg_pool", caps, "float64", {})
    for p in convs:
        assert p.spatial_rank == 2 and p.params["groups"] == 1 and set(p.params["dilation"]) == {1}, p.describe()
        assert all(lo == hi for lo, hi in p.params["padding"]), p.describe()
    for p in pools:
        assert p.params["ceil_mode"] is False and p.params["count_include_pad"] is True, p.describe()


#: The edge cases every ci pool covers, in every seed (names of :func:`conformance.shape_pool.features`).
EDGE_CASES: dict[str, set[str]] = {
    "kernel": {"kernel>1", "stride>1", "dilation>1", "pad-before", "pad-after", "asymmetric", "one-output",
               "stride>kernel", "overlap", "wide", "near-block", "prime", "empty-window"},
    "weights": {"groups>1", "groups of several channels", "bias", "batch>1"},
    "pooling": {"ceil-window", "channels>1", "batch>1"},
    "linear": {"square", "bias", "batch>1"},
}


@pytest.mark.parametrize("op", ["conv", "conv_transpose", "max_pool", "avg_pool", "linear"])
def test_ci_pools_cover_the_edge_cases_they_promise(op: spec.OpName) -> None:
    """Ones (entry 0), primes, sizes next to a block, windows entirely in padding, ... in every seed and dtype."""
    record = spec.OPERATIONS[op]
    promised = EDGE_CASES["linear"] if record.windowing == "none" else EDGE_CASES["kernel"] | (
        EDGE_CASES["weights"] if record.has_weights else EDGE_CASES["pooling"])
    for seed in range(3):
        for dtype in ("float64", "float32"):
            with pool_settings(seed=seed, size=POOL_SIZES["ci"]):
                pool = pooled(op, COMPILING, dtype, {})
            covered = set().union(*(features(p) for p in pool))
            names = {f[0] for f in covered}
            missing = promised - names
            if record.windowing == "none":
                missing |= {f"width {w}" for w in ("block", "prime") if ("width", w) not in covered}
                missing |= set() if names & {"wide", "narrow"} else {"non-square"}
            else:
                missing |= {f"rank {r}" for r in (1, 2, 3) if ("rank", r) not in covered}
            assert not missing, f"seed {seed} {dtype}: the {op} pool misses {sorted(missing)}"
            assert all(n == 1 for n in pool[0].x_shape), f"seed {seed}: pool[0].x_shape={pool[0].x_shape}, not all ones"


def test_a_pool_stops_growing_once_nothing_new_is_covered() -> None:
    square = [Problem("linear", "float64", (1, n), (n, n), False, {}) for n in (1, 2, 3, 5, 6, 7)]
    wide = Problem("linear", "float64", (2, 8), (9, 8), True, {})
    picked = _select([*square, wide], 8)
    assert len(picked) == 4, f"{len(picked)} problems: after four, the squares without a bias add nothing"
    assert wide in picked and square[0] == picked[0], [p.describe() for p in picked]
    assert len(_select([*square, wide], 3)) == 3, "the size still bounds the pool"
    assert len(_select([*square, wide], 32)) == 7, "a thorough pool (32) keeps growing: variety for its own sake"


def test_a_part_of_the_pool_keeps_the_minimal_problem_and_the_most_edge_cases() -> None:
    with pool_settings(seed=0, size=POOL_SIZES["ci"]):
        pool = pooled("conv", COMPILING, "float64", {})
        part = pooled("conv", COMPILING, "float64", {}, few=4)
        half = pooled("conv", COMPILING, "float64", {}, few=2)
    described = [p.describe() for p in pool]
    assert len(part) == max(2, len(pool) // 4) and len(half) == len(pool) // 2, (len(part), len(half))
    assert {p.describe() for p in half} <= set(described) and part[0].describe() == described[0]
    richest = max(pool[1:], key=lambda p: len(features(p)))
    assert len(features(part[1])) == len(features(richest)), "the second problem should cover the most edge cases"


def test_derived_problems_are_one_per_pooled_problem_and_seeded() -> None:
    def shorter(choose: Choices, problem: Problem, slot: int | None) -> Problem:
        n = choose.integer(1, problem.x_shape[2])
        return replace(problem, x_shape=(*problem.x_shape[:2], n, *problem.x_shape[3:]))

    with pool_settings(seed=0, size=POOL_SIZES["ci"]):
        base = pooled("max_pool", COMPILING, "float64", {})
        first, again = derived("shorter", base, shorter), derived("shorter", base, shorter)
    with pool_settings(seed=1, size=POOL_SIZES["ci"]):
        other = derived("shorter", base, shorter)
    assert [p.describe() for p in first] == [p.describe() for p in again], "the same seed must derive the same shapes"
    assert [p.describe() for p in first] != [p.describe() for p in other], "another seed must derive others"
    assert [p.x_shape[3:] for p in first] == [p.x_shape[3:] for p in base]
    assert all(1 <= d.x_shape[2] <= b.x_shape[2] for d, b in zip(first, base)), [p.describe() for p in first]


@pytest.mark.parametrize("rule_id", ["ceil-mode", "empty-windows", "empty-batch", "invalid-params", "large-shapes"])
def test_rules_that_build_their_own_shapes_call_few_of_them(rule_id: str) -> None:
    """Each such shape is a compilation: they come from a part of the pool, derived once per pooled problem."""
    rule_ = next(r for r in RULES if r.id == rule_id)
    op: spec.OpName = "avg_pool" if "avg_pool" in rule_.ops else "conv"
    drawn: list[Any] = []
    with pool_settings(seed=0, size=POOL_SIZES["ci"]):
        base = pooled(op, COMPILING, "float64", {})

        @settings(max_examples=40, database=None, derandomize=True, deadline=None)
        @given(rule_.strategy(op, COMPILING, "float64"))
        def draw(example: Any) -> None:
            drawn.append(example)

        draw()
    cases = [d[0] if isinstance(d, tuple) else d for d in drawn]
    assert len(cases) >= 2, f"only {len(cases)} examples drawn"
    shapes = {c.problem.describe() for c in cases}
    assert len(shapes) <= len(base) // 2, f"{rule_id}: {len(shapes)} shapes in 40 draws, but at most {len(base) // 2}"
    if rule_id == "empty-windows":
        assert all(("empty-window",) in features(c.problem) for c in cases), "every case needs a window in padding"
    if rule_id == "ceil-mode":
        params = [c.problem.params for c in cases]
        short = [c for c, p in zip(cases, params) if c.problem.x_shape[2] < p["dilation"][0] * (p["kernel_size"][0] - 1) + 1]
        assert short and len(short) < len(cases), "ceil mode needs both dimensions shorter than the kernel and others"
    if rule_id == "empty-batch":
        assert all(c.problem.x_shape[0] == 0 for c in cases)


def test_large_shapes_rotate_with_the_seed_and_dtype() -> None:
    everything = {p.describe().split(" ", 2)[2] for p in large_problems("conv", COMPILING, "float64")}
    seen: set[str] = set()
    for seed in range(len(everything)):
        with pool_settings(seed=seed, size=POOL_SIZES["ci"]):
            picked = rotation(large_problems("conv", COMPILING, "float64"), "conv/float64")
        assert len(picked) == 1, f"ci takes one large problem per operation and dtype, not {len(picked)}"
        seen |= {p.describe().split(" ", 2)[2] for p in picked}
    assert seen == everything, f"seeds 0-{len(everything) - 1} should cover every large problem, covered {len(seen)}"


def test_narrowed_strategies_get_their_own_pools() -> None:
    with pool_settings(seed=0, size=POOL_SIZES["ci"]):
        single = pooled("conv", COMPILING, "float64", {"rank": 2, "single_channel": True, "max_batch": 1})
        ceil = pooled("max_pool", COMPILING, "float64", {"ceil_mode": True})
    assert all(p.x_shape[:2] == (1, 1) and p.spatial_rank == 2 for p in single), [p.describe() for p in single]
    assert all(p.params["ceil_mode"] for p in ceil), [p.describe() for p in ceil]
    assert len(single) == len(ceil) == POOL_SIZES["ci"] // 2, "a narrowed variant's pool is half the size"


# --------------------------------------------------------------------------- few compilations

def test_a_compiling_backend_is_called_on_few_shape_signatures() -> None:
    eager, compiled = Compiled(reference), Compiled(reference)
    eager.capabilities = reference.CAPABILITIES  # the same wrapper, ordinary generation
    reports = [run(loaded(name, obj), ops=("conv",), dtypes=("float64",), profile="ci", seed=1)
               for name, obj in (("eager", eager), ("compiled", compiled))]
    assert all(r.conformant for r in reports), "\n".join(render_text(r) for r in reports)
    examples = [sum(r.examples for r in report.results) for report in reports]
    assert examples[1] >= 0.9 * examples[0], f"examples {examples}: pooling must not cut the examples"
    assert compiled.compilations * 3 < eager.compilations, (
        f"{compiled.compilations} shape signatures with pools, {eager.compilations} without: pools should cut them 3x")
    first_calls = sum(r.first_calls for r in reports[1].results)
    assert first_calls == compiled.compilations, f"reported {first_calls} first calls, counted {compiled.compilations}"
    assert "calls of a new shape signature took" in render_text(reports[1])


# --------------------------------------------------------------------------- the bank, compiled

@pytest.mark.parametrize("name", sorted(BANK))
def test_broken_backend_is_caught_when_compiled_per_shape(name: str) -> None:
    entry = BANK[name]
    backend = Compiled(entry.obj)
    report = run(loaded(name, backend), ops=entry.ops, dtypes=entry.dtypes, profile="ci", seed=0, fail_fast=True)
    assert report.compiles_per_shape
    assert_caught(entry, report, "with pooled shapes")


# --------------------------------------------------------------------------- the compilation cache

def test_cache_directory_follows_xdg_and_the_switches(tmp_path: Path) -> None:
    assert cache_dir("jax", {"HOME": "/h"}) == Path.home() / ".cache" / "convspec" / "jax"
    assert cache_dir("jax", {"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "convspec" / "jax"
    assert cache_dir("jax", {CACHE_DIR_ENV: str(tmp_path), "XDG_CACHE_HOME": "/x"}) == tmp_path / "jax"
    assert cache_dir("jax", {NO_CACHE_ENV: "1", CACHE_DIR_ENV: str(tmp_path)}) is None
    assert cache_dir("jax", {NO_CACHE_ENV: "0"}) is not None


def test_no_cache_option_reaches_the_backend(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    code = main(["check", "reference", "--no-cache", "--profile", "quick", "--ops", "linear", "--dtypes", "float64",
                 "--isolation", "none"])
    assert code == 0, capsys.readouterr().out
    assert os.environ.get(NO_CACHE_ENV) == "1", "--no-cache must set CONVSPEC_NO_CACHE for the backend and its worker"


JAX_PROGRAM = """
import numpy as np, jax
from conformance.backends import jax_backend
print(jax.config.jax_compilation_cache_dir)
jax_backend.conv_forward(np.ones((1, 1, 5)), np.ones((1, 1, 2)), None, stride=(1,), padding=((0, 0),), dilation=(1,),
                         groups=1)
"""


@pytest.mark.parametrize("disabled", [False, True], ids=["cache", "no-cache"])
def test_jax_keeps_compiled_kernels_in_the_cache_directory(tmp_path: Path, disabled: bool) -> None:
    pytest.importorskip("jax")
    env = {**os.environ, CACHE_DIR_ENV: str(tmp_path)}
    env.pop(NO_CACHE_ENV, None)
    if disabled:
        env[NO_CACHE_ENV] = "1"
    out = subprocess.run([sys.executable, "-c", JAX_PROGRAM], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    entries = list((tmp_path / "jax").glob("*")) if (tmp_path / "jax").exists() else []
    if disabled:
        assert out.stdout.strip() in ("None", ""), f"cache dir {out.stdout.strip()!r}, but --no-cache should leave it unset"
        assert not entries, f"{len(entries)} cache entries written with the cache disabled"
    else:
        assert out.stdout.strip() == str(tmp_path / "jax"), out.stdout
        assert entries, "JAX wrote no compiled kernel to the cache directory"


def test_simulated_compilation_counts_shapes_not_values() -> None:
    backend = Compiled(reference)
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 2))
    kwargs: dict[str, Any] = {"stride": (1,), "padding": ((0, 0),), "dilation": (1,), "groups": 1}
    backend.conv_forward(x, w, None, **kwargs)
    backend.conv_forward(2 * x, -w, None, **kwargs)
    assert backend.compilations == 1, f"{backend.compilations} compilations for one shape signature, but should be 1"
    backend.conv_forward(np.ones((1, 1, 6)), w, None, **kwargs)
    assert backend.compilations == 2, f"{backend.compilations} compilations for two shape signatures, but should be 2"


def test_pools_work_with_capabilities_that_are_not_hashable() -> None:
    caps = spec.Capabilities(accumulation={"float16": "float16"}, compiles_per_shape=True)  # holds a dict
    with pool_settings(seed=0, size=4):
        first, again = pooled("linear", caps, "float16", {}), pooled("linear", caps, "float16", {})
    assert len(first) == 4 and [p.describe() for p in first] == [p.describe() for p in again]
