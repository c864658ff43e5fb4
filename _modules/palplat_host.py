"""Execution module: the host stage's settings, host checks and verification.

Thin: the logic is in the ``palplat`` library (``palplat.host``). ``salt/palplat/host.sls``
renders Salt's own states from :func:`settings`.
"""

from palplat import loaderkit
from palplat.errors import PillarError
from palplat.host import facts
from palplat.host import settings as host_settings
from palplat.host import verify as host_verify


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _os_family():
    return __grains__.get("os_family", "Debian")


def settings():
    """
    What the host stage converges (packages, accounts, file texts, services), computed
    from the validated pillar; ``{"valid": False, ...}`` when the pillar is invalid (the
    SLS then renders only its validation states, which report every problem).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_host.settings
    """
    try:
        cfg = _env().config()
    except PillarError as exc:
        return {"valid": False, "manage": False, "problems": [str(p) for p in exc.problems]}
    return {"valid": True, **host_settings.settings(cfg, _os_family())}


@loaderkit.translate
def check():
    """
    Check the pillar against this host (kernel parameters exist, timezone in the tz
    database, packages in the package index); raise with every problem and its pillar
    path.

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_host.check
    """
    problems = facts.problems(_env().config(), os_family=_os_family())
    if problems:
        raise PillarError(problems)
    return True


@loaderkit.translate
def verify():
    """
    Compare the running system with the host stage's settings: ``{}`` when everything
    holds, else ``{check: what is wrong}`` (sshd, users, modules, sysctl, swap, timezone,
    time_sync, auto_updates, tailscale).

    CLI Example:

    .. code-block:: bash

        salt '*' palplat_host.verify
    """
    s = host_settings.settings(_env().config(), _os_family())
    return host_verify.verify(s)
