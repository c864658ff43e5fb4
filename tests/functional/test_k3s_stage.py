"""k3s stage through Salt's loader (state.sls palplat.k3s) with the stand-in k3s served from
a local release server: the stand-in runs the real test control plane, so readiness, the
kubeconfig, joins, drains and upgrades go through a real kube-apiserver.

Each "minion" is its own Salt loader with its own pillar and filesystem root; several of
them make a cluster on this host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from pathlib import Path

import pytest
import yaml

from palplat import units
from palplat.k3s import upgrade as k3s_upgrade
from tests.support import testenv
from tests.support.fake_k3s import ReleaseServer
from tests.support.saltenv import CHECKOUT_DIRS, REPO, ArgvWatcher

pytestmark = [pytest.mark.salt, pytest.mark.controlplane, pytest.mark.slow]

V1, V2, V3 = "v1.33.5+k3s1", "v1.33.6+k3s1", "v1.34.1+k3s1"
TOKEN = "k3s-token-" + uuid.uuid4().hex
IDS = ("installed", "configured", "running", "kubeconfig")


@pytest.fixture(scope="module", autouse=True)
def _need_bins():
    missing = testenv.missing_bins()
    if missing:
        pytest.skip(f"{', '.join(missing)} not built: run tools/build-testbin")


@pytest.fixture(scope="module")
def releases():
    with ReleaseServer() as rs:
        for v in (V1, V2, V3):
            rs.add_release(v)
        yield rs


class Minion:
    """One Salt minion's loaders, pillar and filesystem root (processes service manager)."""

    def __init__(self, base: Path, name: str, releases: ReleaseServer):
        import salt.config
        from saltfactories.utils.functional import Loaders

        self.name = name
        self.root = base / name
        self.releases = releases
        for d in ("pillar", "cache"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - palplat\n")
        self.k3s: dict = {}
        self.set_pillar()
        opts = salt.config.minion_config(None)
        opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
        opts.update(
            id=name,
            root_dir=str(self.root),
            cachedir=str(self.root / "cache"),
            pki_dir=str(self.root / "pki"),
            sock_dir=str(self.root / "sock"),
            extension_modules=str(self.root / "extmods"),
            log_file=str(self.root / "minion.log"),
            file_client="local",
            file_roots={"base": [str(REPO / "salt")]},
            pillar_roots={"base": [str(self.root / "pillar")]},
            **CHECKOUT_DIRS,
        )
        self.loaders = Loaders(opts)

    def set_pillar(self, **k3s) -> None:
        base = {
            "version": V1,
            "token": TOKEN,
            "root": str(self.root / "fs"),
            "service_manager": "processes",
            "source": {"url": self.releases.url},
            "ready_timeout": 90,
            "config": {"node-name": self.name},
        }
        base.update(k3s)
        self.k3s = base
        data = {"palplat": {"k3s": base, "gpu": {"enabled": False}}}
        (self.root / "pillar" / "palplat.sls").write_text(yaml.safe_dump(data))
        if hasattr(self, "loaders"):
            self.loaders.reload_all()

    def sls(self, test: bool = False, pillar: dict | None = None) -> dict:
        kw = {"test": test}
        if pillar:
            kw["pillar"] = pillar
        ret = self.loaders.modules.state.sls("palplat.k3s", **kw)
        ret = getattr(ret, "raw", ret)
        assert isinstance(ret, dict), ret
        return {v["__id__"].replace("palplat-k3s-", ""): v for v in ret.values()}

    @property
    def unit(self) -> str:
        return "k3s.service" if self.k3s.get("role", "server") == "server" else "k3s-agent.service"

    @property
    def services(self) -> units.Processes:
        return units.Processes(self.root / "fs")

    def events(self) -> list[str]:
        return self.services.events(self.unit)

    def fs(self, rel: str) -> Path:
        return self.root / "fs" / rel.lstrip("/")

    def stop(self) -> None:
        for unit in ("k3s.service", "k3s-agent.service"):
            self.services.stop(unit)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, releases):
    base = tmp_path_factory.mktemp("k3s-minions")
    made: dict[str, Minion] = {}

    def get(name: str) -> Minion:
        if name not in made:
            made[name] = Minion(base, name, releases)
        return made[name]

    yield get
    for m in made.values():
        m.stop()


def ok(rets: dict, *ids: str) -> None:
    for i in ids or IDS:
        assert rets[i]["result"] is True, json.dumps(rets[i], indent=1)


def changed(rets: dict) -> dict:
    return {i: r["changes"] for i, r in rets.items() if r["changes"]}


def assert_no_secret(*objs) -> None:
    text = json.dumps(objs, default=str)
    assert TOKEN not in text


def test_server_install_noop_config_change_upgrade_uninstall(cluster, releases, caplog):
    caplog.set_level(logging.DEBUG)
    m = cluster("srv1")

    # plan: same changes as the real run, nothing on disk
    plan = m.sls(test=True)
    assert plan["installed"]["result"] is None
    assert plan["installed"]["changes"] == {"version": {"old": None, "new": V1}}
    assert plan["configured"]["result"] is None
    assert plan["configured"]["changes"]["config.yaml"]["new"]["token"] == "<hidden>"
    assert (
        plan["running"]["result"] is None
        and plan["running"]["changes"]["service"]["new"] == "running"
    )
    assert plan["kubeconfig"]["result"] is None
    assert not m.fs("/usr/local/bin/k3s").exists() and not m.fs("/etc/rancher/k3s").exists()

    t0 = time.monotonic()
    with ArgvWatcher(interval=0.05) as argv:
        first = m.sls()
    install_s = time.monotonic() - t0
    assert any("k3s server --config" in a for a in argv.seen)
    assert not [a for a in argv.seen if TOKEN in a]
    ok(first)
    assert first["installed"]["changes"] == plan["installed"]["changes"]
    assert first["configured"]["changes"] == plan["configured"]["changes"]
    assert m.events() == ["start"]
    kubeconfig = m.fs("/etc/rancher/k3s/k3s.yaml")
    assert kubeconfig.exists(), first["kubeconfig"]
    assert "reaches a ready API server" in first["kubeconfig"]["comment"], first["kubeconfig"]
    assert (m.fs("/etc/rancher/k3s/config.yaml").stat().st_mode & 0o777) == 0o600
    print(f"\nfresh install to Ready: {install_s:.1f}s")

    # no-op: no changes, no restart, in test mode too
    t0 = time.monotonic()
    again = m.sls()
    noop_s = time.monotonic() - t0
    ok(again)
    assert changed(again) == {}
    assert changed(m.sls(test=True)) == {}
    assert m.events() == ["start"]
    print(f"no-op run: {noop_s:.2f}s")

    # config change: exactly one restart
    m.set_pillar(config={"node-name": "srv1", "node-label": ["tier=gold"]})
    plan = m.sls(test=True)
    assert set(changed(plan)) == {"configured", "running"}
    assert plan["configured"]["changes"]["config.yaml"] == {
        "old": {},
        "new": {"node-label": ["tier=gold"]},
    }
    assert plan["running"]["changes"]["service"]["new"] == "restarted"
    rets = m.sls()
    ok(rets)
    assert set(changed(rets)) == {"configured", "running"}
    assert m.events() == ["start", "stop", "start"]
    assert changed(m.sls()) == {}

    # unknown config key: fails naming the pillar path, nothing changes or restarts
    m.set_pillar(config={"node-name": "srv1", "node-lable": ["tier=gold"]})
    rets = m.sls()
    bad = rets["valid"]  # pillar validation (palplat_config.validated) catches it first
    assert bad["result"] is False
    assert "palplat:k3s:config:node-lable" in bad["comment"] and "node-label" in bad["comment"]
    assert all(rets[i]["result"] is False and not rets[i]["changes"] for i in IDS)
    assert m.events() == ["start", "stop", "start"]

    # a token that does not match the running cluster: nothing written, nothing restarted
    before = m.fs("/etc/rancher/k3s/config.yaml").read_text()
    wrong = "wrong-" + uuid.uuid4().hex
    m.set_pillar(token=wrong, config={"node-name": "srv1", "node-label": ["tier=gold"]})
    rets = m.sls()
    assert rets["configured"]["result"] is False
    assert "does not match the token of the cluster" in rets["configured"]["comment"]
    assert m.fs("/etc/rancher/k3s/config.yaml").read_text() == before
    assert m.events() == ["start", "stop", "start"]
    assert wrong not in json.dumps(rets) and TOKEN not in json.dumps(rets)

    # a version change outside the upgrade runner is refused; with it, one restart
    m.set_pillar(version=V2, config={"node-name": "srv1", "node-label": ["tier=gold"]})
    rets = m.sls()
    assert rets["installed"]["result"] is False
    assert "salt-run palplat_k3s.upgrade" in rets["installed"]["comment"]
    rets = m.sls(pillar={k3s_upgrade.UPGRADE_PILLAR: True})
    ok(rets)
    assert rets["installed"]["changes"] == {"version": {"old": V1, "new": V2}}
    assert m.events() == ["start", "stop", "start", "stop", "start"]

    # checksum mismatch: the current binary stays, nothing restarts
    releases.corrupt(V3)
    m.set_pillar(version=V3, config={"node-name": "srv1", "node-label": ["tier=gold"]})
    rets = m.sls(pillar={k3s_upgrade.UPGRADE_PILLAR: True})
    assert rets["installed"]["result"] is False
    assert "checksum mismatch" in rets["installed"]["comment"]
    assert m.loaders.modules.palplat_k3s.version() == V2
    assert m.events() == ["start", "stop", "start", "stop", "start"]

    # downgrade: refused unless forced
    m.set_pillar(version=V1, config={"node-name": "srv1", "node-label": ["tier=gold"]})
    rets = m.sls(pillar={k3s_upgrade.UPGRADE_PILLAR: True})
    assert (
        rets["installed"]["result"] is False and "allow_downgrade" in rets["installed"]["comment"]
    )
    assert m.loaders.modules.palplat_k3s.version() == V2
    assert_no_secret(plan, first, again, rets)
    assert TOKEN not in caplog.text and wrong not in caplog.text

    # explicit uninstall
    absent = m.loaders.states.palplat_k3s.absent("k3s", test=True)
    assert absent.result is None and "k3s.service" in absent.changes
    absent = m.loaders.states.palplat_k3s.absent("k3s")
    assert absent.result is True
    assert not m.fs("/usr/local/bin/k3s").exists()
    assert not m.services.is_active("k3s.service")
    assert m.loaders.states.palplat_k3s.absent("k3s").changes == {}


def test_never_ready_timeout_names_what_is_missing(cluster):
    m = cluster("stuck")
    m.set_pillar(ready_timeout=10)
    data_dir = m.fs("/var/lib/rancher/k3s")
    data_dir.mkdir(parents=True)
    (data_dir / "fake-k3s.json").write_text('{"never_ready": true}')
    rets = m.sls()
    assert rets["installed"]["result"] is True
    run = rets["running"]
    assert run["result"] is False
    assert "not ready after 10s" in run["comment"]
    assert "k3s.yaml not written yet" in run["comment"]
    m.stop()


def test_join_agent_drain_and_ordered_upgrade(cluster, releases):
    srv = cluster("cp1")
    ok(srv.sls())
    url = srv.fs("/var/lib/rancher/k3s/server/supervisor-url").read_text().strip()

    # a wrong token is detected before anything is written or started (a full token: its
    # CA hash is checked first, then the secret over TLS pinned to that CA)
    ca = srv.fs("/var/lib/rancher/k3s/server/controlplane/pki/ca.crt").read_bytes()
    ca_hash = hashlib.sha256(ca).hexdigest()
    ag = cluster("worker1")
    ag.set_pillar(role="agent", server_url=url, token=f"K10{ca_hash}::node:nope-{uuid.uuid4().hex}")
    rets = ag.sls()
    assert rets["installed"]["result"] is True
    assert rets["configured"]["result"] is False
    assert "refused by the server" in rets["configured"]["comment"]
    assert not ag.fs("/etc/rancher/k3s/config.yaml").exists()
    assert ag.events() == []

    ag.set_pillar(role="agent", server_url=url)
    rets = ag.sls()
    ok(rets)
    assert rets["running"]["changes"]["unit"]["new"] == "k3s-agent.service"
    assert "agents have no admin kubeconfig" in rets["kubeconfig"]["comment"]
    mods = srv.loaders.modules.palplat_k3s
    assert mods.node_ready("worker1", V1)["ready"] is True

    # a pod on the agent, evicted by the drain
    from kubernetes import client, config

    core = client.CoreV1Api(
        config.new_client_from_config(config_file=str(srv.fs("/etc/rancher/k3s/k3s.yaml")))
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", namespace="default"),
        spec=client.V1PodSpec(
            node_name="worker1", containers=[client.V1Container(name="c", image="busybox")]
        ),
    )
    core.create_namespaced_pod("default", pod)

    statuses = {
        "cp1": srv.loaders.modules.palplat_k3s.status(),
        "worker1": ag.loaders.modules.palplat_k3s.status(),
    }
    assert k3s_upgrade.plan(statuses)["steps"] == []
    srv.set_pillar(version=V2)
    ag.set_pillar(role="agent", server_url=url, version=V2)
    minions = {"cp1": srv, "worker1": ag}
    statuses = {n: m.loaders.modules.palplat_k3s.status() for n, m in minions.items()}
    the_plan = k3s_upgrade.plan(statuses)
    assert [(s["minion"], s["from"], s["to"]) for s in the_plan["steps"]] == [
        ("cp1", V1, V2),
        ("worker1", V1, V2),
    ]
    seen = []

    def call(minion, fun, *args, **kwargs):
        seen.append((minion, fun, *args[:1]))
        m = minions[minion]
        if fun == "state.sls":
            rets = m.sls(pillar=kwargs.get("pillar"))
            bad = {i: r["comment"] for i, r in rets.items() if r["result"] is not True}
            if bad:
                raise RuntimeError(bad)
            return rets
        if fun == "palplat_k3s.drain":
            # what the drain saw: the node cordoned
            out = m.loaders.modules.palplat_k3s.drain(*args, **kwargs)
            assert core.read_node("worker1").spec.unschedulable is True
            return out
        return getattr(m.loaders.modules.palplat_k3s, fun.split(".", 1)[1])(*args, **kwargs)

    # like kubectl drain: a pod no controller recreates is not evicted without the
    # pillar's consent; the upgrade stops at the drain, the agent keeps its version and
    # the pod runs on (the server was upgraded already: servers go first)
    with pytest.raises(k3s_upgrade.UpgradeError, match="drain worker1 refused") as exc:
        k3s_upgrade.execute(the_plan, call, timeout=120)
    assert "default/web" in str(exc.value) and "palplat:k3s:drain:force" in str(exc.value)
    assert ag.loaders.modules.palplat_k3s.version() == V1
    assert "web" in [p.metadata.name for p in core.list_namespaced_pod("default").items]
    srv.loaders.modules.palplat_k3s.uncordon("worker1")  # what the operator does after
    ag.set_pillar(role="agent", server_url=url, version=V2, drain={"force": True})
    statuses = {n: m.loaders.modules.palplat_k3s.status() for n, m in minions.items()}
    the_plan = k3s_upgrade.plan(statuses)
    assert the_plan["steps"] == [
        {"minion": "worker1", "node": "worker1", "role": "agent", "from": V1, "to": V2,
         "drain": {"force": True, "delete_emptydir_data": False}},
    ]  # fmt: skip
    seen.clear()
    t0 = time.monotonic()
    done = k3s_upgrade.execute(the_plan, call, timeout=120)
    print(f"\nordered upgrade of 1 server + 1 agent: {time.monotonic() - t0:.1f}s")
    assert all(d["ok"] for d in done)
    assert seen == [
        ("cp1", "palplat_k3s.cordon", "worker1"),
        ("cp1", "palplat_k3s.drain", "worker1"),
        ("worker1", "state.sls", "palplat.k3s"),
        ("cp1", "palplat_k3s.node_ready", "worker1"),
        ("cp1", "palplat_k3s.uncordon", "worker1"),
    ]
    assert ag.loaders.modules.palplat_k3s.version() == V2
    assert core.read_node("worker1").status.node_info.kubelet_version == V2
    assert not core.read_node("worker1").spec.unschedulable
    names = [p.metadata.name for p in core.list_namespaced_pod("default").items]
    assert "web" not in names
    assert srv.events() == ["start", "stop", "start"]
    assert ag.events() == ["start", "stop", "start"]


def test_external_mode_only_checks_kubeconfig(cluster, control_plane, tmp_path):
    m = cluster("ext")
    m.set_pillar(mode="external", kubeconfig=str(control_plane.kubeconfig), version=None)
    rets = m.sls()
    ok(rets)
    assert changed(rets) == {}
    assert "mode external" in rets["installed"]["comment"]
    assert "reaches a ready API server" in rets["kubeconfig"]["comment"]
    assert not m.fs("/usr/local/bin/k3s").exists()
    m.set_pillar(mode="external", kubeconfig=str(tmp_path / "missing"), version=None)
    rets = m.sls()
    assert (
        rets["kubeconfig"]["result"] is False and "does not exist" in rets["kubeconfig"]["comment"]
    )
