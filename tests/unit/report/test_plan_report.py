"""The plan report from state returns: kinds per item, exit codes, Markdown, masking."""

import uuid

from palplat import report
from palplat.report.collect import collect_plan
from palplat.secret import Secret


def ret(sls, sid, changes=None, result=True, comment="", run=0, **extra):
    return {
        "name": sid,
        "changes": changes or {},
        "result": result,
        "comment": comment,
        "__sls__": sls,
        "__id__": sid,
        "__run_num__": run,
        **extra,
    }


def test_kinds_from_changes_shapes():
    k = report.kinds_of
    assert k({"table": {"old": None, "new": "inet palplat"}}, None, "x") == {"add": ["table"]}
    assert k(
        {"rules": {"ssh": {"old": None, "new": ["tcp"]}, "web": {"old": ["a"], "new": None}}},
        None,
        "x",
    ) == {"add": ["rules:ssh"], "remove": ["rules:web"]}
    assert k({"grafana": {"action": "upgrade", "reasons": []}}, None, "x") == {
        "change": ["grafana"]
    }
    assert k({"loki": {"action": "install"}}, None, "x") == {"add": ["loki"]}
    assert k({"config.yaml": {"node-label": {"old": ["a"], "new": ["b"]}}}, None, "x") == {
        "change": ["config.yaml:node-label"]
    }
    # Salt's own states in test mode: result None with no changes is a pending change
    assert k({}, None, "curl") == {"change": ["curl"]}
    assert k({}, True, "curl") == {}


def test_declared_summary_wins():
    item = report.item_from(
        "m1",
        "palplat_kube_|-objs_|-objs_|-present",
        ret(
            "palplat.service",
            "objs",
            {"ConfigMap/n/a": {"data": {"old": 1, "new": 2}}},
            None,
            palplat={"add": ["ConfigMap/n/a"], "orphaned": ["Secret/n/old"]},
        ),
    )
    assert item.stage == "service" and item.kinds == {
        "add": ["ConfigMap/n/a"],
        "orphaned": ["Secret/n/old"],
    }
    assert item.counts == {"add": 1, "change": 0, "remove": 0, "orphaned": 1}


def test_exit_codes_and_markdown():
    rep = report.Report(minions=["m1"], graph={"a": {"needs": []}, "b": {"needs": ["a"]}})
    report.add_state_returns(
        rep,
        "m1",
        {
            "k1": ret(
                "palplat.platform",
                "palplat-platform-releases",
                {
                    "b": {
                        "action": "upgrade",
                        "objects": {"Deployment/x/b": {"spec.replicas": {"old": 1, "new": 2}}},
                    }
                },
                None,
                "would converge 1 release(s)",
                run=1,
            ),
            "k0": ret(
                "palplat.firewall", "palplat-firewall", {}, True, "in the desired state", run=0
            ),
        },
    )
    assert rep.exit_code == report.CHANGES
    assert [i.stage for i in rep.items] == ["firewall", "platform"]
    md = report.plan_markdown(rep)
    assert md.startswith(report.MARKER)
    assert "| platform | palplat-platform-releases | m1 |  | 1 |" in md
    assert "```mermaid" in md and 'b["b (changed)"]' in md and "a --> b" in md
    assert "class b changed" in md
    assert report.Report(minions=["m1"]).exit_code == report.OK
    bad = report.Report(minions=["m1"])
    report.add_state_returns(bad, "m1", ["Rendering SLS 'base:palplat.k3s' failed: boom"])
    assert bad.exit_code == report.ERRORS and "Rendering SLS" in report.plan_markdown(bad)


def test_long_diffs_fold_and_secrets_are_masked():
    s = Secret("plan-secret-" + uuid.uuid4().hex)
    rep = report.Report(minions=["m1"])
    many = {f"ConfigMap/n/c{i}": {"data.k": {"old": None, "new": i}} for i in range(20)}
    many["Secret/n/s"] = {"stringData.pw": {"old": None, "new": s.reveal()}}
    report.add_state_returns(
        rep, "m1", {"k": ret("palplat.service", "svc", many, None, f"uses {s.reveal()}")}
    )
    md = report.plan_markdown(rep)
    assert "<details>" in md and s.reveal() not in md
    assert s.reveal() not in repr(rep.as_dict())


class FakeCmd:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, fun, arg=(), kwarg=None):
        self.calls.append((fun, list(arg), kwarg))
        return self.answers[fun if isinstance(fun, str) else tuple(fun)]


FACTS = ("palplat_config.problems", "palplat_config.graph")


def test_collect_plan_stops_on_invalid_pillar_with_every_error():
    cmd = FakeCmd(
        {
            FACTS: {
                "m1": {
                    "palplat_config.problems": ["palplat:k3s:rol: unknown key", "palplat:x: bad"],
                    "palplat_config.graph": {},
                }
            }
        }
    )
    rep = collect_plan(cmd, ["m1", "m2"])
    assert rep.exit_code == report.ERRORS
    assert "m1: palplat:k3s:rol: unknown key" in rep.errors and "m1: palplat:x: bad" in rep.errors
    assert any(e.startswith("m2: did not answer") for e in rep.errors)
    assert [c[0] for c in cmd.calls] == [list(FACTS)]  # no state run on an invalid pillar


def test_collect_plan_runs_every_stage_in_one_test_job_and_plans_upgrades():
    cmd = FakeCmd(
        {
            FACTS: {"m1": {"palplat_config.problems": [], "palplat_config.graph": {}}},
            "state.sls": {
                "m1": {
                    "k": ret(
                        "palplat.k3s",
                        "palplat-k3s-installed",
                        {"binary": {"old": "v1", "new": "v2"}},
                        None,
                    )
                }
            },
        }
    )
    steps = {"steps": [{"minion": "m1", "node": "n1", "role": "server", "from": "v1", "to": "v2"}]}
    rep = collect_plan(cmd, ["m1"], k3s_plan=lambda: steps)
    assert cmd.calls[1] == (
        "state.sls",
        ["palplat"],
        {"test": True, "pillar": {"palplat_k3s_upgrade": True}},
    )
    assert [i.stage for i in rep.items] == ["k3s-upgrade", "k3s"]
    assert rep.exit_code == report.CHANGES
