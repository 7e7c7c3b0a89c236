"""The Kubernetes export's overlays, built once per edge object for the tests of this folder."""

from __future__ import annotations

import pytest

from ferryman.control.exports.kubernetes import ClusterSpec
from tests.control.exports.manifests import (
    DEPLOYMENTS,
    KUBECTL,
    OVERLAYS,
    Built,
    kustomize,
    write,
)


@pytest.fixture(scope="module", params=["ingress", "httproute"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Each overlay as ``kubectl kustomize`` builds it, with either edge object."""
    if KUBECTL is None:
        pytest.skip("KUBECTL MISSING: the kustomizations are NOT built")
    spec = ClusterSpec(image="registry.example.com/ferryman:0.1.0", route=request.param)
    out = write(tmp_path_factory.mktemp("k8s"), spec, DEPLOYMENTS)
    return {overlay: kustomize(out / "overlays" / overlay) for overlay in OVERLAYS}
