"""palplat.helm.keep: the post-renderer script helm runs (``<python> keep.py``)."""

from __future__ import annotations

import subprocess
import sys

from palplat import helm, yamlio

MANIFESTS = (
    "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: d}\n---\n"
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  op: =\n  ops: [=, '!=']\n"
)


def run_script():
    flags = helm.post_renderer(True)
    return subprocess.run(
        [flags[1], flags[3]],
        input=MANIFESTS,
        capture_output=True,
        text=True,
        check=True,
    )


def test_reads_an_unquoted_equals_sign_and_writes_it_back_quoted():
    out = run_script().stdout
    pvc, cm = yamlio.load_all(out)
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert cm["data"] == {"op": "=", "ops": ["=", "!="]}
    # what helm reads back (YAML 1.2 for Kubernetes): a string, quoted for YAML 1.1 readers
    assert "'='" in out


def test_script_loads_yamlio_and_nothing_else_of_palplat():
    # run as helm runs it (``__main__``), then list the palplat modules it loaded
    probe = (
        "import runpy, sys\n"
        "try:\n"
        f"    runpy.run_path({helm.post_renderer(True)[3]!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('palplat')), file=sys.stderr)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], input=MANIFESTS, capture_output=True, text=True, check=True
    )
    assert res.stderr.strip() == "['palplat', 'palplat.errors', 'palplat.yamlio']"
    assert "'='" in res.stdout


def test_invalid_yaml_fails_with_a_message():
    flags = helm.post_renderer(True)
    res = subprocess.run(
        [flags[1], flags[3]], input="a: [", capture_output=True, text=True, check=False
    )
    assert res.returncode == 1 and "not valid YAML" in res.stderr


def test_importable_as_a_module():
    assert helm.keep.POLICY == "helm.sh/resource-policy"
    docs = list(helm.keep.mark([{"kind": "PersistentVolumeClaim", "metadata": None}, None]))
    assert docs == [
        {"kind": "PersistentVolumeClaim", "metadata": {"annotations": {helm.keep.POLICY: "keep"}}}
    ]
    assert sys.modules["palplat.helm.keep"] is helm.keep
