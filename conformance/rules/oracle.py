"""An independent oracle: 2-D single-channel convolution and its gradients from scipy.signal alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.signal
from hypothesis import strategies as st

from conformance.compare import as64, backward_bounds, compare, forward_bound
from conformance.context import Context
from conformance.rules.base import rule
from conformance.strategies import Case, cases
from spec import Capabilities, OpName


def _dilate(a: np.ndarray[Any, Any], factors: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Insert factor - 1 zeros between neighbours along each axis."""
    shape = tuple((n - 1) * f + 1 for n, f in zip(a.shape, factors))
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(None, None, f) for f in factors)] = a
    return out


def correlate2d_oracle(x: np.ndarray[Any, Any], w: np.ndarray[Any, Any], dy: np.ndarray[Any, Any],
                       params: dict[str, Any]) -> tuple[np.ndarray[Any, Any], ...]:
    """(y, dx, dw) of a 2-D single-channel convolution, from scipy.signal alone (float64, no bias).

    y  = correlate2d(x_padded, w_dilated, "valid") subsampled by the stride;
    dW = correlate2d(x_padded, dY zero-inserted by the stride, "valid") subsampled by the dilation;
    dX = convolve2d(dY zero-inserted by the stride, w_dilated, "full"), cropped to the input.
    """
    (lo0, hi0), (lo1, hi1) = params["padding"]
    s, d = params["stride"], params["dilation"]
    xp = np.pad(x, ((lo0, hi0), (lo1, hi1)))
    wd = _dilate(w, d)
    full = scipy.signal.correlate2d(xp, wd, mode="valid")
    y = full[::s[0], ::s[1]][: dy.shape[0], : dy.shape[1]]
    dyz = _dilate(dy, s)
    dw_full = scipy.signal.correlate2d(xp, dyz, mode="valid")
    dw = dw_full[::d[0], ::d[1]][: w.shape[0], : w.shape[1]]
    dxp = np.zeros_like(xp)
    conv = scipy.signal.convolve2d(dyz, wd, mode="full")
    dxp[: conv.shape[0], : conv.shape[1]] = conv[: xp.shape[0], : xp.shape[1]]
    dx = dxp[lo0: lo0 + x.shape[0], lo1: lo1 + x.shape[1]]
    return y, dx, dw


def _single_channel_2d(op: OpName, caps: Capabilities, dtype: str) -> st.SearchStrategy[Case]:
    return cases(op, caps, dtype, rank=2, single_channel=True, max_batch=1)


def check_correlate2d(ctx: Context, case: Case) -> None:
    p, i = case.problem, case.inputs
    if p.x_shape[0] == 0:
        return
    assert i.w is not None
    x, w, dy = (np.asarray(as64(a))[0, 0] for a in (i.x, i.w, i.dy))
    y_o, dx_o, dw_o = correlate2d_oracle(x, w, dy, p.params)
    if i.b is not None:
        y_o = y_o + float(i.b[0])
    accuracy = ctx.backend.capabilities
    y = ctx.forward("correlate2d", case)
    fb = forward_bound(case, accuracy)
    compare("correlate2d", "y", y, y_o[None, None], fb, case, [])
    if ctx.has("conv_backward"):
        grads = ctx.backward("correlate2d", case)
        bb = backward_bounds(case, accuracy)
        compare("correlate2d", "dx", grads["dx"], dx_o[None, None], bb["dx"], case, [])
        compare("correlate2d", "dw", grads["dw"], dw_o[None, None], bb["dw"], case, [])


CORRELATE2D = rule("correlate2d", "2-D single-channel conv and its gradients equal scipy.signal.correlate2d", ("conv",),
                   ("forward",), _single_channel_2d, check_correlate2d,
                   applies=lambda op, caps: None if 2 in caps.spatial_ranks else "backend has no 2-D convolution")
