"""palplat.helm.chart: values files, merged values, fingerprints, digests, repositories."""

from __future__ import annotations

import functools
import http.server
import os
import stat
import threading
from pathlib import Path

import pytest

from palplat import config, helm, redact
from palplat.errors import InputError, PalplatError
from palplat.model import Chart

CHARTS = Path(__file__).resolve().parents[2] / "fixtures" / "charts"


def rel(**kw):
    base = {"namespace": "ns", "chart": {"path": str(CHARTS / "cm")}, "values": {"a": 1}}
    base.update(kw)
    cfg = config.load(
        {"palplat": {"gpu": {"enabled": False}, "platform": {"releases": {"r": base}}}}
    )
    return cfg.platform.releases["r"]


def test_values_file_is_private_and_removed():
    with helm.values_file({"password": "x"}) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert '"password": "x"' in Path(path).read_text()
    assert not os.path.exists(path)


def test_merge_and_secret_values():
    r = rel(values={"a": {"b": 1, "c": 2}, "l": [1]}, secret_values={"a": {"c": "sv-secret-1"}})
    assert helm.merged_values(r) == {"a": {"b": 1, "c": "sv-secret-1"}, "l": [1]}
    assert "sv-secret-1" in redact.registered()


def test_fingerprint_changes_with_each_input():
    base = helm.fingerprint("path:/c", "1.0", "d1", {"a": 1})
    assert base == helm.fingerprint("path:/c", "1.0", "d1", {"a": 1})
    assert base != helm.fingerprint("path:/c", "1.1", "d1", {"a": 1})
    assert base != helm.fingerprint("path:/c", "1.0", "d2", {"a": 1})
    assert base != helm.fingerprint("path:/c", "1.0", "d1", {"a": 2})
    assert base != helm.fingerprint("path:/d", "1.0", "d1", {"a": 1})


def test_path_digest_follows_files(tmp_path):
    import shutil

    c = tmp_path / "c"
    shutil.copytree(CHARTS / "cm", c)
    d1 = helm.path_digest(str(c))
    assert d1 == helm.path_digest(str(c))
    (c / "templates" / "configmap.yaml").write_text("changed")
    assert helm.path_digest(str(c)) != d1
    with pytest.raises(InputError):
        helm.path_digest(str(tmp_path / "missing"))


def test_chart_args():
    assert helm.chart_args(Chart(path="/c")) == ["/c"]
    assert helm.chart_args(Chart(oci="oci://r/x", version="1")) == ["oci://r/x", "--version", "1"]
    args = helm.chart_args(Chart(repo="https://h/charts/", name="x", version="2"))
    assert args == [f"{helm.repo_name('https://h/charts')}/x", "--version", "2"]


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "index.yaml").write_text(
        "apiVersion: v1\nentries:\n  cm:\n  - name: cm\n    version: 0.2.0\n    digest: abc\n"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_repo_index(repo):
    idx = helm.RepoIndex()
    assert idx.entry(repo, "cm", "0.2.0")["digest"] == "abc"
    with pytest.raises(InputError, match="no version 9.9.9.*0.2.0"):
        idx.entry(repo, "cm", "9.9.9")
    with pytest.raises(InputError, match="not in repository"):
        idx.entry(repo, "nope", "1")
    with pytest.raises(PalplatError, match="unreachable"):
        helm.RepoIndex(timeout=2).entry("http://127.0.0.1:9", "cm", "1")
