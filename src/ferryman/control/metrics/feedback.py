"""Model-level signals of each variant, from the payload log: accuracy, thumbs-up rate and
input drift.

Feedback labels joined to predictions give a variant's quality
(:mod:`ferryman.control.analysis.quality`); ratings of a language model's completions
(thumbs up or down) give its thumbs-up rate; the input summaries of its recent requests,
compared with the histograms its version's training data left in its reference, give its
input drift (PSI). The rollout controller asks for a rollout's candidate and baseline; the
monitor records every variant's figures as series.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ferryman.control.analysis.drift import input_drift
from ferryman.control.analysis.quality import Quality, confusion, quality
from ferryman.errors import FerrymanError
from ferryman.reference import Histogram
from ferryman.registry import Rated, Registry, RolloutRecord
from ferryman.types import Slot

logger = logging.getLogger(__name__)

LABELLED_WINDOW = 2_000
"""Newest labelled rows a variant is judged on."""
LABELLED = "labelled"
"""The key of a variant's labelled rows among its signals (what accuracy and F1 stand on)."""
INPUT_ROWS = "input_rows"
"""The key of the input rows its drift stands on."""
RATED = "rated"
"""The key of a variant's rated completions among its signals (what its thumbs-up rate
stands on)."""
RATED_WINDOW = 2_000
"""Newest rated completions a variant is judged on."""
SUMMARY_WINDOW = 2_000
"""Newest requests whose inputs are compared with the training data."""


@dataclass(frozen=True)
class ModelSignals:
    """What feedback labels and live inputs say so far: both sides' accuracy, input drift."""

    candidate_labelled: int = 0
    candidate_accuracy: float | None = None
    baseline_labelled: int = 0
    baseline_accuracy: float | None = None
    input_drift_psi: float | None = None
    candidate_rated: int = 0
    """Completions of the candidate rated up or down."""
    candidate_thumbs_up_rate: float | None = None
    baseline_rated: int = 0
    baseline_thumbs_up_rate: float | None = None


def thumbs(rated: Rated) -> dict[str, int | float | None]:
    """A variant's votes as the quality route and ``ferryman quality`` show them: up, down,
    and the share up (None: no votes)."""
    return {"thumbs_up": rated.up, "thumbs_down": rated.down, "thumbs_up_rate": rated.up_rate}


class FeedbackSignals:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._references: dict[tuple[str, int], dict[str, Histogram]] = {}

    def quality(self, endpoint: str, variant: str, since: datetime | None = None) -> Quality:
        """What feedback says of a variant's newest labelled answers (since a time)."""
        payloads = self._registry.payloads
        labelled = payloads.labelled(endpoint, variant, since=since, limit=LABELLED_WINDOW)
        return quality(confusion(labelled.predicted, labelled.actual))

    def input_drift(self, endpoint: str, variant: str, model: str, version: int) -> float | None:
        """PSI of the variant's recent inputs against its version's training data."""
        return self._input_drift(endpoint, variant, model, version)[0]

    def _input_drift(
        self, endpoint: str, variant: str, model: str, version: int
    ) -> tuple[float | None, int]:
        """The PSI (None without data) and how many input rows it was computed from."""
        reference = self._training_inputs(model, version)
        live = self._registry.payloads.summaries(endpoint, variant, SUMMARY_WINDOW)
        if not reference or not live:
            return None, 0
        return input_drift(reference, live), max(map(len, live.values()))

    def by_variant(
        self, endpoint: str, since: datetime | None = None
    ) -> dict[str, tuple[str, int, Quality]]:
        """Quality of every variant that served the endpoint (deployed now, or in the log)."""
        served = self._registry.payloads.variants(endpoint)
        known = {name for name, _, _ in served}
        try:
            deployed = self._registry.deployments.get(endpoint).spec.variants
        except FerrymanError:
            if not served:
                raise
            deployed = ()
        served += [(v.name, v.model, v.version) for v in deployed if v.name not in known]
        return {name: (model, version, self.quality(endpoint, name, since))
                for name, model, version in served}  # fmt: skip

    def rated(self, endpoint: str, variant: str, since: datetime | None = None) -> Rated:
        """How many of a variant's newest rated completions were thumbs up (since a time)."""
        return self._registry.payloads.rated(endpoint, variant, since=since, limit=RATED_WINDOW)

    def for_rollout(self, rollout: RolloutRecord) -> ModelSignals:
        """Both sides' accuracy and thumbs-up rate, and the candidate's input drift."""
        endpoint = rollout.endpoint
        candidate = self.quality(endpoint, rollout.candidate.name)
        baseline = self.quality(endpoint, rollout.baseline.name)
        candidate_rated = self.rated(endpoint, rollout.candidate.name)
        baseline_rated = self.rated(endpoint, rollout.baseline.name)
        model, version = rollout.candidate.model, rollout.candidate.version
        return ModelSignals(
            candidate_rated=candidate_rated.rated,
            candidate_thumbs_up_rate=candidate_rated.up_rate,
            baseline_rated=baseline_rated.rated,
            baseline_thumbs_up_rate=baseline_rated.up_rate,
            candidate_labelled=candidate.labelled,
            candidate_accuracy=candidate.accuracy if candidate.labelled else None,
            baseline_labelled=baseline.labelled,
            baseline_accuracy=baseline.accuracy if baseline.labelled else None,
            input_drift_psi=self.input_drift(endpoint, rollout.candidate.name, model, version),
        )

    def series(self) -> dict[Slot, dict[str, float]]:
        """Every deployed variant's accuracy, thumbs-up rate and input drift, where there is
        data, with the sizes they stand on (``labelled`` rows, ``rated`` completions,
        ``input_rows``; see ``sampling.SIZES``)."""
        found: dict[Slot, dict[str, float]] = {}
        for deployment in self._registry.deployments.list():
            for variant in deployment.spec.variants:
                endpoint, name = deployment.endpoint, variant.name
                figures: dict[str, float] = {}
                scores = self.quality(endpoint, name)
                if scores.labelled:
                    figures["accuracy"] = scores.accuracy
                    figures["f1"] = scores.f1
                    figures[LABELLED] = scores.labelled
                rated = self.rated(endpoint, name)
                if rated.up_rate is not None:
                    figures["thumbs_up_rate"] = rated.up_rate
                    figures[RATED] = rated.rated
                psi, rows = self._input_drift(endpoint, name, variant.model, variant.version)
                if psi is not None:
                    figures["input_drift_psi"] = psi
                    figures[INPUT_ROWS] = rows
                if figures:
                    found[(endpoint, name)] = figures
        return found

    def accuracy_outcomes(self) -> dict[Slot, tuple[float, float]]:
        """(labelled rows, correct rows) of every deployed variant: the trials and successes
        an A/B test on accuracy compares."""
        found: dict[Slot, tuple[float, float]] = {}
        for deployment in self._registry.deployments.list():
            for variant in deployment.spec.variants:
                scores = self.quality(deployment.endpoint, variant.name)
                found[(deployment.endpoint, variant.name)] = (scores.labelled, scores.correct)
        return found

    def _training_inputs(self, model: str, version: int) -> dict[str, Histogram]:
        key = (model, version)
        if key not in self._references:
            try:
                reference = self._registry.get_reference(model, version)
            except FerrymanError as exc:
                logger.warning("no reference data for %s v%d: %s", model, version, exc)
                reference = None
            self._references[key] = {} if reference is None else dict(reference.input_summaries)
        return self._references[key]
