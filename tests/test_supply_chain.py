"""RELIABILITY S9: calls that load code or run a shell are banned from the package.

Each allowed exception is listed with its reason; a new use anywhere else fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import ferryman

PACKAGE = Path(ferryman.__file__).parent

BANNED = {
    "pickle load": re.compile(r"\b(c?pickle|joblib|dill|cloudpickle)\.loads?\("),
    "torch.load": re.compile(r"\btorch\.load\("),
    "unsafe yaml": re.compile(r"\byaml\.(load|unsafe_load)\("),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\("),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "TLS verification off": re.compile(r"verify\s*=\s*False"),
}

# (file relative to the package, rule) -> why it is allowed.
ALLOWED = {
    ("export/conversion.py", "pickle load"): (
        "`ferryman register model.pkl --trust`: the user's explicit, audited conversion of a "
        "scikit-learn pickle to ONNX; the pickle is never stored or served"
    ),
}


def test_no_banned_calls_outside_the_allow_list() -> None:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for rule, pattern in BANNED.items():
            if pattern.search(text):
                found.add((path.relative_to(PACKAGE).as_posix(), rule))
    unexpected = found - ALLOWED.keys()
    assert not unexpected, f"banned calls in the package: {sorted(unexpected)}"


def test_torch_load_is_always_weights_only() -> None:
    for path in PACKAGE.rglob("*.py"):
        for line in path.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path.name}: {line.strip()}"
