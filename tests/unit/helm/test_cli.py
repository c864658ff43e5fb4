"""palplat.helm.cli: argv building, JSON parsing, secrets kept off argv."""

from __future__ import annotations

import yaml

from palplat import helm, proc, redact


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


def test_post_renderer_script_marks_claims_keep():
    import subprocess

    assert helm.post_renderer(False) == []
    flags = helm.post_renderer(True)
    assert flags[0] == "--post-renderer" and flags[2] == "--post-renderer-args"
    manifests = (
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: d}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    out = subprocess.run(
        [flags[1], flags[3]], input=manifests, capture_output=True, text=True, check=True
    ).stdout
    docs = list(yaml.safe_load_all(out))
    assert docs[0]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert docs[1] == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


def test_template_argv_renders_crds_without_hooks_or_post_renderer():
    run = FakeRunner("---\n")
    h = helm.Helm("helm", runner=run)
    h.template("r", "ns", ["./c"], "/tmp/v.yaml", kube_version="v1.36.3", api_versions=["a/v1"])
    a = run.calls[0]["argv"]
    assert a[:4] == ["helm", "template", "r", "./c"]
    assert "--include-crds" in a and "--no-hooks" in a and "--post-renderer" not in a
    assert a[a.index("--kube-version") + 1] == "v1.36.3"
    assert a[a.index("--api-versions") + 1] == "a/v1" and "--is-upgrade" not in a
    h.template("r", "ns", ["./c"], "/tmp/v.yaml", is_upgrade=True)
    a = run.calls[1]["argv"]
    assert "--is-upgrade" in a and "--kube-version" not in a and "--api-versions" not in a
