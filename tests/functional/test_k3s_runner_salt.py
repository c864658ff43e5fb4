"""The upgrade runner on a real Salt master with two real minions (a server and an agent),
each running the stand-in k3s under its own root: `salt-run palplat_k3s.upgrade` upgrades
the server, then cordons, drains, upgrades and uncordons the agent."""

from __future__ import annotations

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
def setup(salt_factories, tmp_path_factory):
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

    def write_pillar(version: str) -> None:
        common = {
            "version": version,
            "token": TOKEN,
            "service_manager": "processes",
            "source": {"url": rs.url},
            "ready_timeout": 120,
        }
        srv = dict(common, root=str(roots[srv_id]), config={"node-name": "srv"})
        agt = dict(
            common,
            root=str(roots[agt_id]),
            role="agent",
            server_url=f"https://127.0.0.1:{port}",
            config={"node-name": "agt"},
        )
        for name, k in (("srv", srv), ("agt", agt)):
            data = {"palplat": {"k3s": k, "gpu": {"enabled": False}}}
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
            minions[mid] = master.salt_minion_daemon(mid, overrides=minion_overrides())
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


def test_salt_run_upgrade_orders_server_then_drained_agent(setup):
    master, minions = setup["master"], setup["minions"]
    srv, agt = setup["srv"], setup["agt"]
    for mid in (srv, agt):
        ret = minions[mid].salt_call_cli(timeout=300).run("state.apply", "palplat.k3s")
        assert ret.returncode == 0, ret
    run = master.salt_run_cli(timeout=600)
    tgt = [f"tgt={srv},{agt}", "tgt_type=list"]

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
