"""``ferryman recommend --verify``: the pure parts here; the whole check on a real fleet with
the digits model in ``test_verify_e2e``."""

from __future__ import annotations

import pytest

from ferryman.capacity.catalogue import InstanceShape
from ferryman.capacity.recommend import Candidate
from ferryman.capacity.verify import verify_endpoint, verify_spec, wait_routed
from ferryman.errors import DeadlineExceeded, InvalidInput
from ferryman.gateway.routes import RouteTable
from ferryman.registry import ServingConfig

SHAPE = InstanceShape(name="box", vcpus=2, memory_gib=4, price_per_hour=0.1)


def candidate(variant: str, replicas: int = 2) -> Candidate:
    config = ServingConfig(variant=variant, max_batch_size=8, max_delay_ms=2, intra_op_threads=1)
    return Candidate(
        config=config, shape=SHAPE, replica_qps=50, p99_ms=20, cores_per_replica=1,
        replicas_per_instance=2, replicas=replicas, instances=1, cost_per_hour=0.1, spare_qps=10,
    )  # fmt: skip


def test_the_check_deploys_to_an_endpoint_of_its_own_and_never_onto_one_that_exists() -> None:
    assert verify_endpoint("digits", None, ["digits"]) == "digits-verify"
    assert verify_endpoint("digits", "trial", ["digits"]) == "trial"
    for given in (None, "digits"):
        with pytest.raises(
            InvalidInput, match="exists; --verify deploys to an endpoint of its own"
        ):
            verify_endpoint("digits", given, ["digits", "digits-verify"])


@pytest.mark.parametrize(("variant", "kind"), [("onnx", None), ("onnx-int8", "onnx-int8")])
def test_the_deployment_is_the_recommended_configuration(variant: str, kind: str | None) -> None:
    spec = verify_spec("digits-verify", "digits", 3, candidate(variant, replicas=2))
    (only,) = spec.variants
    assert (only.model, only.version, only.kind, only.replicas) == ("digits", 3, kind, 2)
    assert (spec.max_batch_size, spec.max_delay_ms, spec.intra_op_threads) == (8, 2, 1)
    assert spec.autoscaling is None


def table(backends: int) -> RouteTable:
    urls = [f"http://127.0.0.1:{9000 + i}" for i in range(backends)]
    variant = {"name": "v1", "model": "m", "version": 1, "weight": 100, "backends": urls}
    route = {"endpoint": "e", "variants": [variant]}
    return RouteTable.model_validate({"generation": 1, "endpoints": {"e": route}})


def test_waiting_for_the_replicas_ends_when_all_are_routed_or_says_how_many_were() -> None:
    now = [0.0]
    seen = [None, table(1), table(2)]

    def published() -> RouteTable | None:
        return seen.pop(0) if len(seen) > 1 else seen[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    waited = wait_routed(published, "e", 2, 10, sleep=sleep, clock=lambda: now[0])
    assert waited == pytest.approx(0.4)
    seen[:] = [table(1)]
    with pytest.raises(DeadlineExceeded, match="has 1 of 2 replicas routed after 3 s"):
        wait_routed(published, "e", 2, 3, sleep=sleep, clock=lambda: now[0])
