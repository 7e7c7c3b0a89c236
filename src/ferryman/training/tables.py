"""Tabular data for the tabular-classifier recipe: a CSV or Parquet file and a target column.

Every other column is a feature and must be numeric (integers, floats or booleans) with no
missing values; the target may hold any values, which become class labels in sorted order.
The fingerprint is the sha256 of the file's bytes plus the target and split settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pyarrow import csv, parquet

from ferryman.errors import InvalidInput

MAX_FILE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class TabularData:
    features: npt.NDArray[np.float32]
    targets: npt.NDArray[np.int64]
    feature_names: tuple[str, ...]
    labels: tuple[str, ...]
    fingerprint: str


def read_table(path: Path, target: str, split_settings: str) -> TabularData:
    """Features and encoded targets of the table at ``path`` (``.csv`` or ``.parquet``)."""
    table = _load(path)
    if target not in table.column_names:
        raise InvalidInput(
            f"target column {target!r} is not in {path.name}; its columns are "
            f"{', '.join(table.column_names)}"
        )
    names = tuple(name for name in table.column_names if name != target)
    if not names:
        raise InvalidInput(f"{path.name} has no feature columns besides the target {target!r}")
    features = np.stack([_numeric(table.column(name), name) for name in names], axis=1)
    if table.column(target).null_count:
        missing = table.column(target).null_count
        raise InvalidInput(f"target {target!r} has {missing} missing values; drop those rows")
    raw_targets = table.column(target).to_numpy(zero_copy_only=False)
    classes, codes = np.unique(raw_targets.astype(str), return_inverse=True)
    if len(classes) < 2:
        raise InvalidInput(f"target {target!r} has {len(classes)} distinct value; need at least 2")
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"target={target};{split_settings}".encode())
    return TabularData(
        features=features.astype(np.float32),
        targets=codes.astype(np.int64),
        feature_names=names,
        labels=tuple(str(label) for label in classes),
        fingerprint=f"sha256-{digest.hexdigest()}",
    )


def _load(path: Path) -> pa.Table:
    if not path.is_file():
        raise InvalidInput(f"data file {str(path)!r} does not exist or is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_FILE_BYTES} bytes; sample it first")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return csv.read_csv(path)
        if suffix in {".parquet", ".pq"}:
            return parquet.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    raise InvalidInput(f"data file {path.name!r} is not .csv or .parquet; convert it to one")


def _numeric(column: Any, name: str) -> npt.NDArray[np.float32]:
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise InvalidInput(
            f"feature column {name!r} holds {kind}, not numbers; encode it as numbers or drop it"
        )
    if column.null_count:
        raise InvalidInput(
            f"feature column {name!r} has {column.null_count} missing values; fill or drop them"
        )
    values: npt.NDArray[np.float32] = column.to_numpy(zero_copy_only=False).astype(np.float32)
    return values
