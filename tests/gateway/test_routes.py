"""The route table's validation and the pure ``pick_variant`` (examples and properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ferryman.config import GatewaySettings
from ferryman.gateway.routes import (
    EndpointRoute,
    HeaderRule,
    RouteTable,
    VariantRoute,
    pick_variant,
    sticky_bucket,
)


def variant(name: str, weight: int, *backends: str, version: int = 1) -> VariantRoute:
    return VariantRoute(
        name=name, model="digits", version=version, weight=weight, backends=backends
    )


def two_way(stable: int, **extra: object) -> EndpointRoute:
    return EndpointRoute.model_validate(
        {
            "endpoint": "digits",
            "variants": (variant("v1", stable), variant("v2", 100 - stable, version=2)),
            **extra,
        }
    )


def test_weighted_draws_land_by_cumulative_weight() -> None:
    route = two_way(90)
    assert pick_variant(route, {}, 0.0).name == "v1"
    assert pick_variant(route, {}, 0.8999).name == "v1"
    assert pick_variant(route, {}, 0.9).name == "v2"
    assert pick_variant(route, {}, 0.9999).name == "v2"


def test_header_rules_come_first_and_the_first_match_wins() -> None:
    rules = (
        HeaderRule(header="x-canary", equals="1", variant="v2"),
        HeaderRule(header="x-region", equals="eu", variant="v1"),
    )
    route = two_way(100, rules=rules, sticky_header="x-user-id")
    assert pick_variant(route, {"x-canary": "1", "x-region": "eu"}, 0.0).name == "v2"
    assert pick_variant(route, {"x-region": "eu"}, 0.99).name == "v1"
    assert pick_variant(route, {"x-canary": "2", "x-user-id": "u"}, 0.99).name == "v1"


def test_shadow_takes_no_weighted_traffic() -> None:
    route = EndpointRoute(
        endpoint="digits",
        variants=(variant("v1", 100), variant("v1-int8", 0)),
        shadow="v1-int8",
    )
    assert {pick_variant(route, {}, draw / 100).name for draw in range(100)} == {"v1"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"variants": (variant("a", 60), variant("b", 30))}, "sum to 90"),
        ({"variants": (variant("a", 50), variant("a", 50))}, "twice"),
        ({"shadow": "nope"}, "no variant 'nope'"),
        ({"rules": ({"header": "x-a", "equals": "1", "variant": "zz"},)}, "no variant 'zz'"),
        ({"sticky_header": "X-User"}, "header name"),
        ({"endpoint": "../etc"}, "endpoint name"),
    ],
)
def test_bad_routes_are_refused(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"endpoint": "digits", "variants": (variant("a", 100),)}
    with pytest.raises(ValidationError, match=message):
        EndpointRoute.model_validate({**fields, **change})


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.8:8080",
        "http://169.254.169.254:80",
        "file:///etc/passwd",
        "http://127.0.0.1:8080/v2/models",
        "http://user:secret@127.0.0.1:8080",
        "http://127.0.0.1:8080?x=1",
        "http://127.0.0.1",
        "http://[::ffff:10.0.0.1]:80",
    ],
)
def test_backends_must_be_bare_loopback_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="backend"):
        variant("a", 100, url)


def test_configured_hosts_are_allowed_only_through_the_table_loader() -> None:
    text = RouteTable(generation=3, endpoints={}).model_dump_json()
    table = RouteTable.from_json(text)
    assert table.generation == 3
    body = {
        "generation": 4,
        "endpoints": {
            "digits": {
                "endpoint": "digits",
                "variants": [
                    {
                        "name": "a",
                        "model": "digits",
                        "version": 1,
                        "weight": 100,
                        "backends": ["http://replica-1:8080/"],
                    }
                ],
            }
        },
    }
    raw = RouteTable.model_validate(body, context={"allowed_hosts": ("replica-1",)})
    assert raw.endpoints["digits"].variants[0].backends == ("http://replica-1:8080",)
    with pytest.raises(ValidationError, match="neither loopback"):
        RouteTable.model_validate(body)


def test_an_allowed_network_admits_the_addresses_inside_it_only() -> None:
    """Replicas on pods' addresses (a Ray cluster on Kubernetes) are allowed by network."""
    text = (
        '{"generation": 1, "endpoints": {"d": {"endpoint": "d", "variants": [{"name": "a", '
        '"model": "d", "version": 1, "weight": 100, "backends": ["http://HOST:41234"]}]}}}'
    )
    allowed = ("10.244.0.0/16", "fd00:10::/64")
    for host in ("10.244.3.7", "[fd00:10::5]"):
        RouteTable.from_json(text.replace("HOST", host), allowed)
    for host in ("10.245.0.1", "[fd00:11::5]", "replica-1", "10.244.3.7.nip.io"):
        with pytest.raises(ValidationError, match="neither loopback"):
            RouteTable.from_json(text.replace("HOST", host), allowed)


def test_a_backend_network_that_does_not_parse_is_refused_with_the_settings() -> None:
    with pytest.raises(ValidationError, match="not a network"):
        GatewaySettings(backend_hosts=("10.244.0.0/33",))


def test_loopback_forms_are_accepted() -> None:
    urls = ("http://127.0.0.1:1", "https://localhost:2", "http://[::1]:3", "http://127.9.9.9:4")
    assert variant("a", 100, *urls).backends == urls


weights = st.integers(min_value=0, max_value=100)
keys = st.text(min_size=1, max_size=40)


@given(stable=weights, draw=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_a_draw_always_picks_a_variant_with_weight(stable: int, draw: float) -> None:
    assert pick_variant(two_way(stable), {}, draw).weight > 0


@given(stable=weights, key=keys, draws=st.lists(st.floats(0, 1, exclude_max=True), max_size=5))
def test_a_sticky_key_ignores_the_draw(stable: int, key: str, draws: list[float]) -> None:
    route = two_way(stable, sticky_header="x-user-id")
    first = pick_variant(route, {"x-user-id": key}, 0.5)
    assert all(pick_variant(route, {"x-user-id": key}, d) == first for d in draws)


@given(old=weights, new=weights, key=keys)
@settings(max_examples=300)
def test_sticky_keys_stay_with_the_candidate_as_it_grows(old: int, new: int, key: str) -> None:
    """A key on the candidate (listed last) stays there when its weight grows."""
    small, large = sorted((old, new))
    before = pick_variant(two_way(100 - small, sticky_header="k"), {"k": key}, 0.0)
    after = pick_variant(two_way(100 - large, sticky_header="k"), {"k": key}, 0.0)
    if before.name == "v2":
        assert after.name == "v2"


def test_sticky_buckets_are_stable_and_spread() -> None:
    assert sticky_bucket("user-42") == sticky_bucket("user-42")
    counts = [0] * 100
    for index in range(10_000):
        counts[sticky_bucket(f"user-{index}")] += 1
    assert min(counts) > 60
    assert max(counts) < 140


@pytest.mark.parametrize("stable", [10, 50, 90])
def test_sticky_share_follows_the_weights(stable: int) -> None:
    route = two_way(stable, sticky_header="x-user-id")
    picks = [pick_variant(route, {"x-user-id": f"u{index}"}, 0.0) for index in range(5_000)]
    share = sum(pick.name == "v1" for pick in picks) / len(picks)
    assert abs(share - stable / 100) < 0.03
