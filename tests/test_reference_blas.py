"""reference.blas: the reference's matrix products run on the BLAS thread count it asks for, and give it back."""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl

import reference
from reference import blas


def _numpy_blas_threads() -> int:
    pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    assert pools, "no BLAS library found by threadpoolctl"
    return int(pools[0]["num_threads"])


def _threads_inside_a_reference_call(monkeypatch: pytest.MonkeyPatch) -> int:
    seen: list[int] = []
    real_matmul = np.matmul

    def spying_matmul(*args: object, **kwargs: object) -> object:
        seen.append(_numpy_blas_threads())
        return real_matmul(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(np, "matmul", spying_matmul)
    x, w = np.ones((2, 3, 6, 6)), np.ones((4, 3, 3, 3))
    reference.conv_forward(x, w, None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1)
    monkeypatch.undo()
    assert seen, "conv_forward made no matmul call"
    return seen[0]


def test_one_thread_by_default_and_the_setting_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(blas.THREADS_VARIABLE, raising=False)
    before = _numpy_blas_threads()
    assert _threads_inside_a_reference_call(monkeypatch) == 1
    assert _numpy_blas_threads() == before


def test_the_variable_sets_the_count_or_leaves_the_library_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    with threadpoolctl.threadpool_limits(3, user_api="blas"):
        monkeypatch.setenv(blas.THREADS_VARIABLE, "2")
        assert _threads_inside_a_reference_call(monkeypatch) == 2
        monkeypatch.setenv(blas.THREADS_VARIABLE, "default")
        assert _threads_inside_a_reference_call(monkeypatch) == 3
        assert _numpy_blas_threads() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_value_names_the_variable(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(blas.THREADS_VARIABLE, value)
    with pytest.raises(ValueError, match=blas.THREADS_VARIABLE):
        blas.requested_threads()


def test_linear_runs_under_the_limit_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(blas.THREADS_VARIABLE, raising=False)
    seen: list[int] = []

    class Spy(np.ndarray):  # type: ignore[type-arg]
        def __matmul__(self, other: object) -> object:
            seen.append(_numpy_blas_threads())
            return np.asarray(self) @ other

    x = np.ones((2, 3)).view(Spy)
    y = reference.linear_forward(x, np.ones((4, 3)), None)
    assert seen == [1] and y.shape == (2, 4)
