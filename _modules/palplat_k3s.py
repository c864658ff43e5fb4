"""Execution module: k3s on this minion (version, status, readiness, cordon/drain).

Thin: the logic is in the ``palplat`` library (``palplat.k3s``, ``palplat.k3s_upgrade``).
Node operations (cordon, drain, uncordon, node_ready) run on a server minion, through the
kubeconfig k3s writes there (``palplat.config.kubeconfig_path``).
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

from palplat import config, k3s, k3s_upgrade, loaderkit, redact  # noqa: E402
from palplat.errors import PalplatError, PillarError  # noqa: E402

__virtualname__ = "palplat_k3s"


def __virtual__():
    return __virtualname__


def _cfg():
    redact.install_log_filter()
    try:
        cfg = config.load(__pillar__)
        problems = k3s.check(cfg)
        if problems:
            raise PillarError(problems)
        return cfg
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def _kube(cfg):
    from palplat.kube import Kube

    return Kube(config.kubeconfig_path(cfg))


def _progress():
    return loaderkit.Progress(loaderkit.salt_fire(__salt__, __opts__), "k3s")


def version():
    """
    The k3s version installed on this minion (None when not installed).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.version
    """
    cfg = _cfg()
    return k3s.installed_version(k3s.paths(cfg).binary)


def status():
    """
    Role, node name, installed and desired version, service state (for the upgrade runner).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.status
    """
    cfg = _cfg()
    try:
        return k3s.status(cfg)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def check():
    """
    Check the k3s pillar (unknown config keys, join settings) and the join token against
    the running cluster. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.check
    """
    cfg = _cfg()
    try:
        return k3s.check_token(cfg)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def wait_ready(timeout=None):
    """
    Wait until this node's k3s is ready (API /readyz on servers, node Ready), firing
    progress events ``palplat/k3s/*``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.wait_ready timeout=120
    """
    cfg = _cfg()
    try:
        return k3s.wait_ready(cfg, progress=_progress(), timeout=timeout)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None


def node_ready(node, version=None, timeout=0):
    """
    Wait up to ``timeout`` seconds until ``node`` is Ready (at ``version``, if given).
    Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.node_ready agent1 v1.33.5+k3s1 timeout=300
    """
    cfg = _cfg()
    kube = _kube(cfg)
    try:
        return k3s_upgrade.node_ready(kube, node, version, float(timeout))
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        kube.close()


def cordon(node):
    """
    Mark ``node`` unschedulable. Runs on a server minion. Returns True when it changed.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.cordon agent1
    """
    cfg = _cfg()
    kube = _kube(cfg)
    try:
        return k3s_upgrade.cordon(kube, node, True)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        kube.close()


def uncordon(node):
    """
    Mark ``node`` schedulable again. Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.uncordon agent1
    """
    cfg = _cfg()
    kube = _kube(cfg)
    try:
        return k3s_upgrade.cordon(kube, node, False)
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        kube.close()


def drain(node, timeout=300):
    """
    Cordon ``node`` and evict its pods (not DaemonSet or mirror pods), waiting up to
    ``timeout`` seconds. Runs on a server minion. Returns the evicted pods.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.drain agent1 timeout=600
    """
    cfg = _cfg()
    kube = _kube(cfg)
    try:
        return k3s_upgrade.drain(kube, node, float(timeout), progress=_progress())
    except PalplatError as exc:
        raise loaderkit.salt_exception(exc) from None
    finally:
        kube.close()
