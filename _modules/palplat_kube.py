"""Execution module: Kubernetes objects through server-side apply (field manager ``palplat``).

Thin: the logic is in ``palplat.kube``. The kubeconfig defaults to the pillar's
(``palplat:k3s:kubeconfig``, else k3s's own). Secret data is ``<hidden>`` in every return.
"""

import os as _os
import sys as _sys

_sys.path[:0] = [
    _p
    for _p in (
        _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), _d)
        for _d in ("utils", "_utils")
    )
    if _os.path.isdir(_os.path.join(_p, "palplat")) and _p not in _sys.path
]

from palplat import config, kube, loaderkit, redact  # noqa: E402
from palplat.errors import InputError, PalplatError  # noqa: E402

__virtualname__ = "palplat_kube"
__func_alias__ = {"list_": "list"}


def __virtual__():
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        return False, "palplat_kube needs the kubernetes Python client (pip install kubernetes)"
    return __virtualname__


def _client(kubeconfig=None):
    """A ``palplat.kube.Kube`` for ``kubeconfig`` (default: the pillar's), cached per run."""
    redact.install_log_filter()
    try:
        if not kubeconfig:
            kubeconfig = config.kubeconfig_path(config.load(__pillar__))
        cache = __context__.setdefault("palplat_kube.clients", {})
        if kubeconfig not in cache:
            cache[kubeconfig] = kube.Kube(kubeconfig)
        return cache[kubeconfig]
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def _manifest(manifest):
    if isinstance(manifest, str):
        import yaml

        try:
            manifest = yaml.safe_load(manifest)
        except yaml.YAMLError as exc:
            raise loaderkit.salt_exception(
                InputError(f"manifest is not valid YAML: {exc}")
            ) from None
    if not isinstance(manifest, dict):
        raise loaderkit.salt_exception(InputError("manifest must be a mapping (one object)"))
    return manifest


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def get(api_version, kind, name, namespace=None, kubeconfig=None):
    """
    Read one object; ``None`` when it does not exist. Secret data is ``<hidden>``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.get v1 ConfigMap coredns namespace=kube-system
    """
    k = _client(kubeconfig)
    return kube.masked(_call(k.get, api_version, kind, name, namespace))


def list_(api_version, kind, namespace=None, label_selector=None, kubeconfig=None):
    """
    List the objects of a kind (one LIST request per page), in ``namespace`` or in all
    namespaces. Secret data is ``<hidden>``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.list apps/v1 Deployment label_selector=palplat.io/owner=platform
    """
    k = _client(kubeconfig)
    return kube.masked(_call(k.list, api_version, kind, namespace, label_selector))


def apply(manifest, owner=None, dry_run=False, kubeconfig=None):
    """
    Server-side apply one object (field manager ``palplat``, conflicts forced) and return
    the object the server stored; ``dry_run=True`` sends the same request with
    ``dryRun=All``. With ``owner`` the object gets palplat's ownership labels.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.apply '{apiVersion: v1, kind: Namespace, metadata: {name: demo}}'
        salt '*' palplat_kube.apply "$(cat cm.yaml)" owner=demo dry_run=True
    """
    manifest = _manifest(manifest)
    if owner:
        manifest = _call(kube.owned, manifest, owner)
    k = _client(kubeconfig)
    return kube.masked(_call(k.apply, manifest, dry_run=bool(dry_run)))


def diff(manifest, owner=None, kubeconfig=None):
    """
    What applying ``manifest`` would change, field by field (``{path: {old, new}}``),
    computed by a ``dryRun=All`` server-side apply against the live object.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.diff "$(cat deployment.yaml)"
    """
    manifest = _manifest(manifest)
    if owner:
        manifest = _call(kube.owned, manifest, owner)
    k = _client(kubeconfig)
    ref = kube.ref_of(manifest)
    live = _call(k.get, ref.api_version, ref.kind, ref.name, ref.namespace)
    would = _call(k.apply, manifest, dry_run=True)
    return kube.diff(live, would)


def delete(
    api_version,
    kind,
    name,
    namespace=None,
    dry_run=False,
    propagation="Background",
    kubeconfig=None,
):
    """
    Delete one object; ``False`` when it did not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.delete v1 ConfigMap old-settings namespace=demo
    """
    k = _client(kubeconfig)
    return _call(
        k.delete,
        api_version,
        kind,
        name,
        namespace,
        dry_run=bool(dry_run),
        propagation=propagation,
    )


def wait(refs, timeout=300, kubeconfig=None):
    """
    Wait until every object is ready: CRD Established, Namespace Active, Deployment
    Available, Job Complete, any other kind exists. ``refs``: manifests or
    ``[apiVersion, kind, name, namespace]`` lists. Progress is logged and fired as
    ``palplat/kube/<phase>`` events; on timeout the error names what was not ready.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.wait '[[apps/v1, Deployment, web, demo]]' timeout=120
    """
    if isinstance(refs, (dict, tuple)) or (
        isinstance(refs, list) and refs and isinstance(refs[0], str)
    ):
        refs = [refs]
    k = _client(kubeconfig)
    progress = loaderkit.Progress(loaderkit.salt_fire(__salt__, __opts__), "kube")
    return _call(kube.wait, k, refs, timeout=float(timeout), progress=progress)
