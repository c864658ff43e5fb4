"""A service's deployments from its Argo CD Application and Woodpecker pipelines: a
re-sync and a controller restart are not deployments, a failed sync and a Degraded
application are failures, a rollback fails what it rolls back; keys by hand."""

from __future__ import annotations

from palplat.dora import keys, records, timeline
from tests.unit.dora.service_scenario import (
    SERVICE_KEYS,
    T0,
    application_status,
    observations,
    pipeline_records,
)


def test_service_keys_by_hand():
    tl = timeline.services(observations() + pipeline_records())["shop"]
    k = keys.of(tl, T0 + 6000, 1)
    want = SERVICE_KEYS
    assert (k.deployments, k.attempts, k.failures, k.reworks, k.changes) == (
        want["deployments"], want["attempts"], want["failures"], want["reworks"],
        want["changes"],
    )  # fmt: skip
    assert sorted(k.lead_times) == sorted(want["lead_times"])
    assert k.recoveries == want["recoveries"]
    assert k.runs == want["runs"]
    assert tl.failed_since is None
    second = tl.ok_deployments[1]
    assert set(second.stages) == {"ci_created", "ci_finished", "sync_started", "healthy"}


def test_observations_dedupe_and_history_fills_gaps():
    obs = observations()
    # the same Healthy status seen twice is one record; Degraded: one per minute
    again = records.argo_observation(
        {"metadata": {"name": "shop"}, "status": application_status(0)}, T0 + 130, "shop"
    )
    assert again["id"] == obs[0]["id"]
    # only the last observation seen: Argo CD's history keeps the earlier successes (not
    # the Failed sync), the replay of g2 is a re-sync, the rollback still fails g4
    tl = timeline.services([obs[-1]])["shop"]
    assert [d.key[0] for d in tl.ok_deployments] == ["g1", "g2", "g4", "g2"]
    assert tl.ok_deployments[2].failed and tl.ok_deployments[3].rework
    assert "resync" in {o for _, o in tl.runs}


def test_pipeline_records_only_finished():
    assert records.pipeline_record("shop", {"number": 9, "status": "running"}) is None
    rec = pipeline_records()[0]
    assert rec["id"] == "pipe:shop:1" and rec["ct"] == T0 - 100 and rec["s"] == "success"


def test_an_application_never_synced_is_no_deployments_not_no_data():
    from palplat.dora import records as recs

    app = {"metadata": {"name": "idle"}, "status": {"health": {"status": "Unknown"}}}
    tl = timeline.services([recs.argo_observation(app, T0, "idle")])["idle"]
    assert keys.of(tl, T0 + 60, 1).state == keys.NO_DEPLOYMENTS
    assert keys.of(tl, T0 + 3 * 86400, 1).state == keys.NO_DATA
