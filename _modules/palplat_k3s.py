"""Execution module: k3s on this minion (version, status, readiness, cordon/drain).

Thin: the logic is in the ``palplat`` library (``palplat.k3s``, ``palplat.k3s.upgrade``).
Node operations (cordon, drain, uncordon, node_ready) run on a server minion, through the
kubeconfig k3s writes there (``palplat.config.kubeconfig_path``).
"""

from palplat import k3s, loaderkit
from palplat.k3s import cluster, upgrade

__virtualname__ = "palplat_k3s"


def __virtual__():
    return __virtualname__


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _cfg():
    return _env().k3s_config()


def _node_op(fn, *args, **kwargs):
    """Run a node operation through this server minion's kubeconfig."""
    e = _env()
    return fn(e.kube(cfg=e.k3s_config()), *args, **kwargs)


@loaderkit.translate
def version():
    """
    The k3s version installed on this minion (None when not installed).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.version
    """
    return k3s.installed_version(k3s.paths(_cfg()).binary)


@loaderkit.translate
def status(plan=None):
    """
    Role, node name, installed and desired version, service state (for the upgrade runner);
    ``plan``: the desired version of a pull request's pillar (``palplat.plan``).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.status
    """
    if plan is not None:
        return k3s.status(
            loaderkit.env(__salt__, __opts__, __pillar__, __context__, plan=plan).config()
        )
    return k3s.status(_cfg())


@loaderkit.translate
def check():
    """
    Check the k3s pillar (unknown config keys, join settings) and the join token against
    the running cluster. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.check
    """
    return k3s.check_token(_cfg())


@loaderkit.translate
def wait_ready(timeout=None):
    """
    Wait until this node's k3s is ready (API /readyz on servers, node Ready), firing
    progress events ``palplat/k3s/*``.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_k3s.wait_ready timeout=120
    """
    e = _env()
    return k3s.wait_ready(e.k3s_config(), progress=e.progress("k3s"), timeout=timeout)


@loaderkit.translate
def node_ready(node, version=None, timeout=0):
    """
    Wait up to ``timeout`` seconds until ``node`` is Ready (at ``version``, if given).
    Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.node_ready agent1 v1.33.5+k3s1 timeout=300
    """
    return _node_op(upgrade.node_ready, node, version, float(timeout))


@loaderkit.translate
def cordon(node):
    """
    Mark ``node`` unschedulable. Runs on a server minion. Returns True when it changed.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.cordon agent1
    """
    return _node_op(upgrade.cordon, node, True)


@loaderkit.translate
def uncordon(node):
    """
    Mark ``node`` schedulable again. Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.uncordon agent1
    """
    return _node_op(upgrade.cordon, node, False)


@loaderkit.translate
def drain(node, timeout=300, force=None, delete_emptydir_data=None):
    """
    Cordon ``node`` and evict its pods (not DaemonSet or mirror pods), waiting up to
    ``timeout`` seconds. Runs on a server minion. Returns the evicted pods.

    Like ``kubectl drain``, pods that no controller recreates need ``force=True`` and pods
    with emptyDir data need ``delete_emptydir_data=True`` (default: this minion's
    ``palplat:k3s:drain``); otherwise nothing is evicted and the error names them.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.drain agent1 timeout=600
        salt server1 palplat_k3s.drain agent1 delete_emptydir_data=True
    """
    d = _cfg().k3s.drain
    return _node_op(
        upgrade.drain,
        node,
        float(timeout),
        progress=_env().progress("k3s"),
        force=d.force if force is None else bool(force),
        delete_emptydir_data=(
            d.delete_emptydir_data if delete_emptydir_data is None else bool(delete_emptydir_data)
        ),
    )


@loaderkit.translate
def nodes():
    """
    The cluster's nodes as the runners need them: name, Ready, kubelet version, server,
    etcd member, unschedulable, allocatable. Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.nodes
    """
    return _node_op(cluster.list_nodes)


@loaderkit.translate
def quorum(node, why="remove"):
    """
    Whether etcd keeps quorum without ``node``: ``why=remove`` (it leaves for good) or
    ``why=restart`` (it is away for a while, an upgrade step). Returns the arithmetic;
    fails with it when quorum would be lost. Runs on a server minion.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.quorum server3
        salt server1 palplat_k3s.quorum server2 why=restart
    """
    ms = cluster.members(_node_op(cluster.list_nodes))
    check = cluster.check_removal if why == "remove" else cluster.check_down
    return check(ms, node)


@loaderkit.translate
def delete_node(node):
    """
    Delete the Node object ``node`` (k3s removes a deleted server's etcd member). Runs on
    a server minion; ``salt-run palplat_k3s.remove`` calls it after k3s is uninstalled on
    that node. Returns False when there was no such Node.

    CLI Example:

    .. code-block:: bash

        salt server1 palplat_k3s.delete_node agent3
    """
    return _node_op(cluster.delete_node, node)
