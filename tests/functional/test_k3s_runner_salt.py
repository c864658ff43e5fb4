"""The upgrade runner on a real Salt master with two real minions (a server and an agent),
each running the stand-in k3s under its own root: `salt-run palplat_k3s.upgrade` upgrades
the server, then cordons, drains, upgrades and uncordons the agent; `salt-run palplat.plan`
shows a one-key k3s config change on the server alone, and a version bump as the upgrade
will run it (server first, then the agent)."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from palplat import units
from tests.support import testenv
from tests.support.fake_k3s import ReleaseServer
from tests.support.saltenv import master_overrides, minion_overrides

pytestmark = [pytest.mark.salt, pytest.mark.controlplane, pytest.mark.slow]

V1, V2 = "v1.33.5+k3s1", "v1.33.6+k3s1"
TOKEN = "k3s-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def setup(salt_factories, tmp_path_factory, helm_bin):
    missing = testenv.missing_bins()
    if missing:
        pytest.skip(f"{', '.join(missing)} not built: run tools/build-testbin")
    base = tmp_path_factory.mktemp("k3s-salt")
    pillar = base / "pillar"
    pillar.mkdir()
    suffix = uuid.uuid4().hex[:6]
    srv_id, agt_id = f"k3s-srv-{suffix}", f"k3s-agt-{suffix}"
    roots = {srv_id: base / "srv", agt_id: base / "agt"}
    # the stand-in serves its supervisor on the port it finds here: known before it starts
    port = testenv.free_port()
    sup = roots[srv_id] / "var/lib/rancher/k3s/server"
    sup.mkdir(parents=True)
    (sup / "supervisor-port").write_text(str(port))
    rs = ReleaseServer().start()
    for v in (V1, V2):
        rs.add_release(v)

    def write_pillar(version: str, srv_extra: dict | None = None) -> None:
        common = {
            "version": version,
            "token": TOKEN,
            "service_manager": "processes",
            "source": {"url": rs.url},
            "ready_timeout": 120,
        }
        srv = dict(
            common, root=str(roots[srv_id]), config={"node-name": "srv", **(srv_extra or {})}
        )
        agt = dict(
            common,
            root=str(roots[agt_id]),
            role="agent",
            server_url=f"https://127.0.0.1:{port}",
            config={"node-name": "agt"},
        )
        for name, k in (("srv", srv), ("agt", agt)):
            # the k3s stage alone: no host settings, no firewall, GPU off
            data = {
                "palplat": {
                    "host": {"manage": False},
                    "firewall": {"enabled": False},
                    "k3s": k,
                    "gpu": {"enabled": False},
                }
            }
            (pillar / f"{name}.sls").write_text(yaml.safe_dump(data))
        (pillar / "top.sls").write_text(
            yaml.safe_dump({"base": {srv_id: ["srv"], agt_id: ["agt"]}})
        )

    write_pillar(V1)
    master = salt_factories.salt_master_daemon(
        f"k3s-master-{suffix}", overrides=master_overrides(pillar)
    )
    with master.started(start_timeout=120):
        minions = {}
        for mid in (srv_id, agt_id):
            minions[mid] = master.salt_minion_daemon(
                mid, overrides=minion_overrides(**{"palplat.helm_bin": helm_bin})
            )
        with minions[srv_id].started(start_timeout=120), minions[agt_id].started(start_timeout=120):
            for m in minions.values():
                assert m.salt_call_cli(timeout=180).run("saltutil.sync_all").returncode == 0
            assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
            try:
                yield {
                    "master": master,
                    "minions": minions,
                    "srv": srv_id,
                    "agt": agt_id,
                    "write_pillar": write_pillar,
                    "roots": roots,
                }
            finally:
                for root in roots.values():
                    pm = units.Processes(root)
                    for unit in ("k3s.service", "k3s-agent.service"):
                        pm.stop(unit)
                rs.stop()


def _refresh(setup):
    for m in setup["minions"].values():
        assert (
            m.salt_call_cli(timeout=60).run("saltutil.refresh_pillar", "wait=True").returncode == 0
        )


def _changed(data):
    return {
        (i["minion"], i["stage"], i["item"]): i
        for i in data["report"]["items"]
        if any(i["counts"].values())
    }


def _k3s_applied(setup):
    """``palplat.k3s`` applied on both minions; the runner CLI and the two-minion target."""
    master, minions = setup["master"], setup["minions"]
    srv, agt = setup["srv"], setup["agt"]
    for mid in (srv, agt):
        ret = minions[mid].salt_call_cli(timeout=300).run("state.apply", "palplat.k3s")
        assert ret.returncode == 0, ret
    run = master.salt_run_cli(timeout=600)
    return master, minions, srv, agt, run, [f"tgt={srv},{agt}", "tgt_type=list"]


def test_plan_shows_one_k3s_config_key_then_the_upgrade_order(setup):
    master, minions, srv, agt, run, tgt = _k3s_applied(setup)

    ret = run.run("palplat.plan", *tgt)
    assert ret.returncode == 0, ret.stdout
    assert ret.data["report"]["summary"] == dict.fromkeys(
        ("add", "change", "remove", "orphaned"), 0
    )

    # one k3s config key on the server: that key, on that minion, nothing else
    setup["write_pillar"](V1, srv_extra={"node-label": ["tier=gold"]})
    _refresh(setup)
    try:
        ret = run.run("palplat.plan", *tgt)
        assert ret.returncode == 2, ret.stdout
        changed = _changed(ret.data)
        # the config file gets the key; the unit restarts to read it; nothing else
        assert set(changed) == {
            (srv, "k3s", "palplat-k3s-configured"),
            (srv, "k3s", "palplat-k3s-running"),
        }, changed
        item = changed[(srv, "k3s", "palplat-k3s-configured")]
        text = json.dumps(item["changes"])
        assert "node-label" in text and "tier=gold" in text, item
        assert "node-name" not in text, item  # only the changed key
        assert TOKEN not in ret.stdout
        assert "node-label" in ret.data["markdown"]
    finally:
        setup["write_pillar"](V1)
        _refresh(setup)

    # a version bump: planned as `palplat_k3s.upgrade` will run it, server first
    setup["write_pillar"](V2)
    _refresh(setup)
    try:
        ret = run.run("palplat.plan", *tgt)
        assert ret.returncode == 2, ret.stdout
        steps = [i for i in ret.data["report"]["items"] if i["stage"] == "k3s-upgrade"]
        assert [(i["minion"], i["item"]) for i in steps] == [
            (srv, "upgrade srv"),
            (agt, "upgrade agt"),
        ], steps
        assert all(i["changes"]["version"] == {"old": V1, "new": V2} for i in steps)
        assert TOKEN not in ret.stdout
    finally:
        setup["write_pillar"](V1)
        _refresh(setup)
    assert run.run("palplat.plan", *tgt).returncode == 0

    # status: both nodes, from the server's view; the agent adds no cluster-wide rows
    ret = run.run("palplat.status", *tgt)
    assert ret.returncode == 0, ret.stdout
    nodes = {n["node"]: n for n in ret.data["status"]["nodes"]}
    assert set(nodes) == {"srv", "agt"} and all(n["ready"] for n in nodes.values()), nodes
    assert ret.data["status"]["errors"] == []


def test_salt_run_upgrade_orders_server_then_drained_agent(setup):
    master, minions, srv, agt, run, tgt = _k3s_applied(setup)

    ret = run.run("palplat_k3s.upgrade", *tgt)
    assert ret.data["result"] is True and "pinned version" in ret.data["comment"], ret

    setup["write_pillar"](V2)
    for mid in (srv, agt):
        assert minions[mid].salt_call_cli(timeout=60).run("saltutil.refresh_pillar").returncode == 0
    # outside the runner, palplat.k3s refuses the version change
    ret = minions[agt].salt_call_cli(timeout=120).run("state.apply", "palplat.k3s")
    assert ret.returncode != 0 and "salt-run palplat_k3s.upgrade" in str(ret.data)

    ret = run.run("palplat_k3s.upgrade", *tgt, "test=True")
    assert ret.data["result"] is None, ret
    assert [s["minion"] for s in ret.data["changes"]["steps"]] == [srv, agt]

    ret = run.run("palplat_k3s.upgrade", *tgt)
    assert ret.data["result"] is True, ret
    actions = [(d["minion"], d["action"].split(" (")[0]) for d in ret.data["changes"]["done"]]
    assert actions == [
        (srv, "apply palplat.k3s"),
        (srv, f"check node srv Ready at {V2}"),
        (srv, "cordon agt"),
        (srv, "drain agt"),
        (agt, "apply palplat.k3s"),
        (srv, f"check node agt Ready at {V2}"),
        (srv, "uncordon agt"),
    ]
    for mid in (srv, agt):
        got = minions[mid].salt_call_cli(timeout=60).run("palplat_k3s.version")
        assert got.data == V2
    assert TOKEN not in str(ret.data)
    # a second run has nothing to do
    ret = run.run("palplat_k3s.upgrade", *tgt)
    assert ret.data["result"] is True and ret.data["changes"] == {}
