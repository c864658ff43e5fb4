"""Verification of the host stage after Salt's states wrote it: what the running system
reports, compared with the settings (:mod:`palplat.host.settings`). Each check returns
``None`` when it holds, else what is wrong; ``palplat_host.verified`` runs them all.

- sshd: ``sshd -T`` (the effective configuration, all drop-ins applied);
- accounts: the user exists, each key is in its ``authorized_keys``;
- kernel: modules available, sysctls at their values, no swap;
- time: the timezone, systemd-timesyncd active (not in a container: systemd does not
  start it there, the container keeps the host's clock);
- updates: ``apt-config`` has the periodic unattended upgrade on;
- Tailscale: ``tailscale status`` says Running with the pillar's tags.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Any

from palplat import proc, redact
from palplat.host import kernel
from palplat.host.facts import sysctl_path

Check = Callable[[], "str | None"]


def in_container(root: str | Path = "/") -> bool:
    """systemd writes /run/systemd/container in a container (nspawn, docker, ...)."""
    return Path(root, "run/systemd/container").exists()


def sshd(expected: dict[str, str], run=proc.run) -> str | None:
    res = run(["sshd", "-T"], check=False, timeout=30)
    if res.returncode != 0:
        return f"sshd -T failed: {redact.tail(res.stderr or res.stdout, 300)}"
    have: dict[str, str] = {}
    for ln in res.stdout.splitlines():
        k, _, v = ln.partition(" ")
        have.setdefault(k.lower(), v.strip())
    bad = {k: have.get(k) for k, v in expected.items() if have.get(k) != v}
    if bad:
        return f"sshd's effective config differs: {bad} (want {expected}); `sshd -T`"
    return None


def _key_blob(line: str) -> str:
    return line.split()[1]


def accounts(users: dict[str, dict[str, Any]]) -> str | None:
    problems = []
    for name, u in users.items():
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            problems.append(f"{name}: no such user")
            continue
        keys = Path(pw.pw_dir, ".ssh/authorized_keys")
        text = keys.read_text() if keys.exists() else ""
        blobs = {ln.split()[1] for ln in text.splitlines() if len(ln.split()) >= 2}
        missing = [
            k.split()[-1] if len(k.split()) > 2 else _key_blob(k)[:20]
            for k in u["ssh_keys"]
            if _key_blob(k) not in blobs
        ]
        if missing:
            problems.append(f"{name}: keys not in {keys}: {missing}")
    return "; ".join(problems) or None


def _norm(v: Any) -> str:
    return " ".join(str(v).split())


def sysctl(values: dict[str, Any], root: str | Path = "/") -> str | None:
    bad = {}
    for name, want in values.items():
        try:
            have = sysctl_path(name, root).read_text()
        except OSError as exc:
            bad[name] = f"unreadable ({exc.strerror})"
            continue
        if _norm(have) != _norm(want):
            bad[name] = _norm(have)
    return f"kernel parameters differ (name: value now): {bad}" if bad else None


def modules(names: list[str], root: str | Path = "/") -> str | None:
    missing = kernel.missing_modules(names, root)
    return f"kernel modules not available: {missing}" if missing else None


def swap(root: str | Path = "/") -> str | None:
    left = kernel.swap_plan(root)
    return f"swap is on: {left}" if left else None


def timezone(tz: str, root: str | Path = "/") -> str | None:
    try:
        target = os.readlink(Path(root, "etc/localtime"))
    except OSError:
        target = ""
    if not target.endswith("/zoneinfo/" + tz):
        return f"/etc/localtime points to {target or 'nothing'}, not {tz}"
    return None


def service_active(name: str, run=proc.run, root: str | Path = "/") -> str | None:
    if in_container(root):
        return None  # ConditionVirtualization=!container: systemd skips it by design
    res = run(["systemctl", "is-active", name], check=False, timeout=30)
    if res.stdout.strip() != "active":
        return f"{name} is {res.stdout.strip() or 'unknown'}; `systemctl status {name}`"
    return None


def auto_updates(run=proc.run) -> str | None:
    res = run(["apt-config", "dump", "APT::Periodic"], check=False, timeout=30)
    want = 'APT::Periodic::Unattended-Upgrade "1";'
    if want not in res.stdout:
        return f"apt-config does not have {want}; check /etc/apt/apt.conf.d"
    return None


def tailscale_status(run=proc.run) -> dict[str, Any] | None:
    res = run(["tailscale", "status", "--json"], check=False, timeout=30)
    try:
        return json.loads(res.stdout)
    except ValueError:
        return None


def tailscale(tags: list[str], run=proc.run) -> str | None:
    st = tailscale_status(run)
    if st is None:
        return "tailscale status gave no answer; `systemctl status tailscaled`"
    if st.get("BackendState") != "Running":
        return f"tailscale is {st.get('BackendState')}, not Running; `tailscale status`"
    have = sorted((st.get("Self") or {}).get("Tags") or [])
    if sorted(tags) != have:
        return f"the node's tags are {have}, not {sorted(tags)}"
    return None


def checks(s: dict[str, Any], run=proc.run, root: str | Path = "/") -> dict[str, Check]:
    """The checks that apply to settings ``s`` (from :func:`palplat.host.settings.settings`)."""
    out: dict[str, Check] = {}
    if s["users"]:
        out["users"] = lambda: accounts(s["users"])
    if s["sshd"]:
        out["sshd"] = lambda: sshd(s["sshd"]["expected"], run)
    if s["modules"]:
        out["modules"] = lambda: modules(s["modules"]["names"], root)
    if s["sysctl"]:
        out["sysctl"] = lambda: sysctl(s["sysctl"]["values"], root)
    if s["swap"] == "off":
        out["swap"] = lambda: swap(root)
    if s["timezone"]:
        out["timezone"] = lambda: timezone(s["timezone"], root)
    if s["time_sync"]:
        out["time_sync"] = lambda: service_active(s["time_sync"]["service"], run, root)
    if s["auto_updates"]:
        out["auto_updates"] = lambda: auto_updates(run)
    if s["tailscale"] and s["tailscale"].get("join"):
        out["tailscale"] = lambda: tailscale(s["tailscale"]["tags"], run)
    return out


def verify(s: dict[str, Any], run=proc.run, root: str | Path = "/") -> dict[str, str]:
    """``{check: what is wrong}`` for every check that does not hold (empty: all hold)."""
    bad = {}
    for name, check in checks(s, run, root).items():
        problem = check()
        if problem:
            bad[name] = problem
    return bad
