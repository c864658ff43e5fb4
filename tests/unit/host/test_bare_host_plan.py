"""The plan of a bare host (test=True before k3s exists): the Kubernetes and Helm states
after the k3s stage are pending (result None), not failed; a missing kubeconfig in
external mode, or in a real run, stays an error."""

import pytest

from palplat import loaderkit
from palplat.errors import PalplatError


def _state(opts, pillar):
    @loaderkit.state
    def converged(name="x"):
        e = loaderkit.env({}, opts, pillar, {})
        e.kube(cfg=e.config())
        raise AssertionError("a client was made")

    return converged


def pillar(tmp_path, mode):
    return {"palplat": {"k3s": {"mode": mode, "kubeconfig": str(tmp_path / "k3s.yaml")}}}


def test_no_cluster_yet_is_pending_in_test_mode(tmp_path):
    ret = _state({"test": True}, pillar(tmp_path, "install"))()
    assert ret["result"] is None and "no cluster yet" in ret["comment"]


def test_helm_context_too(tmp_path):
    e = loaderkit.env({}, {"test": True}, pillar(tmp_path, "install"), {})
    with pytest.raises(loaderkit.NoClusterYet), e.helm_context(e.config()):
        pass


@pytest.mark.parametrize("test, mode", [(False, "install"), (True, "external")])
def test_otherwise_a_missing_kubeconfig_is_an_error(tmp_path, test, mode):
    e = loaderkit.env({}, {"test": test}, pillar(tmp_path, mode), {})
    with pytest.raises(PalplatError) as exc:
        e.kube(cfg=e.config())
    assert not isinstance(exc.value, loaderkit.NoClusterYet)
