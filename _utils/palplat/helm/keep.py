"""Helm post-renderer: mark every PersistentVolumeClaim ``helm.sh/resource-policy: keep``.

helm decides what ``helm uninstall`` keeps from the annotations in the release's stored
manifest (not from the live objects), so palplat renders ``keep_pvcs: true`` releases
through this script: their claims then survive an uninstall. Reads the rendered manifests
on stdin, writes them to stdout. helm runs it as ``<python> <path of this file>`` (see
:func:`palplat.helm.cli.post_renderer`); it is also importable as :mod:`palplat.helm.keep`.

Run as a script it loads only :mod:`palplat.yamlio` (the one YAML reader, which reads an
unquoted ``=`` as the string Kubernetes sees) from the ``palplat`` package it lives in,
not the rest of palplat, and puts nothing on ``sys.path``.
"""

import importlib.util
import os
import sys

if __name__ == "__main__":
    # run as a script, this package directory is sys.path[0]: its sibling modules (cli,
    # install, diff, ...) must not shadow anything PyYAML imports
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import yaml  # noqa: E402

POLICY = "helm.sh/resource-policy"
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _yamlio():
    """:mod:`palplat.yamlio`: imported normally, or (run as a script) loaded from the
    ``palplat`` package directory this file is in, without importing anything else of it."""
    if __name__ != "__main__":
        from palplat import yamlio

        return yamlio
    if "palplat" not in sys.modules:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        spec = importlib.util.spec_from_file_location(
            "palplat", os.path.join(root, "__init__.py"), submodule_search_locations=[root]
        )
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["palplat"] = pkg
        spec.loader.exec_module(pkg)
    return importlib.import_module("palplat.yamlio")


def mark(docs):
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "PersistentVolumeClaim":
            meta = doc.setdefault("metadata", {}) or {}
            doc["metadata"] = meta
            ann = meta.get("annotations") or {}
            ann[POLICY] = "keep"
            meta["annotations"] = ann
        if doc is not None:
            yield doc


def main() -> int:
    yamlio = _yamlio()
    try:
        docs = list(mark(yamlio.load_all(sys.stdin.read(), "the rendered manifest")))
    except yamlio.InputError as exc:
        print(f"palplat post-renderer: {exc}", file=sys.stderr)
        return 1
    yaml.dump_all(docs, sys.stdout, Dumper=_Dumper, default_flow_style=False, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
