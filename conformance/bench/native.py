"""Framework baselines on their own path: ``convspec bench BACKEND --against torch-native``.

The protocol adapter of a framework (:mod:`conformance.backends.torch_backend`)
copies NumPy arrays in and out of every call, and its backward re-runs the forward
under autograd, because a protocol backward call gets only x, w and dy. A network
does neither: its tensors live in the framework, one forward records the graph and
one backward uses it. This module times that native path, so that a backend can be
compared with what the framework itself costs; ``convspec bench torch --against
torch-native`` then measures the adapter's own overhead.

Modes of the native path: ``forward`` runs without autograd; ``backward`` is
autograd's backward alone, from the graph of one forward recorded before timing
(what the framework spends on a backward pass); ``fwd+bwd`` is one forward with
autograd and one backward. Padding, ceil mode and the other parameters are
translated to the framework's calls exactly as the adapter translates them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.bench.measuring import Call, Inputs, call_kwargs
from conformance.bench_shapes import Mode, Problem
from spec import OPERATIONS

#: ``--against`` names of native baselines, and the adapter whose capabilities they share.
NATIVE_BASELINES: dict[str, str] = {"torch-native": "torch"}


def torch_native_calls(problem: Problem, inputs: Inputs) -> dict[Mode, Call]:
    """Zero-argument calls of PyTorch's own path for ``problem`` (tensors made once, before timing)."""
    import torch
    import torch.nn.functional as F

    from conformance.backends import torch_backend as adapter

    kwargs = call_kwargs(problem)
    x = torch.from_numpy(inputs.x)
    w = None if inputs.w is None else torch.from_numpy(inputs.w)
    b = None if inputs.b is None else torch.from_numpy(inputs.b)
    dy = torch.from_numpy(inputs.dy)
    native: dict[str, Callable[..., Any]] = {
        "linear": lambda xt, wt, bt: F.linear(xt, wt, bt),
        "conv": lambda xt, wt, bt: adapter._conv(xt, wt, bt, kwargs["stride"], kwargs["padding"], kwargs["dilation"],
                                                 kwargs["groups"]),
        "conv_transpose": lambda xt, wt, bt: adapter._conv_transpose(
            xt, wt, bt, kwargs["stride"], kwargs["padding"], kwargs["output_padding"], kwargs["dilation"],
            kwargs["groups"]),
        "max_pool": lambda xt, wt, bt: adapter._max_pool(xt, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"],
                                                         kwargs["dilation"], kwargs["ceil_mode"])[0],  # (y, None)
        "max_pool_indices": lambda xt, wt, bt: adapter._max_pool(
            xt, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"], kwargs["dilation"], kwargs["ceil_mode"],
            indices=True)[1],  # PyTorch's own indices (counted in the plane it pooled: the padded one if emulated)
        "avg_pool": lambda xt, wt, bt: adapter._avg_pool(xt, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"],
                                                         kwargs["dilation"], kwargs["ceil_mode"],
                                                         kwargs["count_include_pad"]),
        "adaptive_avg_pool": lambda xt, wt, bt: adapter._spatial_op(adapter._ADAPTIVE_AVG, xt)(xt, kwargs["output_size"]),
        "adaptive_max_pool": lambda xt, wt, bt: adapter._spatial_op(adapter._ADAPTIVE_MAX, xt)(xt, kwargs["output_size"]),
    }
    run = native[problem.op]

    def leaves() -> list[Any]:
        return [t.detach().requires_grad_(True) if t is not None else None for t in (x, w, b)]

    def forward() -> object:
        with torch.no_grad():
            return run(x, w, b)

    if OPERATIONS[problem.op].backward is None:  # max-pool indices: nothing to differentiate
        return {"forward": forward}
    recorded = leaves()
    graph = run(*recorded)

    def backward() -> object:
        return torch.autograd.grad(graph, [t for t in recorded if t is not None], dy, retain_graph=True)

    def both() -> object:
        fresh = leaves()
        return torch.autograd.grad(run(*fresh), [t for t in fresh if t is not None], dy)

    return {"forward": forward, "backward": backward, "fwd+bwd": both}


NATIVE_CALLS: dict[str, Callable[[Problem, Inputs], dict[Mode, Call]]] = {"torch-native": torch_native_calls}
