"""spec.protocol: Capabilities validation, uncovered(), capabilities_of and supported_functions."""

from __future__ import annotations

import dataclasses
import types
from typing import Any

import numpy as np
import pytest

import reference
import spec
from spec import Capabilities, SpecError


def test_operations_and_function_names() -> None:
    """The protocol's names are the registry's: every function once, each operation's forward first."""
    expected = [name for record in spec.OPERATIONS.values() for name in (record.forward, record.backward) if name]
    assert list(spec.FUNCTION_NAMES) == expected and len(set(expected)) == len(expected)
    for op, record in spec.OPERATIONS.items():
        assert record.name == op and record.forward.startswith(op)
        assert record.backward is None or record.backward == f"{op}_backward"


def test_default_capabilities_cover_everything() -> None:
    caps = Capabilities()
    assert caps.uncovered() == []
    assert caps.dtypes == frozenset(spec.DTYPES)
    assert caps.spatial_ranks == frozenset(spec.SPATIAL_RANKS)
    assert caps.count_include_pad == frozenset({True, False})
    assert caps.accuracy == "direct"          # the strict class unless a fast algorithm declares itself
    assert caps.accumulation == {} and caps.accumulation_for("float16") == "float32"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"dtypes": frozenset({"float32"})}, ["dtypes: bfloat16, float16, float64"]),
        ({"spatial_ranks": frozenset({2})}, ["spatial_ranks: 1, 3"]),
        ({"dilation": False}, ["dilation"]),
        ({"groups": False}, ["groups"]),
        ({"asymmetric_padding": False}, ["asymmetric_padding", "asymmetric_pool_padding"]),
        ({"asymmetric_pool_padding": False}, ["asymmetric_pool_padding"]),
        ({"asymmetric_padding": False, "asymmetric_pool_padding": True}, ["asymmetric_padding"]),
        ({"dtypes": ["float32"], "spatial_ranks": (2,)}, ["dtypes: bfloat16, float16, float64", "spatial_ranks: 1, 3"]),
        ({"max_pool_dilation": False}, ["max_pool_dilation"]),
        ({"avg_pool_dilation": False}, ["avg_pool_dilation"]),
        ({"ceil_mode": False}, ["ceil_mode"]),
        ({"count_include_pad": frozenset({True})}, ["count_include_pad: False"]),
        ({"pool_padding": "half_kernel"}, ["pool_padding beyond half the kernel"]),
        ({"output_padding": False}, ["output_padding"]),
        ({"adaptive_output_size": "global"}, ["adaptive_output_size other than global (1)"]),
        ({"empty_batch": False}, ["empty_batch"]),
        ({"nonfinite": False}, ["nonfinite"]),
        ({"accuracy": "fast"}, []),
        ({"accumulation": {"float32": "float64"}}, []),
        ({"accumulation": {"bfloat16": "bfloat16"}},
         ["accumulation: bfloat16 summed in bfloat16 (reductions limited to K <= 22 terms)"]),
        ({"notes": ("uses oneDNN",)}, []),
        ({"groups": False, "ceil_mode": False}, ["groups", "ceil_mode"]),
    ],
)
def test_uncovered_names_each_narrowed_field(changes: dict[str, Any], expected: list[str]) -> None:
    assert Capabilities(**changes).uncovered() == expected


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"dtypes": frozenset({"float8", "float32"})}, "Capabilities.dtypes"),
        ({"accumulation": {"int8": "float32"}}, "Capabilities.accumulation"),
        ({"accumulation": {"float16": "tf32"}}, "Capabilities.accumulation['float16']"),
        ({"accumulation": "float16"}, "Capabilities.accumulation"),
        ({"dtypes": frozenset({"int32"})}, "Capabilities.dtypes"),
        ({"spatial_ranks": frozenset({0, 1})}, "Capabilities.spatial_ranks"),
        ({"spatial_ranks": frozenset({4})}, "Capabilities.spatial_ranks"),
        ({"pool_padding": "half"}, "Capabilities.pool_padding"),
        ({"adaptive_output_size": "divisible"}, "Capabilities.adaptive_output_size"),
        ({"output_padding": 1}, "Capabilities.output_padding"),
        ({"accuracy": "exact"}, "Capabilities.accuracy"),
        ({"dtypes": "float64"}, "Capabilities.dtypes"),  # a lone string, not a collection of names
        ({"spatial_ranks": 2}, "Capabilities.spatial_ranks"),
        ({"spatial_ranks": ["2"]}, "Capabilities.spatial_ranks"),
        ({"groups": "no"}, "Capabilities.groups"),
        ({"count_include_pad": [0.5]}, "Capabilities.count_include_pad"),
    ],
)
def test_invalid_capabilities_are_rejected(changes: dict[str, Any], parameter: str) -> None:
    with pytest.raises(SpecError) as info:
        Capabilities(**changes)
    assert info.value.parameter == parameter


def test_capabilities_are_frozen() -> None:
    caps = Capabilities()
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.ceil_mode = False  # type: ignore[misc]


def test_capabilities_of() -> None:
    narrowed = Capabilities(ceil_mode=False)
    module = types.ModuleType("fake_backend")
    module.CAPABILITIES = narrowed  # type: ignore[attr-defined]
    assert spec.capabilities_of(module) is narrowed

    class ObjectBackend:
        capabilities = Capabilities(groups=False)

    assert spec.capabilities_of(ObjectBackend()).uncovered() == ["groups"]
    assert spec.capabilities_of(object()) == Capabilities()
    assert spec.capabilities_of(reference) == reference.CAPABILITIES
    assert reference.CAPABILITIES.accuracy == "direct"


@pytest.mark.parametrize("declared", [{"dtypes": ["float32"]}, "float32", 1])
def test_capabilities_of_rejects_other_types(declared: object) -> None:
    backend = types.SimpleNamespace(CAPABILITIES=declared)
    with pytest.raises(SpecError) as info:
        spec.capabilities_of(backend)
    assert info.value.parameter == "backend.CAPABILITIES"


def test_supported_functions() -> None:
    def linear_forward(x: Any, w: Any, b: Any) -> Any:
        return x @ w.T

    backend = types.SimpleNamespace(linear_forward=linear_forward, conv_forward="not callable", helper=print)
    assert spec.supported_functions(backend) == {"linear_forward": linear_forward}
    assert spec.supported_functions(object()) == {}
    assert sorted(spec.supported_functions(reference)) == sorted(spec.FUNCTION_NAMES)


def test_reference_is_a_backend() -> None:
    """The reference follows the protocol: keyword parameters, fresh arrays of the input dtype."""
    backend: spec.Backend = reference
    x = np.ones((1, 1, 4), dtype=np.float32)
    y = backend.max_pool_forward(x, kernel_size=(2,), stride=(2,), padding=((0, 0),), dilation=(1,), ceil_mode=False)
    assert y.dtype == np.float32 and y.shape == (1, 1, 2)
