"""palplat.helm without a cluster: argv building, values files, fingerprints, the store."""

from __future__ import annotations

import functools
import http.server
import os
import stat
import threading
from pathlib import Path

import pytest

from palplat import config, helm, proc, redact
from palplat.errors import InputError, PalplatError
from palplat.model import Chart

CHARTS = Path(__file__).resolve().parents[1] / "fixtures" / "charts"


class FakeRunner:
    """Stands in for proc.run: records argv/stdin, checks the argv rule proc.run enforces."""

    def __init__(self, stdout="[]"):
        self.calls = []
        self.stdout = stdout

    def __call__(self, argv, *, input=None, env=None, timeout=None):  # noqa: A002
        for a in argv:
            assert not redact.contains_secret(a), f"secret in argv: {argv}"
        self.calls.append({"argv": list(argv), "input": input, "env": env})
        return proc.Result(list(argv), 0, self.stdout, "")


def rel(**kw):
    base = {"namespace": "ns", "chart": {"path": str(CHARTS / "cm")}, "values": {"a": 1}}
    base.update(kw)
    cfg = config.load(
        {"palplat": {"gpu": {"enabled": False}, "platform": {"releases": {"r": base}}}}
    )
    return cfg.platform.releases["r"]


def test_list_parses_json_and_passes_kubeconfig():
    run = FakeRunner('[{"name":"a","namespace":"n","revision":"2","status":"deployed"}]')
    h = helm.Helm("/bin/helm", "/kc", runner=run, env={"HELM_CACHE_HOME": "/c"})
    assert h.list_releases() == {
        ("n", "a"): {"name": "a", "namespace": "n", "revision": "2", "status": "deployed"}
    }
    argv = run.calls[0]["argv"]
    assert argv[:2] == ["/bin/helm", "list"] and "--all-namespaces" in argv
    assert argv[-2:] == ["--kubeconfig", "/kc"]
    assert run.calls[0]["env"] == {"HELM_CACHE_HOME": "/c"}


def test_registry_password_goes_through_stdin():
    from palplat.secret import Secret

    pw = Secret("registry-pass-77").reveal()
    run = FakeRunner("")
    helm.Helm("helm", runner=run).registry_login("reg.example", "bot", pw)
    call = run.calls[0]
    assert "--password-stdin" in call["argv"] and pw not in call["argv"]
    assert call["input"] == pw


def test_upgrade_argv_atomic_and_dry_run():
    run = FakeRunner('{"version": 3, "manifest": ""}')
    h = helm.Helm("helm", runner=run)
    kw = dict(atomic=True, wait=True, timeout=60, history_max=4, create_namespace=True)
    assert h.upgrade("r", "ns", ["./c"], "/tmp/v.yaml", **kw)["version"] == 3
    a = run.calls[0]["argv"]
    for flag in (
        "--install",
        "--atomic",
        "--wait",
        "--reset-values",
        "--skip-crds",
        "--create-namespace",
    ):
        assert flag in a
    assert a[a.index("--history-max") + 1] == "4" and a[a.index("--timeout") + 1] == "60s"
    assert a[a.index("--values") + 1] == "/tmp/v.yaml"
    h.upgrade("r", "ns", ["./c"], "/tmp/v.yaml", **kw, dry_run="server")
    a = run.calls[1]["argv"]
    assert "--dry-run=server" in a and "--atomic" not in a and "--wait" not in a


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


def test_store_roundtrip():
    state = {"fingerprint": "f", "revision": 3, "objects": [{"kind": "ConfigMap"}]}
    m = helm.store_manifest("rel", "ns", state)
    assert m["metadata"]["labels"][helm.STORE_LABEL] == "rel"
    assert helm.decode_state(m) == state
    assert helm.decode_state({"data": {"state": "garbage"}}) == {}


def test_parse_manifest_and_baseline():
    text = """
---
# Source: x
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
---
apiVersion: v1
kind: ConfigMapList
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {x: "1"}}
"""
    objs = helm.parse_manifest(text, "ns")
    assert [o["kind"] for o in objs] == ["Secret", "ConfigMap"]
    assert all(o["metadata"]["namespace"] == "ns" for o in objs)
    assert helm.shape_of(objs[0])["data"] == {"k": "dg=="}
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "9", "labels": {"x": "y"}},
        "data": {"x": "1", "extra": "2"},
    }
    assert helm.baseline(live, objs[1]) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "ns"},
        "data": {"x": "1"},
    }


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


def test_long_helm_call_reports_progress():
    import time

    from palplat import loaderkit

    events = []
    ctx = helm.Context(helm=None, kube=None)
    ctx.progress = loaderkit.Progress(lambda d, t: events.append((t, d)), "helm", every=0)
    out = helm._run_with_progress(lambda: time.sleep(0.35) or "ok", "helm upgrade x", ctx, 0.1)
    assert out == "ok"
    assert events and all(t == "palplat/helm/waiting" for t, _ in events)
    assert "still running" in events[0][1]["message"]
