"""The gateway's Prometheus metrics, on a registry this object owns.

Label values come only from the route table (endpoint and variant names, which the table
validated) or from small fixed sets, so a client naming random endpoints cannot grow the
series (RELIABILITY B9): unknown names only bump one unlabelled counter.
"""

from __future__ import annotations

from types import MappingProxyType

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ferryman.gateway.keycap import StickyKeyCap

ERROR_KINDS = MappingProxyType({502: "bad_gateway", 503: "unavailable", 504: "timeout"})
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    """Requests, errors, latency, held requests, shadow outcomes and backend health."""

    def __init__(self, key_cap: StickyKeyCap | None = None) -> None:
        self.key_cap = key_cap
        """Caps each sticky key's share of the judged traffic (None: no cap)."""
        self.registry = CollectorRegistry()
        by_variant = ["endpoint", "variant"]
        self.requests = Counter(
            "ferryman_gateway_requests",
            "Requests answered, by the status class of the answer.",
            [*by_variant, "code"],
            registry=self.registry,
        )
        self.pinned = Counter(
            "ferryman_gateway_pinned_requests",
            "Requests that named a version (/versions/N), by the status class of the answer: "
            "counted here, not in ferryman_gateway_requests, whose traffic rollouts judge. A "
            "client picks the variant of these, so they are no sample of the split: refused "
            "ones pinned to a candidate rolled it back at once.",
            [*by_variant, "code"],
            registry=self.registry,
        )
        self.capped = Counter(
            "ferryman_gateway_capped_requests",
            "Requests by a sticky key beyond its share of the traffic rollouts judge "
            "(gateway.sticky_judged_per_key per sticky_window_s), by the status class of the "
            "answer: counted here, not in ferryman_gateway_requests.",
            [*by_variant, "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ferryman_gateway_errors",
            "Requests answered with a 5xx, by kind: bad_gateway, unavailable, timeout.",
            [*by_variant, "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ferryman_gateway_request_duration_seconds",
            "Time from a request's arrival to its answer, holding included.",
            by_variant,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "ferryman_gateway_first_token_seconds",
            "OpenAI streams answered 200: from a request's arrival to the first answer bytes "
            "(its first token; holding included). The TTFT rollouts judge.",
            by_variant,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.inter_token = Histogram(
            "ferryman_gateway_inter_token_seconds",
            "OpenAI streams answered 200: the gaps between the pieces of an answer as they "
            "reach the gateway (time per output token; pieces that arrive together count "
            "once).",
            by_variant,
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ferryman_gateway_in_flight_requests",
            "Requests on their way to a replica or held, per endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.held = Gauge(
            "ferryman_gateway_held_requests",
            "Requests waiting for a ready replica (scale from zero): demand for the autoscaler.",
            ["endpoint"],
            registry=self.registry,
        )
        self.shadow = Counter(
            "ferryman_gateway_shadow",
            "Shadow copies by outcome: equal, close, same_argmax, different, status_differs, "
            "primary_failed, error, dropped.",
            [*by_variant, "outcome"],
            registry=self.registry,
        )
        self.backend_down = Counter(
            "ferryman_gateway_backend_down",
            "Times a replica refused a connection and was taken out of rotation.",
            by_variant,
            registry=self.registry,
        )
        self.unknown_endpoint = Counter(
            "ferryman_gateway_unknown_endpoint",
            "Requests for endpoints that are not in the route table (no label on purpose).",
            registry=self.registry,
        )
        self.route_generation = Gauge(
            "ferryman_gateway_route_generation",
            "Generation of the route table in force.",
            registry=self.registry,
        )
        self._answers: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._apart_children: dict[tuple[int, str, str, int], Counter] = {}
        self._in_flight: dict[str, Gauge] = {}
        self.route_reload_errors = Counter(
            "ferryman_gateway_route_reload_errors",
            "Route files that could not be read or were invalid (the last good table stays).",
            registry=self.registry,
        )

    def answered(
        self,
        endpoint: str,
        variant: str,
        status: int,
        duration_s: float,
        *,
        pinned: bool = False,
        sticky_key: bytes | None = None,
    ) -> None:
        """Count one answer and observe its latency (labelled children cached: hot path); a
        ``pinned`` one (the client named the version), or one whose ``sticky_key`` had its
        share of the judged traffic, only in its own counter."""
        if pinned:
            self._apart(self.pinned, endpoint, variant, status)
            return
        cap = self.key_cap
        if sticky_key is not None and cap is not None and not cap.admits(endpoint, sticky_key):
            self._apart(self.capped, endpoint, variant, status)
            return
        key = (endpoint, variant, status // 100)
        children = self._answers.get(key)
        if children is None:
            code = f"{status // 100}xx"
            children = (
                self.requests.labels(endpoint, variant, code),
                self.latency.labels(endpoint, variant),
            )
            self._answers[key] = children
        children[0].inc()
        children[1].observe(duration_s)
        if status >= 500:
            kind = ERROR_KINDS.get(status, "server_error")
            self.errors.labels(endpoint, variant, kind).inc()

    def _apart(self, counter: Counter, endpoint: str, variant: str, status: int) -> None:
        """Count an answer outside the judged traffic (its 5xx still in the errors by kind);
        labelled children cached, as a flood of them is what this counter is for."""
        key = (id(counter), endpoint, variant, status // 100)
        child = self._apart_children.get(key)
        if child is None:
            child = counter.labels(endpoint, variant, f"{status // 100}xx")
            self._apart_children[key] = child
        child.inc()
        if status >= 500:
            self.errors.labels(endpoint, variant, ERROR_KINDS.get(status, "server_error")).inc()

    def in_flight_of(self, endpoint: str) -> Gauge:
        """The in-flight gauge of one endpoint (cached: hot path)."""
        gauge = self._in_flight.get(endpoint)
        if gauge is None:
            gauge = self._in_flight[endpoint] = self.in_flight.labels(endpoint)
        return gauge

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
