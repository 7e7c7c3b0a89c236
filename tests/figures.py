"""The catalogue's figures as a test measures them (RELIABILITY.md rows L1, L3, Z1, ...).

A test states each figure it holds (required, measured, met or not) and calls
:meth:`Figures.verify` once, which fails the test naming every figure missed. With
``FERRYMAN_FIGURES_FILE`` set, every figure is also appended there as one JSON line, so
``bench/soak`` can print the table of required against measured for a whole soak run,
including the figures of a test that failed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FIGURES_FILE = "FERRYMAN_FIGURES_FILE"


@dataclass(frozen=True)
class Figure:
    row: str
    figure: str
    required: str
    measured: str
    met: bool
    test: str


@dataclass
class Figures:
    """The figures one test holds for one catalogue row."""

    row: str
    test: str
    figures: list[Figure] = field(default_factory=list)

    def check(self, figure: str, required: str, measured: str, met: bool) -> None:
        self.figures.append(Figure(self.row, figure, required, measured, bool(met), self.test))

    def note(self, figure: str, measured: str) -> None:
        """A figure reported, not held to a bound (p90, p95)."""
        self.check(figure, "(reported)", measured, True)

    def verify(self) -> None:
        """Write the figures out (if asked) and fail on any missed."""
        path = os.environ.get(FIGURES_FILE)
        if path:
            with Path(path).open("a", encoding="utf-8") as out:
                for figure in self.figures:
                    out.write(json.dumps(asdict(figure)) + "\n")
        for f in self.figures:  # shown with -s, and under a failure's captured output
            print(f"{self.row} {f.figure}: {f.measured} [{f.required}]{'' if f.met else ' MISSED'}")
        missed = [f for f in self.figures if not f.met]
        assert not missed, "; ".join(
            f"{self.row} {f.figure}: {f.measured} (required {f.required})" for f in missed
        )
