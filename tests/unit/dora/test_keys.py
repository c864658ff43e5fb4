"""The five keys of a platform component's history and of a service's, against the
numbers computed by hand in tests/unit/dora/scenario.py."""

from __future__ import annotations

import pytest

from palplat.dora import bands, keys, report, timeline
from tests.unit.dora.scenario import PLATFORM_KEYS, T0, H, platform_records


def test_platform_keys_by_hand():
    tl = timeline.platform(platform_records())["release/web"]
    k = keys.of(tl, T0 + 8 * H, 1)
    want = PLATFORM_KEYS
    assert (k.deployments, k.attempts, k.failures, k.reworks, k.changes) == (
        want["deployments"], want["attempts"], want["failures"], want["reworks"],
        want["changes"],
    )  # fmt: skip
    assert sorted(k.lead_times) == sorted(want["lead_times"])
    assert sorted(k.recoveries) == sorted(want["recoveries"])
    assert k.runs == want["runs"]
    assert k.lead_time == 3600 and k.recovery_time == 3600
    assert k.change_fail_rate == pytest.approx(0.4) and k.rework_rate == 0.5
    assert k.frequency == 4
    row = k.as_dict(2024)
    assert {n: v["band"] for n, v in row["keys"].items()} == want["bands"]
    assert row["state"] == keys.MEASURED and not row["failed_now"]
    first = tl.deployments[0]
    assert first.first and first.changes == [] and first.lead_times == []


def test_window_no_deployments_and_no_data():
    tl = timeline.platform(platform_records())["release/web"]
    # a window that holds only r5 (drift repair) and r6 (no-op): runs, no deployment
    k = keys.of(tl, T0 + 6.5 * H, 2.4 / 24)
    assert k.state == keys.NO_DEPLOYMENTS and k.deployments == 0 and k.frequency == 0
    assert k.runs == {"drift_repair": 1, "noop": 1}
    assert keys.of(tl, T0 - 10 * 86400, 1).state == keys.NO_DATA


def test_report_rows_and_text():
    rep = report.build(platform_records(), now=T0 + 8 * H, days=1)
    total, web = rep["platform"]
    assert total["component"] == "(all)" and web["component"] == "release/web"
    assert total["deployments"] == web["deployments"] == 4
    text = report.render(rep)
    assert "release/web" in text and "Elite" in text and "40%" in text
    md = report.render(rep, markdown=True)
    assert "| component |" in md


def test_mark_outside_the_window_is_not_counted():
    recs = platform_records()
    recs.append(__import__("palplat.dora.records", fromlist=["mark"]).mark(
        "platform", "release/web", T0 + 9 * H, "late"))  # fmt: skip
    tl = timeline.platform(recs)["release/web"]
    assert [m["why"] for m in tl.ignored_marks] == ["late"]  # r7 was 2 h earlier


def test_revert_fails_the_deployment_it_reverts():
    from tests.unit.dora.scenario import apply, run

    recs = [
        run("a", T0, "a" * 8, [("a" * 8, T0 - 60)]),
        apply("a", T0, "firewall", "changed", "a" * 8),
        run("b", T0 + 600, "b" * 8, [("b" * 8, T0 + 300), ("a" * 8, T0 - 60)]),
        apply("b", T0 + 600, "firewall", "changed", "b" * 8),
        run(
            "c",
            T0 + 1200,
            "c" * 8,
            [("c" * 8, T0 + 900, 'Revert "open port 8080"'), ("b" * 8, T0 + 300)],
        ),  # fmt: skip
        apply("c", T0 + 1200, "firewall", "changed", "c" * 8),
    ]
    tl = timeline.platform(recs)["firewall"]
    a, b, c = tl.deployments
    assert b.failed and b.why == "reverted" and c.rework and c.recovery == 600
    assert tl.failed_since is None


@pytest.mark.parametrize(
    ("key", "value", "year", "band"),
    [
        ("change_fail_rate", 0.05, 2024, "Elite"),
        ("change_fail_rate", 0.10, 2024, "High"),  # 2024 sorted: High <= 10 %
        ("change_fail_rate", 0.15, 2024, "Medium"),
        ("change_fail_rate", 0.15, 2023, "Medium"),
        ("change_fail_rate", 0.21, 2024, "Low"),
        ("recovery_time", 3 * 86400, 2024, "Medium"),  # the gap up to Low's one week
        ("lead_time", 86400, 2024, "Elite"),
        ("lead_time", 40 * 86400, 2023, "Low"),
        ("deployment_frequency", 1 / 7, 2024, "High"),
        ("deployment_frequency", 1 / 31, 2024, "Low"),
        ("rework_rate", 0.3, 2024, None),
    ],
)
def test_bands(key, value, year, band):
    assert bands.grade(key, value, year) == band
    assert bands.level(band) == (None if band is None else 4 - bands.BANDS.index(band))


def test_changes_are_the_commits_since_the_component_last_matched_the_pillar():
    """The firewall deployed at c1; runs at c2..c4 had nothing for it (their commits did
    not touch it); c5 failed; c6 deploys: its changes are c5 and c6, not c2..c4."""
    from tests.unit.dora.scenario import apply, run

    c = [(f"c{i}" * 4, T0 + i * 60) for i in range(1, 7)]
    hist = lambda n: list(reversed(c[:n]))  # noqa: E731 - newest first
    recs = [run("1", T0 + 100, c[0][0], hist(1), {"firewall": "changed"}),
            apply("1", T0 + 100, "firewall", "changed", c[0][0])]  # fmt: skip
    for i in (2, 3, 4):
        recs.append(run(str(i), T0 + i * 100, c[i - 1][0], hist(i), {"firewall": "ok"}))
    recs += [
        run("5", T0 + 500, c[4][0], hist(5), {"firewall": "failed"}),
        apply("5", T0 + 500, "firewall", "failed", c[4][0], (), rb=True),
        run("6", T0 + 600, c[5][0], hist(6), {"firewall": "changed"}),
        apply("6", T0 + 600, "firewall", "changed", c[5][0]),
    ]
    tl = timeline.platform(recs)["firewall"]
    last = tl.deployments[-1]
    assert [sha for sha, _ in last.changes] == [c[5][0], c[4][0]]
    assert last.recovery == 100 and last.rework
    assert tl.quiet["noop"] == [T0 + 200, T0 + 300, T0 + 400]
