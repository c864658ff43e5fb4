"""The DORA ledger on a real kube-apiserver: chunks, compare-and-swap under writers
racing from threads and from processes, a writer killed mid-way, the bound, the spool
while the API server cannot be reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from palplat import config, kube
from palplat.dora import api, ledger
from tests.support.saltenv import REPO

pytestmark = [pytest.mark.controlplane]


def recs(prefix: str, n: int, t0: float = 1_700_000_000.0) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "k": "run", "t": t0 + i, "run": f"{prefix}-{i}",
             "ok": True, "stages": {}} for i in range(n)]  # fmt: skip


def fresh(kubeconfig, namespace, **kw) -> ledger.Ledger:
    return ledger.Ledger(kube.Kube(kubeconfig), namespace, **kw)


def test_append_read_dedupe_and_chunks(kubeconfig, namespace, monkeypatch):
    monkeypatch.setattr(ledger, "CHUNK", 50)
    led = fresh(kubeconfig, namespace)
    assert led.read() == []
    assert led.append(recs("a", 120)) == 120
    assert led.append(recs("a", 130)) == 10  # the first 120 are there already
    chunks = led.chunks()
    assert [c["metadata"]["name"] for c in chunks] == [ledger.chunk_name(i) for i in range(3)]
    labels = chunks[0]["metadata"]["labels"]
    assert labels[kube.OWNER_LABEL] == ledger.OWNER and labels[kube.MANAGED_BY_LABEL] == "palplat"
    got = led.read()
    assert [r["id"] for r in got] == [f"a-{i}" for i in range(130)]


def test_two_writers_racing_lose_nothing(kubeconfig, namespace, monkeypatch):
    monkeypatch.setattr(ledger, "CHUNK", 40)
    errors = []
    leds = [fresh(kubeconfig, namespace) for _ in range(4)]

    def write(i):
        try:
            for j in range(10):
                leds[i].append(recs(f"w{i}-{j}", 5))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = {r["id"] for r in fresh(kubeconfig, namespace).read()}
    assert len(got) == 4 * 10 * 5
    assert sum(led.stats["conflicts"] for led in leds) > 0  # they did race


WRITER = """
import sys, time
sys.path.insert(0, {utils!r})
from palplat import kube
from palplat.dora import ledger
led = ledger.Ledger(kube.Kube({kc!r}), {ns!r})
i = 0
while True:
    led.append([{{"id": f"p{tag}-{{i}}", "k": "run", "t": 1.0 + i, "run": str(i)}}])
    print(i, flush=True)
    i += 1
"""


def test_processes_racing_and_one_killed_mid_way(kubeconfig, namespace, tmp_path):
    """Two writer processes append in a loop; one is killed with SIGKILL at some point in
    its request: every record either process acknowledged is there and the ledger reads."""
    procs = []
    for tag in ("x", "y"):
        script = WRITER.format(utils=str(REPO / "_utils"), kc=kubeconfig, ns=namespace, tag=tag)
        procs.append(subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT,
                                      text=True))  # fmt: skip
    early = {"x": [], "y": []}
    for tag, p in zip(("x", "y"), procs, strict=True):
        while len(early[tag]) < 5:  # both are writing (python and kubernetes imported)
            line = p.stdout.readline()
            assert line, f"writer {tag} ended"
            assert line.strip().isdigit(), f"writer {tag}: {line}{p.stdout.read()[-3000:]}"
            early[tag].append(int(line))
    os.kill(procs[0].pid, signal.SIGKILL)  # wherever it is, mid-request or not
    time.sleep(1)
    procs[1].terminate()
    acked = {}
    for tag, p in zip(("x", "y"), procs, strict=True):
        out, _ = p.communicate(timeout=20)
        acked[tag] = early[tag] + [int(x) for x in out.split() if x.isdigit()]
    got = {r["id"] for r in fresh(kubeconfig, namespace).read()}
    for tag, done in acked.items():
        assert done, f"writer {tag} wrote nothing"
        assert {f"p{tag}-{i}" for i in done} <= got


def test_bound_drops_the_oldest_chunks(kubeconfig, namespace, monkeypatch):
    monkeypatch.setattr(ledger, "CHUNK", 100)
    led = fresh(kubeconfig, namespace, max_records=250)
    for i in range(5):
        led.append(recs(f"b{i}", 100))
    got = led.read()
    assert 250 <= len(got) <= 350 and got[-1]["id"] == "b4-99"
    assert "b0-0" not in {r["id"] for r in got} and led.stats["pruned"] >= 2


def test_spool_while_the_cluster_is_away(kubeconfig, namespace, tmp_path):
    pillar = {
        "dora": {"namespace": namespace, "textfile_dir": str(tmp_path / "tf")},
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
    }
    cfg = config.load(pillar, key=None)
    spool = ledger.Spool(str(tmp_path / "spool" / "dora-spool.jsonl"))

    def away():
        raise kube.Unreachable("cannot reach the Kubernetes API server (test)")

    out = api.append(cfg, away, spool, recs("s", 3))
    assert out["spooled"] == 3 and "wait in" in out["comment"]
    assert oct(os.stat(spool.path).st_mode & 0o777) == "0o600"
    out = api.append(cfg, lambda: kube.Kube(kubeconfig), spool, recs("t", 2))
    assert out["from_spool"] == 3 and out["added"] == 2 and spool.pending() == []
    got = {r["id"] for r in ledger.Ledger(kube.Kube(kubeconfig), namespace).read()}
    assert {"s-0", "s-1", "s-2", "t-0", "t-1"} <= got
    text = (tmp_path / "tf" / "palplat_dora.prom").read_text()
    assert "palplat_dora_ledger_records 5.0" in text
    assert json.loads(json.dumps(out))  # plain data for Salt
