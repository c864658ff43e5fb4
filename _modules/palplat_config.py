"""Execution module: validate and inspect the ``palplat`` pillar on a minion.

Thin: the logic is in the ``palplat`` library (``palplat.config``).
"""

from palplat import config, loaderkit, redact


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


@loaderkit.translate
def validate():
    """
    Validate the ``palplat`` pillar; raise with every problem (path, found, fix).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.validate
    """
    _env().config()
    return True


@loaderkit.translate
def show():
    """
    Show the validated ``palplat`` pillar with defaults filled in and secrets masked.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.show
    """
    return redact.mask(_env().config().model_dump(mode="json", by_alias=True))


def _pillar(pillarenv=None):
    """The minion's pillar, or (``pillarenv``) the one compiled from that environment."""
    if pillarenv:
        return __salt__["pillar.items"](pillarenv=pillarenv)
    return __pillar__


def problems(pillarenv=None):
    """
    List the problems of the ``palplat`` pillar (empty when it is valid); with
    ``pillarenv``, of the pillar compiled from that environment (a pull request's).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.problems
        salt '*' palplat_config.problems pillarenv=pr-12
    """
    _env()
    return [str(p) for p in config.problems_of(_pillar(pillarenv))]


@loaderkit.translate
def graph(pillarenv=None):
    """
    The Helm releases palplat manages and what each one ``needs`` (the plan's diagram).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.graph
    """
    _env()
    rels = config.releases(config.load(_pillar(pillarenv)))
    return {
        name: {"needs": sorted(rel.needs), "enabled": rel.enabled, "namespace": rel.namespace}
        for name, rel in sorted(rels.items())
    }
