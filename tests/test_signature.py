"""Signature compatibility: what a client of one version sends that another would refuse."""

from __future__ import annotations

import pytest

from ferryman.signature import Signature, TensorSpec, incompatibilities, incompatibility


def takes(*inputs: tuple[str, str, tuple[int, ...] | None]) -> Signature:
    specs = tuple(TensorSpec(name=n, datatype=d, shape=s) for n, d, s in inputs)
    return Signature(inputs=specs)


X = ("X", "FP32", (-1, 4))


@pytest.mark.parametrize(
    "candidate",
    [
        takes(X),
        takes(("X", "FP32", (8, 4))),  # a dynamic batch fits any fixed one
        takes(("X", "FP32", (-1, -1))),
        takes(("X", "FP32", None)),  # an open rank fits anything
    ],
)
def test_compatible_candidates(candidate: Signature) -> None:
    assert incompatibilities(takes(X), candidate) == ()
    assert incompatibility("iris", (3, takes(X)), (4, candidate), "serving") is None


@pytest.mark.parametrize(
    ("candidate", "problems"),
    [
        (takes(("features", "FP32", (-1, 4))),
         ("input 'X' is gone", "input 'features' is new and required")),
        (takes(("X", "FP64", (-1, 4))), ("input 'X' is FP64, not FP32",)),
        (takes(("X", "FP32", (-1, 5))), ("input 'X' has shape [-1,5], not [-1,4]",)),
        (takes(("X", "FP32", (-1, 4, 1))), ("input 'X' has shape [-1,4,1], not [-1,4]",)),
        (takes(X, ("mask", "BOOL", (-1,))), ("input 'mask' is new and required",)),
    ],
)  # fmt: skip
def test_incompatible_candidates_name_each_difference(
    candidate: Signature, problems: tuple[str, ...]
) -> None:
    assert incompatibilities(takes(X), candidate) == problems


def test_the_refusal_spells_out_both_signatures_and_what_clients_would_get() -> None:
    serving = takes(("features", "FP32", (-1, 4)))
    message = incompatibility("iris", (3, serving), (1, takes(X)), "serving")
    assert message == (
        "iris v1 takes 'X' FP32 [-1,4]; the serving version v3 takes 'features' FP32 [-1,4]: "
        "input 'features' is gone; input 'X' is new and required, so clients sending "
        "'features' would get 400"
    )
