"""Do the candidate's clients get refused? Its share of 4xx answers against the baseline's.

A version whose inputs differ from the serving one's answers its clients 400: the request is
well formed for the old version, not for the new one. Such answers are 4xx, so the success
rate (non-5xx) never sees them; this check does, for every strategy that serves clients. It
is pure: the two variants' traffic comes in, the reason it fails (or None) goes out.

The candidate fails when its 4xx share is more than ``limit`` above the baseline's over at
least ``min_requests`` requests, and — where the baseline answered anything to compare with —
the difference is not chance (two-sided test of two proportions at :data:`ALPHA`): clients
of a model send some bad requests whichever version answers them.
"""

from __future__ import annotations

from ferryman.control.analysis.significance import Arm, compare_proportions
from ferryman.control.metrics.traffic import Traffic

ALPHA = 0.01
"""Significance a rise must reach against a baseline that answered requests."""


def refused_more(
    limit: float, candidate: Traffic, baseline: Traffic, min_requests: int
) -> str | None:
    """Why the candidate refuses clients the baseline served, or None.

    >>> refused_more(0.05, Traffic(40, client_errors=40), Traffic(400, client_errors=4), 20)
    '4xx rate 1.000 > baseline 0.010 + 0.05: 40 of 40 requests refused'
    """
    rate, base = candidate.client_error_rate, baseline.client_error_rate
    if candidate.requests < min_requests or rate - base <= limit:
        return None
    if baseline.requests > 0:
        compared = compare_proportions(
            Arm(baseline.requests, baseline.client_errors),
            Arm(candidate.requests, candidate.client_errors),
        )
        if compared.p_value >= ALPHA:
            return None
    return (
        f"4xx rate {rate:.3f} > baseline {base:.3f} + {limit:g}: {candidate.client_errors:.0f} "
        f"of {candidate.requests:.0f} requests refused"
    )
