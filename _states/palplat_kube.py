"""State module: Kubernetes objects converged by server-side apply (field manager ``palplat``).

.. code-block:: yaml

    demo-objects:
      palplat_kube.present:
        - owner: demo            # ownership label value (default: the state ID)
        - prune: True            # delete objects labelled with this owner that left the list
        - wait: True
        - timeout: 300
        - manifests:
          - {apiVersion: v1, kind: Namespace, metadata: {name: demo}}
          - apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings, namespace: demo}
            data: {level: info}

Test mode sends the very same apply with ``dryRun=All`` and reports the field-level diff
against the live object; a run with nothing to change makes no write request.
"""

import re as _re

from palplat import kube, loaderkit
from palplat.errors import InputError, WaitTimeout

__virtualname__ = "palplat_kube"


def __virtual__():
    return loaderkit.needs_kubernetes(__virtualname__)


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _owner(name, owner):
    if owner:
        return kube.check_owner(str(owner))
    slug = _re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-_.")[:63].strip("-_.")
    return kube.check_owner(slug or "palplat")


def _summary(actions, test):
    verbs = {"create": "created", "patch": "patched", "delete": "deleted"}
    lines = []
    for action in ("create", "patch", "delete"):
        keys = [k for k, a in actions.items() if a == action]
        if keys:
            verb = f"would {action}" if test else verbs[action]
            lines.append(f"{verb} {len(keys)}: {', '.join(keys)}")
    return lines


@loaderkit.state
def present(
    name,
    manifest=None,
    manifests=None,
    owner=None,
    prune=False,
    prune_kinds=None,
    wait=False,
    timeout=300,
    kubeconfig=None,
):
    """
    Ensure Kubernetes objects exist as given (server-side apply, field manager ``palplat``).

    name
        State ID; the default ``owner``.
    manifest / manifests
        One object, or a list of objects (or a multi-document YAML string).
    owner
        Value of the ``palplat.io/owner`` label put on every object (with
        ``app.kubernetes.io/managed-by: palplat``).
    prune
        Delete objects labelled with this owner that are no longer listed (common kinds and
        the listed kinds; CRDs never; PersistentVolumeClaims only when in ``prune_kinds``;
        Namespaces only while Namespaces are listed or in ``prune_kinds``).
    prune_kinds
        Extra ``[apiVersion, kind]`` pairs to prune.
    wait / timeout
        Wait (seconds) until the objects are ready: CRD Established, Namespace Active,
        Deployment Available, Job Complete, others exist.
    kubeconfig
        Default: ``palplat:k3s:kubeconfig`` from the pillar, else k3s's own.
    """
    e = _env()
    test = e.test
    items = loaderkit.manifests_from(manifest, manifests)
    own = _owner(name, owner)
    k = e.kube(kubeconfig)
    progress = e.progress("kube")
    out = kube.converge(
        k,
        items,
        owner=own,
        dry_run=test,
        prune=bool(prune),
        prune_kinds=[tuple(x) for x in (prune_kinds or [])],
        progress=progress,
    )
    changes, actions = out["changes"], out["actions"]
    comment = _summary(actions, test)
    kinds = {"create": "add", "patch": "change", "delete": "remove"}
    summary = {}
    for key, action in actions.items():
        if key in changes and action in kinds:
            summary.setdefault(kinds[action], []).append(key)
    if test:
        if not changes:
            return loaderkit.state_ret(
                name, {}, True, f"{len(actions)} object(s) already as desired"
            )
        return loaderkit.state_ret(name, changes, None, comment, summary)
    if wait:
        try:
            kube.wait(k, items, timeout=float(timeout), progress=progress)
        except WaitTimeout as exc:
            return loaderkit.state_ret(
                name,
                changes,
                False,
                comment
                + [f"{exc}", "the objects were applied; check why they are not ready and re-run"],
            )
        comment.append(f"all {len(items)} object(s) ready")
    if not changes:
        comment.insert(0, f"{len(actions)} object(s) already as desired")
    return loaderkit.state_ret(name, changes, True, comment, summary)


@loaderkit.state
def absent(
    name,
    manifest=None,
    manifests=None,
    owner=None,
    kinds=None,
    kubeconfig=None,
):
    """
    Ensure Kubernetes objects do not exist.

    With ``manifest``/``manifests``: delete exactly those objects (only apiVersion, kind and
    metadata are needed). With only ``owner``: delete every object labelled as owned by it
    (common kinds plus ``kinds``; Namespaces and PersistentVolumeClaims only when in
    ``kinds``; CRDs never). Test mode sends the same DELETE with
    ``dryRun=All``.
    """
    e = _env()
    test = e.test
    items = loaderkit.manifests_from(manifest, manifests) if (manifest or manifests) else []
    if not items and not owner:
        raise InputError("give manifest/manifests (the objects) or owner (all it owns)")
    k = e.kube(kubeconfig)
    if items:
        changes = kube.remove(k, items, dry_run=test)
    else:
        todo = set(kube.DEFAULT_PRUNE_KINDS) | {tuple(x) for x in (kinds or [])}
        changes = kube.prune(k, kube.check_owner(str(owner)), [], kinds=todo, dry_run=test)
    if not changes:
        return loaderkit.state_ret(name, {}, True, "already absent")
    verb = "would delete" if test else "deleted"
    return loaderkit.state_ret(
        name,
        changes,
        None if test else True,
        f"{verb} {len(changes)}: {', '.join(changes)}",
        {"remove": list(changes)},
    )
