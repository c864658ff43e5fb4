"""Real Prometheus parts for the DORA tests, from Debian's packages (``.ci/run`` installs
them): ``prometheus-node-exporter`` serving a textfile directory, ``promtool`` (rule checks
and rule unit tests) and ``prometheus`` (scrapes the exporter, evaluates the rules), each
on a free loopback port, stopped by the context managers."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

NODE_EXPORTER = ("prometheus-node-exporter", "node_exporter")


def binary(*names: str) -> str | None:
    for n in names:
        found = shutil.which(n) or (f"/usr/bin/{n}" if Path(f"/usr/bin/{n}").exists() else None)
        if found:
            return found
    return None


def missing() -> str | None:
    """Why the Prometheus tests cannot run (None: they can)."""
    need = {"promtool": binary("promtool"), "prometheus": binary("prometheus"),
            "node_exporter": binary(*NODE_EXPORTER)}  # fmt: skip
    absent = [k for k, v in need.items() if v is None]
    if absent:
        return (f"{', '.join(absent)} not installed (apt-get install prometheus "
                "prometheus-node-exporter; .ci/run does)")  # fmt: skip
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def _wait(url: str, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            http_get(url, timeout=2)
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"{what} did not start: {out[-2000:]}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def node_exporter(textfile_dir: Path):
    """node_exporter with only the textfile collector; yields its metrics URL."""
    port = free_port()
    proc = subprocess.Popen(
        [binary(*NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{port}",
         "--collector.disable-defaults", "--collector.textfile",
         f"--collector.textfile.directory={textfile_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait(url, proc, "node_exporter")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def prometheus(work: Path, targets: list[str], rule_groups: list[dict], every: str = "1s"):
    """A Prometheus scraping ``targets`` (host:port) and evaluating ``rule_groups`` every
    ``every``; yields a ``query(expr) -> [result]`` function."""
    work.mkdir(parents=True, exist_ok=True)
    groups = [{**g, "interval": every} for g in rule_groups]
    (work / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(work / "rules.yml")],
        "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": targets}]}],
    }))  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [binary("prometheus"), f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list[dict]:
        doc = json.loads(
            http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        )
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    try:
        _wait(f"{base}/-/ready", proc, "prometheus", timeout=60)
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )
