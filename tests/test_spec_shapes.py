"""spec.shapes: output sizes against a brute-force window walk, padding resolution, tuple normalisation."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spec
from spec.shapes import normalize_tuple, output_size, resolve_padding, same_padding

FAST = settings(max_examples=300, deadline=None, database=None)


def window_starts(n: int, k: int, *, stride: int, padding: tuple[int, int], dilation: int, ceil_mode: bool) -> list[int]:
    """Start of every window, in padded coordinates, by walking the padded input one stride at a time.

    Floor mode keeps the windows that fit inside the padded input. Ceil mode adds one more window when the
    fitting ones leave elements of the padded input uncovered and it starts before ``n + p_before``
    (the documented rule, MAXPOOL-C5): never fewer windows than floor mode.
    """
    before, after = padding
    length = n + before + after
    extent = dilation * (k - 1) + 1
    # Floor mode: windows that fit. Ceil mode: starts below length - extent + stride (windows that
    # would fit in an input less than one stride longer), the extra one dropped if it starts at or
    # beyond n + p_before (MAXPOOL-C5).
    limit = length - extent + (stride if ceil_mode else 1)
    starts = list(range(0, max(limit, 0), stride))
    fitting = [s for s in starts if s + extent <= length]
    if len(starts) > len(fitting) and starts[-1] >= n + before:
        starts.pop()
    return starts


sizes = st.integers(0, 12)
kernels = st.integers(1, 5)
strides = st.integers(1, 4)
dilations = st.integers(1, 3)
pads = st.integers(0, 5)


@FAST
@given(n=sizes, k=kernels, s=strides, d=dilations, lo=pads, hi=pads, ceil_mode=st.booleans())
def test_output_size_counts_the_windows(n: int, k: int, s: int, d: int, lo: int, hi: int, ceil_mode: bool) -> None:
    expected = len(window_starts(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=ceil_mode))
    got = output_size(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=ceil_mode)
    assert got == expected, (
        f"output_size={got}, but should be {expected} [n={n}, k={k}, s={s}, d={d}, padding={(lo, hi)}, ceil_mode={ceil_mode}]"
    )


@FAST
@given(n=sizes, k=kernels, s=strides, d=dilations, lo=pads, hi=pads)
def test_floor_mode_windows_fit_in_the_padded_input(n: int, k: int, s: int, d: int, lo: int, hi: int) -> None:
    out = output_size(n, k, stride=s, padding=(lo, hi), dilation=d)
    extent = d * (k - 1) + 1
    if out > 0:
        assert (out - 1) * s + extent <= n + lo + hi, "the last floor-mode window overhangs the padded input"
    # and one more window would not fit
    assert out * s + extent > n + lo + hi or n + lo + hi < extent


@FAST
@given(n=st.integers(1, 12), k=kernels, s=strides, d=dilations, data=st.data())
def test_ceil_mode_adds_at_most_one_window_with_half_kernel_padding(
    n: int, k: int, s: int, d: int, data: st.DataObject
) -> None:
    half = (d * (k - 1) + 1) // 2
    lo, hi = data.draw(st.integers(0, half)), data.draw(st.integers(0, half))
    floor = output_size(n, k, stride=s, padding=(lo, hi), dilation=d)
    ceil = output_size(n, k, stride=s, padding=(lo, hi), dilation=d, ceil_mode=True)
    assert floor <= ceil <= floor + 1, f"floor={floor}, ceil={ceil}"
    if ceil > 0:
        assert (ceil - 1) * s < n + lo, "a ceil-mode window starts in the after-padding"
    if floor > 0 and ceil == floor + 1:
        assert (ceil - 1) * s + d * (k - 1) + 1 > n + lo + hi, "the extra ceil-mode window should overhang"


@FAST
@given(n=st.integers(1, 30), k=kernels, s=strides, p=pads)
def test_textbook_formula(n: int, k: int, s: int, p: int) -> None:
    if n + 2 * p < k:
        assert output_size(n, k, stride=s, padding=(p, p)) == 0
    else:
        assert output_size(n, k, stride=s, padding=(p, p)) == (n - k + 2 * p) // s + 1


def test_worked_example() -> None:
    assert output_size(28, 4, stride=2) == 13
    assert 16 * 4 * 4 + 16 * 13 * 13 * 10 == 27296
    assert 28 * 28 * 100 + 100 * 10 == 79400


@pytest.mark.parametrize(
    ("n", "k", "s", "padding", "d", "floor", "ceil"),
    [
        (5, 2, 2, (0, 0), 1, 2, 3),      # DIVERGENCES: [1, 2, 3, 4, 5], k=2, s=2 -> 3 windows in ceil mode
        (5, 2, 2, (1, 1), 1, 3, 3),      # the 4th ceil window would start at n + p_before = 6: dropped
        (4, 3, 2, (1, 1), 1, 2, 3),      # the 3rd window overhangs the padded input by one
        (1, 1, 2, (0, 4), 1, 3, 3),      # large padding: the drop rule only ever removes the extra window
        (5, 3, 1, (0, 0), 3, 0, 0),      # dilated kernel 7 does not fit
        (6, 3, 3, (0, 0), 1, 2, 2),      # exact fit: ceil adds nothing
    ],
)
def test_output_size_cases(n: int, k: int, s: int, padding: tuple[int, int], d: int, floor: int, ceil: int) -> None:
    assert output_size(n, k, stride=s, padding=padding, dilation=d) == floor
    assert output_size(n, k, stride=s, padding=padding, dilation=d, ceil_mode=True) == ceil


@FAST
@given(n=st.integers(1, 40), k=kernels, s=strides, d=dilations, lower=st.booleans())
def test_same_padding_gives_ceil_n_over_s(n: int, k: int, s: int, d: int, lower: bool) -> None:
    before, after = same_padding(n, k, stride=s, dilation=d, lower=lower)
    assert before >= 0 and after >= 0
    total = max(0, (math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n)
    assert before + after == total
    assert output_size(n, k, stride=s, padding=(before, after), dilation=d) == math.ceil(n / s)
    assert output_size(n, k, stride=s, padding=(before, after), dilation=d, ceil_mode=True) == math.ceil(n / s)
    # the odd element goes at the end for "same", at the beginning for "same_lower"
    if lower:
        assert before - after in (0, 1)
    else:
        assert after - before in (0, 1)


def test_same_padding_extra_element_side() -> None:
    assert same_padding(6, 4) == (1, 2)
    assert same_padding(6, 4, lower=True) == (2, 1)
    assert same_padding(5, 3) == (1, 1)
    assert same_padding(5, 1, stride=3) == (0, 0)   # total clamps at 0


def test_resolve_padding_forms() -> None:
    spatial, kernel, ones = (6, 6), (3, 4), (1, 1)
    assert resolve_padding(2, spatial, kernel, ones, ones) == ((2, 2), (2, 2))
    assert resolve_padding((0, 3), spatial, kernel, ones, ones) == ((0, 0), (3, 3))
    assert resolve_padding([(0, 1), (2, 0)], spatial, kernel, ones, ones) == ((0, 1), (2, 0))
    from_json: Any = [[0, 1], [2, 0]]                      # lists work as pairs too
    assert resolve_padding(from_json, spatial, kernel, ones, ones) == ((0, 1), (2, 0))
    assert resolve_padding("valid", spatial, kernel, ones, ones) == ((0, 0), (0, 0))
    assert resolve_padding("same", spatial, kernel, ones, ones) == ((1, 1), (1, 2))
    assert resolve_padding("same_lower", spatial, kernel, ones, ones) == ((1, 1), (2, 1))
    assert resolve_padding("same", (7,), (3,), (2,), (1,)) == ((1, 1),)


@pytest.mark.parametrize(
    ("padding", "parameter"),
    [
        (-1, "padding"),
        ((1, -2), "padding[1]"),
        ([(0, 1), (-1, 0)], "padding[1][0]"),
        ([(0, 1), (1, -3)], "padding[1][1]"),
        ("full", "padding"),
        ("SAME", "padding"),
        ((1, 1, 1), "padding"),
        ([(0, 1)], "padding"),
        (True, "padding"),
        (1.5, "padding"),
        ([(0, 1, 2), (0, 0)], "padding[0]"),
        ([(0, 1.0), (0, 0)], "padding[0][1]"),
        ([None, (0, 0)], "padding[0]"),
    ],
)
def test_resolve_padding_errors_name_the_parameter(padding: object, parameter: str) -> None:
    with pytest.raises(spec.SpecError) as info:
        resolve_padding(padding, (6, 6), (3, 3), (1, 1), (1, 1))  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}=")


def test_normalize_tuple() -> None:
    assert normalize_tuple(3, 2, "stride", minimum=1) == (3, 3)
    assert normalize_tuple([1, 2, 3], 3, "stride", minimum=1) == (1, 2, 3)
    assert normalize_tuple((0, 0), 2, "padding", minimum=0) == (0, 0)


@pytest.mark.parametrize(
    ("value", "parameter", "requirement"),
    [
        (0, "stride", "must be >= 1"),
        ((1, 0), "stride[1]", "must be >= 1"),
        ((1, 2, 3), "stride", "one entry per spatial dim (2)"),
        ((1, 2.0), "stride[1]", "must be an int"),
        ((True, 1), "stride[0]", "must be an int"),
        (True, "stride", "must be an int or a sequence of ints"),
        ("11", "stride", "must be an int or a sequence of ints"),
        (2.0, "stride", "must be an int or a sequence of ints"),
    ],
)
def test_normalize_tuple_errors(value: object, parameter: str, requirement: str) -> None:
    with pytest.raises(spec.SpecError) as info:
        normalize_tuple(value, 2, "stride", minimum=1)  # type: ignore[arg-type]
    assert info.value.parameter == parameter
    assert requirement in str(info.value)
