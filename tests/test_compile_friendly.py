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

import reference
import spec
from conformance.cache import CACHE_DIR_ENV, NO_CACHE_ENV, cache_dir
from conformance.cli import main
from conformance.context import shape_signature
from conformance.loader import LoadedBackend
from conformance.report import render_text
from conformance.runner import run
from conformance.shape_pool import POOL_SIZES, pool_settings, pooled
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
    assert len(set(described)) == len(pool) == 8, f"len(pool)={len(pool)} with duplicates {described}, but should be 8"
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
