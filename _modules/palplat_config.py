"""Execution module: validate and inspect the ``palplat`` pillar on a minion.

Thin: the logic is in the ``palplat`` library (``palplat.config``).
"""

from palplat import config, loaderkit, redact
from palplat.errors import PillarError


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


def problems(plan=None):
    """
    List the problems of the ``palplat`` pillar (empty when it is valid); with ``plan``
    (what ``salt-run palplat.plan pillarenv=...`` sends: a pull request's pillar, sealed),
    of the pull request's pillar for this minion.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.problems
    """
    try:
        loaderkit.env(__salt__, __opts__, __pillar__, __context__, plan=plan).config()
    except PillarError as exc:
        return [str(p) for p in exc.problems]
    return []


@loaderkit.translate
def graph(plan=None):
    """
    The Helm releases palplat manages and what each one ``needs`` (the plan's diagram);
    ``plan``: of a pull request's pillar (see ``problems``).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_config.graph
    """
    rels = config.releases(
        loaderkit.env(__salt__, __opts__, __pillar__, __context__, plan=plan).config()
    )
    return {
        name: {"needs": sorted(rel.needs), "enabled": rel.enabled, "namespace": rel.namespace}
        for name, rel in sorted(rels.items())
    }
