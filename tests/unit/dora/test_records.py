"""Records from the returns of a palplat.full orchestration (the shapes saltmod gives),
CI's commits, and the metrics text written from them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from palplat.dora import ci, metrics, records, report
from tests.unit.dora.scenario import PLATFORM_KEYS, platform_records

NOW = 1_700_000_000.0


def stage(run_num, sid, result=True, minions=None, comment="", jid=None):
    ret = {
        "__id__": sid, "__run_num__": run_num, "result": result, "comment": comment,
        "changes": {"out": "highstate", "ret": minions} if minions else {},
        "start_time": "00:00:01.000000", "duration": 1500.0, "name": sid,
    }  # fmt: skip
    if jid:
        ret["__jid__"] = jid
    return {f"salt_|-{sid}_|-{sid}_|-state": ret}


def minion_state(sid, sls, result=True, changes=None, comment=""):
    return {
        f"x_|-{sid}_|-{sid}_|-y": {
            "__id__": sid, "__sls__": sls, "result": result, "changes": changes or {},
            "comment": comment,
        }
    }  # fmt: skip


def test_from_orchestration_platform_failure_rollback_and_blocked():
    platform_ret = minion_state(
        "palplat-platform-releases", "palplat.platform", False,
        {"web": {"action": "upgrade"}, "objects:access": {"Ingress/x/palplat-web": {}}},
        "palplat:platform:releases:api: helm upgrade of release x/api failed and was rolled "
        "back; the release is now at revision 3 (deployed). helm said: timed out\n"
        "palplat:platform:releases:worker: not converged: it needs api, which failed\n"
        "converged 2 item(s)",
    )  # fmt: skip
    running = {
        **stage(0, "palplat-validate", jid="20250101000000000001"),
        **stage(1, "palplat-host", jid="20250101000000000002"),
        **stage(2, "palplat-firewall", minions={"m1": minion_state(
            "palplat-firewall-nftables", "palplat.firewall", True, {"rules": {"old": 1}})}),
        **stage(3, "palplat-firewall-confirm"),
        **stage(4, "palplat-k3s"),
        **stage(5, "palplat-gpu"),
        **stage(6, "palplat-platform", False, {"m1": platform_ret}, "Run failed on minions: m1"),
        **stage(7, "palplat-service", False, None, "One or more requisite failed: x"),
        **stage(8, "palplat-dora"),
    }  # fmt: skip
    recs = records.from_orchestration(running, now=NOW, revision="abc", commits=[("abc", NOW - 60)])
    run, *applies = recs
    assert run["run"] == "20250101000000000001" and run["rev"] == "abc" and not run["ok"]
    assert run["stages"] == {
        "validate": "ok", "host": "ok", "firewall": "changed", "firewall-confirm": "ok",
        "k3s": "ok", "gpu": "ok", "platform": "failed", "service": "skipped",
    }  # fmt: skip
    got = {a["c"]: (a["o"], a["rb"], a["act"]) for a in applies}
    assert got == {
        "firewall": ("changed", False, ["apply"]),
        "release/web": ("changed", False, ["upgrade"]),
        "objects/access": ("changed", False, ["apply"]),
        "release/api": ("failed", True, []),
        "release/worker": ("skipped", False, []),
    }
    api = next(a for a in applies if a["c"] == "release/api")
    assert "rolled back" in api["why"] and api["id"] == "apply:20250101000000000001:release/api"


def test_a_skipped_confirmation_is_not_a_firewall_failure():
    running = {
        **stage(0, "palplat-validate", False, None, "Running function ... failed"),
        **stage(1, "palplat-firewall", False, None, "One or more requisite failed: x"),
        **stage(2, "palplat-firewall-confirm", False, None, "One or more requisite failed: y"),
    }  # fmt: skip
    run, *applies = records.from_orchestration(running, now=NOW)
    assert applies == [] and run["stages"]["firewall-confirm"] == "skipped" and not run["ok"]


def test_firewall_rolled_back_by_its_timer():
    running = {
        **stage(0, "palplat-firewall", minions={"m1": minion_state(
            "palplat-firewall-nftables", "palplat.firewall", True, {"rules": {}})}),
        **stage(1, "palplat-firewall-confirm", False, {"m1": "ERROR: the firewall change to "
                "palplat was rolled back at 10:00:12 because it was not confirmed in time"},
                "Run failed on minions: m1"),
    }  # fmt: skip
    _, fw = records.from_orchestration(running, now=NOW)
    assert (fw["c"], fw["o"], fw["rb"]) == ("firewall", "failed", True)


def test_ci_pillar_and_reverts():
    p = ci.orchestrate_pillar(
        "c3", [("c3", 30, 'Revert "x"'), ("c2", 20), {"sha": "c1", "time": 10}]
    )
    assert p == {"palplat_dora": {"revision": "c3", "commits": [
        ["c3", 30.0, 1], ["c2", 20.0, 0], ["c1", 10.0, 0]]}}  # fmt: skip


def test_metrics_text_by_hand():
    recs = platform_records()
    tls = report.timelines(recs)
    col = metrics.DoraCollector(tls, [("service", "shop")], len(recs), now=NOW)
    fams = {f.name: f for f in text_string_to_metric_families(metrics.text(col))}
    lab = {"scope": "platform", "component": "release/web"}

    def value(fam, sample, **extra):
        want = {**lab, **extra}
        return next(s.value for s in fams[fam].samples
                    if s.name == sample and s.labels == want)  # fmt: skip

    assert value("palplat_dora_deployments", "palplat_dora_deployments_total") == 4
    assert value("palplat_dora_failures", "palplat_dora_failures_total") == 2
    assert value("palplat_dora_changes", "palplat_dora_changes_total") == 5
    assert value("palplat_dora_runs", "palplat_dora_runs_total", outcome="noop") == 1
    h = "palplat_dora_lead_time_seconds"
    assert value(h, h + "_bucket", le="3600.0") == 3  # 1800, 1800, 3600
    assert value(h, h + "_bucket", le="86400.0") == 5
    assert value(h, h + "_count") == len(PLATFORM_KEYS["lead_times"])
    assert value("palplat_dora_failed", "palplat_dora_failed") == 0
    # a known component with nothing recorded: every series at zero, not absent
    shop = [s for s in fams["palplat_dora_deployments"].samples if s.labels["component"] == "shop"]
    assert [s.value for s in shop] == [0]
    assert fams["palplat_dora_write_timestamp_seconds"].samples[0].value == NOW
    assert not any(s.name.endswith("_created") for f in fams.values() for s in f.samples)


def test_metrics_written_atomically(tmp_path):
    col = metrics.DoraCollector(report.timelines(platform_records()), now=NOW)
    path = metrics.write(str(tmp_path / "tf"), col)
    assert path.endswith("palplat_dora.prom") and sorted(
        p.name for p in (tmp_path / "tf").iterdir()
    ) == ["palplat_dora.prom"]


def test_palplat_ci_passes_revision_and_commits_as_data(tmp_path):
    """``palplat-ci revision`` (the agent's user) reads git log; ``apply --dora`` takes
    only a revision and commit rows from that file."""
    import json as _json
    import subprocess

    from palplat import pipeline

    repo = tmp_path / "pillar"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}  # fmt: skip
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    for msg in ("first", 'Revert "first"'):
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", msg],
                       check=True, env=env)  # fmt: skip
    out = tmp_path / "dora.json"
    assert pipeline.revision(str(repo), str(out)) == 0
    given = _json.loads(out.read_text())["palplat_dora"]
    assert len(given["commits"]) == 2 and given["commits"][0][2] == 1  # the revert
    arg = pipeline._dora_pillar(str(out))
    assert arg and _json.loads(arg[0][len("pillar=") :])["palplat_dora"] == given
    out.write_text(_json.dumps({"palplat_dora": {"revision": "$(rm -rf /)", "commits": []}}))
    assert pipeline._dora_pillar(str(out)) == []
