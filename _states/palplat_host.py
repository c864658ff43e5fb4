"""State module: the host stage's own states, where Salt has none that fits.

``salt/palplat/host.sls`` uses Salt's states for packages, accounts, keys, files, sysctls
and services; these add what Salt lacks: checks against the host before anything changes
(``checked``), kernel modules that may be built in (``modules_loaded``), swap off
(``swap_off``), Tailscale (``tailscale_installed``, ``tailscale_joined``) and the
verification of the whole stage after it ran (``verified``). See docs/host.md.
"""

from palplat import loaderkit
from palplat.errors import PillarError
from palplat.host import facts, kernel, settings, tailscale, verify


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _settings(cfg):
    return settings.settings(cfg, __grains__.get("os_family", "Debian"))


def _left_alone(name, h, tailscale_too=False):
    """The 'nothing to do' return where the pillar says the host (or Tailscale) is not
    palplat's: host.sls renders none of these states then, this also holds when a state is
    called on its own (``state.single``)."""
    if not h.manage:
        return loaderkit.state_ret(
            name, {}, True, "palplat:host:manage is false: the host is left alone"
        )
    if tailscale_too and not h.tailscale.enabled:
        return loaderkit.state_ret(
            name, {}, True, "palplat:host:tailscale:enabled is false: nothing to do"
        )
    return None


@loaderkit.state
def checked(name="palplat:host"):
    """Check the pillar against this host before the stage changes anything: every
    sysctl exists here (or comes with a module the stage loads), the timezone is in this
    host's tz database, every package the host and firewall stages install is in this
    host's package index. Never changes anything; the same in test mode."""
    cfg = _env().config()
    skip = _left_alone(name, cfg.host)
    if skip:
        return skip
    problems = facts.problems(cfg, os_family=__grains__.get("os_family", "Debian"))
    if problems:
        raise PillarError(problems)
    return loaderkit.state_ret(name, {}, True, "this host can take the palplat:host settings")


@loaderkit.state
def modules_loaded(name="palplat:host:kernel_modules"):
    """Every kernel module of the stage is available now (loaded, or built into the
    kernel); ``modprobe`` the others, then verify. The boot-time list is the
    ``modules-load.d`` file host.sls writes with ``file.managed``."""
    e = _env()
    cfg = e.config()
    skip = _left_alone(name, cfg.host)
    if skip:
        return skip
    s = _settings(cfg)
    names = (s["modules"] or {}).get("names", [])
    missing = kernel.missing_modules(names)
    if not missing:
        return loaderkit.state_ret(name, {}, True, f"kernel modules available: {', '.join(names)}")
    changes = {m: {"old": "not loaded", "new": "loaded"} for m in missing}
    if e.test:
        return loaderkit.state_ret(name, changes, None, f"would modprobe {', '.join(missing)}")
    kernel.load_modules(names)
    return loaderkit.state_ret(name, changes, True, f"loaded {', '.join(missing)}")


@loaderkit.state
def swap_off(name="palplat:host:swap"):
    """No active swap and no swap line in /etc/fstab (commented out, not deleted)."""
    e = _env()
    h = e.config().host
    skip = _left_alone(name, h)
    if skip:
        return skip
    if h.swap != "off":
        return loaderkit.state_ret(name, {}, True, "palplat:host:swap is keep: swap is left alone")
    changes = kernel.swap_plan()
    if not changes:
        return loaderkit.state_ret(name, {}, True, "no swap is active or configured in /etc/fstab")
    if e.test:
        return loaderkit.state_ret(name, changes, None, "would turn swap off")
    kernel.swap_off()
    return loaderkit.state_ret(name, changes, True, "swap is off, also at boot")


@loaderkit.state
def tailscale_installed(name="tailscaled"):
    """The pinned tailscale and tailscaled (static release archive, sha256-verified,
    ``--version`` checked) and their unit; nothing to do when that version runs."""
    e = _env()
    cfg = e.config()
    skip = _left_alone(name, cfg.host, tailscale_too=True)
    if skip:
        return skip
    plan = tailscale.install_plan(cfg.host.tailscale)
    if not plan.changes:
        return loaderkit.state_ret(name, {}, True, f"tailscale {plan.current} is installed")
    if e.test:
        return loaderkit.state_ret(
            name, plan.changes, None, f"would install tailscale {plan.desired}"
        )
    tailscale.install(cfg.host.tailscale, plan, fetch_salt=e.fetch_salt)
    return loaderkit.state_ret(name, plan.changes, True, f"installed tailscale {plan.desired}")


@loaderkit.state
def tailscale_joined(name="tailscale"):
    """The node is on the tailnet with the pillar's tags: the auth key goes to a 0600 file
    and ``tailscale up --auth-key=file:<path>`` reads it there (never argv); verified with
    ``tailscale status``."""
    e = _env()
    h = e.config().host
    skip = _left_alone(name, h, tailscale_too=True)
    if skip:
        return skip
    ts = h.tailscale
    plan = tailscale.join_plan(ts)
    if not plan.changes:
        return loaderkit.state_ret(name, {}, True, plan.comment)
    if e.test:
        return loaderkit.state_ret(name, plan.changes, None, "would " + plan.comment)
    tailscale.join(ts, plan, progress=e.progress("tailscale"))
    return loaderkit.state_ret(name, plan.changes, True, plan.comment)


@loaderkit.state
def verified(name="palplat:host"):
    """What the running system reports matches the host stage: sshd's effective config,
    accounts and keys, modules, sysctls, swap, timezone, time sync, security updates,
    Tailscale. Changes nothing; in test mode a difference is what the states before it
    would fix (result None)."""
    e = _env()
    cfg = e.config()
    skip = _left_alone(name, cfg.host)
    if skip:
        return skip
    s = _settings(cfg)
    bad = verify.verify(s)
    checked_ = ", ".join(verify.checks(s)) or "nothing to check"
    if not bad:
        return loaderkit.state_ret(name, {}, True, f"verified: {checked_}")
    text = "; ".join(f"{k}: {v}" for k, v in bad.items())
    if e.test:
        return loaderkit.state_ret(
            name, {}, None, f"checked after the states before it apply; now: {text}"
        )
    return loaderkit.state_ret(name, {}, False, f"the host does not match palplat:host: {text}")


@loaderkit.state
def keys_planned(name, user, ssh_keys):
    """The plan of ``ssh_auth.manage`` on a host that has no OpenSSH yet: Salt loads its
    ssh module only once the ssh client is installed, which the packages state does in
    the real run. host.sls renders this instead of ``ssh_auth.manage`` only in test mode
    and only while the module is missing. A real run never needs it: there it fails, and
    says to install OpenSSH."""
    keys = [k.split()[1][-12:] if len(k.split()) > 1 else k[-12:] for k in ssh_keys]
    changes = {
        f"{user}:authorized_keys": {"old": None, "new": [f"...{k}" for k in keys]},
    }
    if __opts__["test"]:
        return loaderkit.state_ret(
            name,
            changes,
            None,
            f"would add {len(keys)} key(s) to ~{user}/.ssh/authorized_keys (ssh_auth.manage, "
            "once the packages state has installed OpenSSH)",
        )
    return loaderkit.state_ret(
        name,
        {},
        False,
        "Salt's ssh module is not loaded (no ssh client on this host): install OpenSSH "
        "(openssh-server) and re-run",
    )
