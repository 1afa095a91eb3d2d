"""A complete convspec backend in ten lines: a NumPy linear layer (see the README)."""
import numpy as np

import spec

CAPABILITIES = spec.Capabilities(dtypes=frozenset({"float64", "float32"}))


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    spec.linear_output_shape(x, w, b)  # raises spec.SpecError on invalid shapes or dtypes
    return x @ w.T if b is None else x @ w.T + b


def linear_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spec.check_dy(dy, spec.linear_output_shape(x, w, None), x.dtype)
    return dy @ w, dy.T @ x, dy.sum(axis=0)
