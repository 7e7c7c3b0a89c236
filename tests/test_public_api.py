"""The public surface is explicit: what users import is listed and importable."""

from __future__ import annotations

import ferryman
from ferryman import errors


def test_all_is_exact_and_importable() -> None:
    assert sorted(ferryman.__all__) == [
        "AliasRecord",
        "Client",
        "EventRecord",
        "FerrymanError",
        "ModelRecord",
        "Signature",
        "TensorSpec",
        "VariantRecord",
        "VersionRecord",
        "__version__",
    ]
    for name in ferryman.__all__:
        assert getattr(ferryman, name) is not None


def test_every_error_carries_an_http_status() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.FerrymanError)
    ]
    assert len(classes) > 10
    for cls in classes:
        assert 400 <= cls.status_code <= 599, cls
