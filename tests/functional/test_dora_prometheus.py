"""The DORA recording rules, alerts and dashboard against real Prometheus tools (Debian's
packages): promtool checks every rule and every dashboard expression and runs the rules on
synthetic series whose keys are computed by hand; node_exporter serves the metrics file
palplat writes, and what it serves is what the ledger says; a Prometheus scraping it
evaluates the rules to the keys of tests/unit/dora/scenario.py."""

from __future__ import annotations

import time
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from palplat.dora import bands, metrics, records, report, rules
from tests.support import prom
from tests.unit.dora.scenario import PLATFORM_KEYS, platform_records

why = prom.missing()
pytestmark = pytest.mark.skipif(why is not None, reason=str(why))

DAY = 86400
WEB = 'scope="platform",component="release/web"'
SCRAPE = 'instance="node1:9100",job="node"'


def _series(values_by_day: list[float]) -> str:
    return " ".join(f"{v:g}" for v in values_by_day)


def _counter(before: float, after: float, days: int = 41, step_day: int = 20) -> str:
    """``before`` until ``step_day``, then ``after`` (the window 10d..40d sees the step)."""
    return _series([before if d < step_day else after for d in range(days)])


def synthetic_tests() -> dict:
    """41 daily samples; at day 40 the 30-day window covers days 10..40. In the window, by
    hand: 6 deployments (8 - 2), 1 failed attempt, 2 failures (3 - 1), 1 rework, lead
    times 1800, 5000, 90000, 200000, 700000 s (one more before the window), recoveries
    3000 and 100000 s."""
    lead_before = {3600: 1, 86400: 1, 604800: 1, 2592000: 1, 15552000: 1, "+Inf": 1}
    lead_window = [1800, 5000, 90000, 200000, 700000]
    rec_window = [3000, 100000]
    series = []

    def add(name, labels, values):
        series.append({"series": f"{name}{{{labels},{SCRAPE}}}", "values": values})

    add("palplat_dora_deployments_total", WEB, _counter(2, 8))
    add("palplat_dora_failures_total", WEB, _counter(1, 3))
    add("palplat_dora_reworks_total", WEB, _counter(0, 1))
    add("palplat_dora_changes_total", WEB, _counter(1, 6))
    add("palplat_dora_recoveries_total", WEB, _counter(0, 2))
    add("palplat_dora_runs_total", WEB + ',outcome="failed"', _counter(0, 1))
    add("palplat_dora_runs_total", WEB + ',outcome="deployed"', _counter(2, 8))
    for le in list(bands.TIME_EDGES) + ["+Inf"]:
        edge = float("inf") if le == "+Inf" else le
        le_text = "+Inf" if le == "+Inf" else metrics._go(le)  # as the writer spells it
        in_lead = sum(1 for v in lead_window if v <= edge)
        add("palplat_dora_lead_time_seconds_bucket", WEB + f',le="{le_text}"',
            _counter(lead_before[le], lead_before[le] + in_lead))  # fmt: skip
        add("palplat_dora_recovery_time_seconds_bucket", WEB + f',le="{le_text}"',
            _counter(0, sum(1 for v in rec_window if v <= edge)))  # fmt: skip
    add("palplat_dora_lead_time_seconds_count", WEB, _counter(1, 6))
    add("palplat_dora_recovery_time_seconds_count", WEB, _counter(0, 2))
    add("palplat_dora_failed", WEB, _series([0] * 41))
    add(
        "palplat_dora_last_deployment_timestamp_seconds", WEB, _series([d * DAY for d in range(41)])
    )
    series.append({"series": f"palplat_dora_write_timestamp_seconds{{{SCRAPE}}}",
                   "values": _series([d * DAY for d in range(41)])})  # fmt: skip

    def sample(name, value, labels=WEB):
        return {"expr": name, "eval_time": "40d",
                "exp_samples": [{"labels": f"{name}{{{labels}}}", "value": value}]}  # fmt: skip

    lead_median_band = bands.level(bands.grade("lead_time", sorted(lead_window)[2]))
    exprs = [
        sample("palplat_dora:deployments:30d", 6),
        sample("palplat_dora:attempts:30d", 7),
        sample("palplat_dora:failures:30d", 2),
        sample("palplat_dora:deployment_frequency:30d", 6 / 30),
        sample("palplat_dora:deployment_frequency:band:30d", 3),  # >= once a week: High
        sample("palplat_dora:change_fail_rate:30d", 2 / 7),
        sample("palplat_dora:change_fail_rate:band:30d", 1),  # 29 % > 20 %: Low
        sample("palplat_dora:rework_rate:30d", 1 / 6),
        sample("palplat_dora:lead_time:count:30d", 5),
        sample("palplat_dora:lead_time:band:30d", lead_median_band),  # 90000 s: High
        sample("palplat_dora:recovery_time:band:30d", 4),  # lower median 3000 s: Elite
        sample("palplat_dora:scope_deployments:30d", 6, 'scope="platform"'),
        {"expr": "palplat_dora:deployments:30d", "eval_time": "5d",  # younger than 30 d
         "exp_samples": [{"labels": f"palplat_dora:deployments:30d{{{WEB}}}", "value": 2}]},
    ]  # fmt: skip
    assert lead_median_band == 3
    return {"interval": "1d", "input_series": series, "promql_expr_test": exprs}


def alert_tests() -> dict:
    """Every 5 minutes for 200 minutes: the writer wrote once at 0 and never again (stale
    after 2 h, firing 15 min later); release/web failed from 50 min; node2's textfile
    collector errs from 50 min."""
    return {
        "interval": "5m",
        "input_series": [
            {"series": f"palplat_dora_write_timestamp_seconds{{{SCRAPE}}}", "values": "0x40"},
            {"series": f"palplat_dora_failed{{{WEB},{SCRAPE}}}", "values": "0x10 1x30"},
            {"series": 'node_textfile_scrape_error{instance="node1:9100",job="node"}',
             "values": "0x40"},
            {"series": 'node_textfile_scrape_error{instance="node2:9100",job="node"}',
             "values": "0x10 1x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "150m", "alertname": "PalplatDoraWriterStale", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "instance": "node1:9100", "job": "node"},
                 "exp_annotations": rules.alerts()[0]["annotations"]}]},
            {"eval_time": "100m", "alertname": "PalplatDoraWriterStale", "exp_alerts": []},
            {"eval_time": "150m", "alertname": "PalplatDoraComponentFailed", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "instance": "node1:9100", "job": "node",
                                "scope": "platform", "component": "release/web"},
                 "exp_annotations": {
                     "summary": "platform release/web is in a failed state",
                     "description": rules.alerts()[1]["annotations"]["description"]}}]},
            {"eval_time": "40m", "alertname": "PalplatDoraComponentFailed", "exp_alerts": []},
            {"eval_time": "150m", "alertname": "PalplatDoraTextfileScrapeError", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "instance": "node2:9100", "job": "node"},
                 "exp_annotations": {
                     "summary": rules.alerts()[2]["annotations"]["summary"],
                     "description": "On node2:9100 the textfile collector fails: "
                     "palplat_dora.prom (or another file) is unreadable or malformed."}}]},
        ],
    }  # fmt: skip


def _rule_file(path, groups):
    # promtool's unit tests evaluate every evaluation_interval; the groups' own 1m would
    # make 41 simulated days slow
    path.write_text(yaml.safe_dump(
        {"groups": [{k: v for k, v in g.items() if k != "interval"} for g in groups]},
        sort_keys=False))  # fmt: skip


def test_rules_and_dashboard_pass_promtool_check(tmp_path):
    path = tmp_path / "rules.yml"
    _rule_file(path, rules.groups())
    cp = prom.promtool("check", "rules", str(path))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    # every dashboard expression parses (as a recording rule promtool checks)
    queries = rules.dashboard_queries()
    assert len(queries) >= 10
    dash = tmp_path / "dashboard-exprs.yml"
    dash.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"palplat_dashboard:q{i}", "expr": q}
                            for i, q in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    cp = prom.promtool("check", "rules", str(dash))
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_recording_rules_and_alerts_on_synthetic_series(tmp_path):
    _rule_file(tmp_path / "rules.yml", rules.groups())
    # the dashboard's expressions evaluate on the same series (no error, a value)
    dash_tests = [{"expr": f"count({q}) > 0", "eval_time": "40d",
                   "exp_samples": [{"labels": "{}", "value": 1}]}
                  for q in rules.dashboard_queries()]  # fmt: skip
    t = synthetic_tests()
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1h",
        "tests": [t, {**t, "promql_expr_test": dash_tests}],
    }, sort_keys=False))  # fmt: skip
    # the alerts in minutes: evaluated every minute
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [alert_tests()],
    }, sort_keys=False))  # fmt: skip
    for name in ("test.yml", "alerts.yml"):
        cp = prom.promtool("test", "rules", name, cwd=tmp_path)
        assert cp.returncode == 0, cp.stdout + cp.stderr


def _scraped(url: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(prom.http_get(url)):
        for s in fam.samples:
            if s.name.startswith("palplat_dora") or s.name == "node_textfile_scrape_error":
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_node_exporter_serves_the_file_and_prometheus_evaluates_it(tmp_path):
    """The metrics of the scenario (written by palplat), served by a real node_exporter,
    scraped by a real Prometheus evaluating the rules: the keys computed by hand."""
    now = time.time()
    recs = platform_records(shift=now - 8 * 3600 - 1_700_000_000.0)
    col = metrics.DoraCollector(report.timelines(recs), [(records.SERVICE, "shop")], len(recs),
                                now=now)  # fmt: skip
    textfiles = tmp_path / "textfile"
    metrics.write(str(textfiles), col)
    with prom.node_exporter(textfiles) as url:
        got = _scraped(url)
        lab = (("component", "release/web"), ("scope", "platform"))
        assert got[("palplat_dora_deployments_total", lab)] == PLATFORM_KEYS["deployments"]
        assert got[("palplat_dora_failures_total", lab)] == PLATFORM_KEYS["failures"]
        assert got[("palplat_dora_changes_total", lab)] == PLATFORM_KEYS["changes"]
        shop = (("component", "shop"), ("scope", "service"))
        assert got[("palplat_dora_deployments_total", shop)] == 0  # initialised at zero
        assert got[("node_textfile_scrape_error", ())] == 0
        target = url.split("/")[2]
        with prom.prometheus(tmp_path / "prom", [target], rules.groups()) as query:
            deadline = time.monotonic() + 60
            while not query("palplat_dora:lead_time:band:30d") and time.monotonic() < deadline:
                time.sleep(1)

            def one(expr):
                res = query(f'{expr}{{component="release/web"}}')
                assert len(res) == 1, (expr, res)
                return float(res[0]["value"][1])

            k = PLATFORM_KEYS
            assert one("palplat_dora:deployments:30d") == k["deployments"]
            assert one("palplat_dora:attempts:30d") == k["attempts"]
            assert one("palplat_dora:change_fail_rate:30d") == pytest.approx(0.4)
            assert one("palplat_dora:rework_rate:30d") == 0.5
            assert one("palplat_dora:lead_time:count:30d") == len(k["lead_times"])
            for key in ("deployment_frequency", "change_fail_rate", "lead_time", "recovery_time"):
                # 30 days here (the unit scenario grades over 1 day: frequency differs)
                val = {"deployment_frequency": k["deployments"] / 30,
                       "change_fail_rate": 0.4, "lead_time": 3600.0,
                       "recovery_time": 3600.0}[key]  # fmt: skip
                want = bands.level(bands.grade(key, val))
                assert one(f"palplat_dora:{key}:band:30d") == want, key
    urllib.request.urlcleanup()
