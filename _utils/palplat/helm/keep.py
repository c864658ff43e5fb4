"""Helm post-renderer: mark every PersistentVolumeClaim ``helm.sh/resource-policy: keep``.

helm decides what ``helm uninstall`` keeps from the annotations in the release's stored
manifest (not from the live objects), so palplat renders ``keep_pvcs: true`` releases
through this script: their claims then survive an uninstall. Reads the rendered manifests
on stdin, writes them to stdout. Standalone (PyYAML only): helm runs it as
``<python> <path of this file>`` (see :func:`palplat.helm.cli.post_renderer`); it is also
importable as :mod:`palplat.helm.keep`.
"""

import os
import sys

if __name__ == "__main__":
    # run as a script, this package directory is sys.path[0]: its sibling modules (cli,
    # install, diff, ...) must not shadow anything PyYAML imports
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import yaml  # noqa: E402

POLICY = "helm.sh/resource-policy"


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
    docs = list(mark(yaml.safe_load_all(sys.stdin)))
    yaml.safe_dump_all(docs, sys.stdout, default_flow_style=False, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
