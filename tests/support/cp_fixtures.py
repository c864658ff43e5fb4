"""pytest plugin: a real control plane (tests/support/testenv.py) and helpers around it.

Fixtures: ``control_plane`` (session), ``kwok_control_plane`` (session, with fake nodes,
a GPU and k3s's local-path storage), ``real_node`` (module: a real node joined to
``control_plane``, tests/support/node.py), ``kubeconfig`` (str), ``kube_api``
(kubernetes.client.ApiClient), ``namespace`` (fresh per test, deleted after), ``helm_bin``,
``kubectl_bin``, ``chart_repo`` (session: the example's real charts on loopback). Tests
that use the control plane and fail get the component log tails in their report (and the
node's, with ``real_node``).

Set ``PALPLAT_TESTBIN`` to use tools built elsewhere.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

from tests.support import testenv

_ACTIVE: list[testenv.ControlPlane] = []
_NODES: list = []


def _skip_missing(names) -> None:
    missing = testenv.missing_bins(names)
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not built in {testenv.testbin_dir()}: run tools/build-testbin"
        )


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    """kine + kube-apiserver + kube-controller-manager for the whole session."""
    _skip_missing(testenv.COMPONENTS)
    cp = testenv.ControlPlane(tmp_path_factory.mktemp("controlplane"))
    cp.start(timeout=float(os.environ.get("PALPLAT_CP_TIMEOUT", "90")))
    _ACTIVE.append(cp)
    try:
        yield cp
    finally:
        _ACTIVE.remove(cp)
        cp.stop()


@pytest.fixture(scope="session")
def kwok_control_plane(tmp_path_factory):
    """A second control plane shaped like the example's k3s host: kube-scheduler, kwok and
    one fake node (pods report Running, Jobs complete, so Deployments become Available and
    ``helm --wait`` returns) that is a GPU host as palplat's GPU stage leaves it (label
    ``nvidia.com/gpu.present=true``, ``nvidia.com/gpu: 4``, RuntimeClass ``nvidia``), and
    k3s's default StorageClass ``local-path`` whose claims bind. Separate from
    ``control_plane`` so that tests there see a node-less cluster."""
    _skip_missing(testenv.COMPONENTS + testenv.KWOK_COMPONENTS)
    cp = testenv.ControlPlane(tmp_path_factory.mktemp("kwok-controlplane"))
    cp.start(timeout=float(os.environ.get("PALPLAT_CP_TIMEOUT", "90")), kwok=True, gpu_nodes=1)
    _ACTIVE.append(cp)
    try:
        yield cp
    finally:
        _ACTIVE.remove(cp)
        cp.stop()


@pytest.fixture(scope="module")
def real_node(control_plane, tmp_path_factory):
    """A real node (containerd, runc, the CNI bridge and the kubelet, tests/support/node.py)
    joined to the session's ``control_plane``, with kube-scheduler added for as long as it
    lives. Tainted ``palplat.test/real-node`` (other tests' pods stay off it: tolerate
    ``node.TESTBED_TOLERATION`` and select ``node.TESTBED_LABEL``); the images ``pause`` and
    ``nodeapp`` (``node.NODEAPP_REF``) are imported, nothing is ever pulled. Afterwards its
    pods are evicted, it stops, and its Node, Lease, CSINode and events are deleted: the
    control plane is as it was. Skipped, with the reason, where a node cannot run."""
    from tests.support import node as nodelib

    _skip_missing(["kube-scheduler"])
    work = tmp_path_factory.mktemp("real-node")
    reason = nodelib.preflight(work)
    if reason:
        pytest.skip(reason)
    _bins, missing = nodelib.testbed_bins()
    if missing:
        pytest.skip(
            f"the real node's programs are missing ({', '.join(missing)}): run "
            "tools/build-testbin node (containerd, runc and the CNI plugins come from "
            "Debian's containerd, runc and containernetworking-plugins, as .ci/run installs)"
        )
    images = nodelib.testbed_images(work / "images")
    scheduler = control_plane.start_scheduler()
    node = nodelib.testbed_node(control_plane, work / "node")
    try:
        node.start(timeout=float(os.environ.get("PALPLAT_NODE_TIMEOUT", "120")), images=images)
        _NODES.append(node)
        yield node
    finally:
        if node in _NODES:
            _NODES.remove(node)
        try:
            node.remove()
        finally:
            if scheduler:
                control_plane.stop_scheduler()


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> str:
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def kube_api(kubeconfig):
    """An ApiClient for the admin user of the session control plane."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(request, kube_api):
    """A fresh namespace for one test; deleted afterwards (not waited for)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    except Exception:  # noqa: S110 - the API may be down after an outage test; not our failure
        pass


@pytest.fixture(scope="session")
def chart_repo(helm_bin):
    """The example platform's real charts (../shared/reference/charts) served on loopback as
    a helm repository and an OCI registry (``tests/support/chartrepo.py``); skipped when
    the charts are absent."""
    from tests.support import chartrepo

    if not chartrepo.CHARTS.is_dir():
        pytest.skip(chartrepo.SKIP_REASON)
    repo = chartrepo.ChartRepo(helm_bin=helm_bin).start()
    try:
        yield repo
    finally:
        repo.stop()


@pytest.fixture(scope="session")
def helm_bin() -> str:
    _skip_missing(["helm"])
    return str(testenv.find_bin("helm"))


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    _skip_missing(["kubectl"])
    return str(testenv.find_bin("kubectl"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    uses = {"control_plane", "kwok_control_plane"} & set(getattr(item, "fixturenames", ()))
    if report.failed and _ACTIVE and uses:
        for cp in _ACTIVE:
            report.sections.append((f"control plane logs ({cp.workdir})", cp.log_tails(40)))
    if report.failed and _NODES and "real_node" in getattr(item, "fixturenames", ()):
        for node in _NODES:
            report.sections.append((f"real node logs ({node.work})", node.log_tails(40)))
