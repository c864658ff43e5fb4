"""Execution module: Kubernetes objects through server-side apply (field manager ``palplat``).

Thin: the logic is in ``palplat.kube``. The kubeconfig defaults to the pillar's
(``palplat:k3s:kubeconfig``, else k3s's own). Secret data is ``<hidden>`` in every return.
"""

from palplat import kube, loaderkit

__virtualname__ = "palplat_kube"
__func_alias__ = {"list_": "list"}


def __virtual__():
    return loaderkit.needs_kubernetes(__virtualname__)


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.translate
def get(api_version, kind, name, namespace=None, kubeconfig=None):
    """
    Read one object; ``None`` when it does not exist. Secret data is ``<hidden>``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.get v1 ConfigMap coredns namespace=kube-system
    """
    return kube.masked(_env().kube(kubeconfig).get(api_version, kind, name, namespace))


@loaderkit.translate
def list_(api_version, kind, namespace=None, label_selector=None, kubeconfig=None):
    """
    List the objects of a kind (one LIST request per page), in ``namespace`` or in all
    namespaces. Secret data is ``<hidden>``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.list apps/v1 Deployment label_selector=palplat.io/owner=platform
    """
    k = _env().kube(kubeconfig)
    return kube.masked(k.list(api_version, kind, namespace, label_selector))


@loaderkit.translate
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
    (manifest,) = loaderkit.manifests_from(manifest)
    if owner:
        manifest = kube.owned(manifest, owner)
    return kube.masked(_env().kube(kubeconfig).apply(manifest, dry_run=bool(dry_run)))


@loaderkit.translate
def diff(manifest, owner=None, kubeconfig=None):
    """
    What applying ``manifest`` would change, field by field (``{path: {old, new}}``),
    computed by a ``dryRun=All`` server-side apply against the live object.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_kube.diff "$(cat deployment.yaml)"
    """
    (manifest,) = loaderkit.manifests_from(manifest)
    if owner:
        manifest = kube.owned(manifest, owner)
    k = _env().kube(kubeconfig)
    ref = kube.ref_of(manifest)
    live = k.get(ref.api_version, ref.kind, ref.name, ref.namespace)
    return kube.diff(live, k.apply(manifest, dry_run=True))


@loaderkit.translate
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
    k = _env().kube(kubeconfig)
    return k.delete(
        api_version, kind, name, namespace, dry_run=bool(dry_run), propagation=propagation
    )


@loaderkit.translate
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
    e = _env()
    return kube.wait(e.kube(kubeconfig), refs, timeout=float(timeout), progress=e.progress("kube"))
