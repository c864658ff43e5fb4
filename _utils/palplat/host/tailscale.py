"""Tailscale on the host: tailscaled from a pinned static release, joined with an auth key
that only ever lives in a 0600 file.

Install: the archive (``tailscale_<version>_<arch>.tgz``, official URL pattern, a mirror,
file:// or salt://) is downloaded, its sha256 checked against the pillar or the
``<url>.sha256`` published beside it, ``tailscale`` and ``tailscaled`` extracted and their
``--version`` checked, then renamed over ``/usr/bin/tailscale`` and
``/usr/sbin/tailscaled`` and read back (:func:`palplat.release.install`); the unit is
palplat's (the upstream one, fixed paths). Any failure leaves the installed version in place.

Join: the pillar's ``auth_key`` is written to ``auth_key_file`` (0600, only when it
differs); ``tailscale up --auth-key=file:<path> --advertise-tags=... --timeout=...``
reads it from there, so the key is never in argv, a return or a log. Then
``tailscale status --json`` must say Running with the pillar's tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palplat import proc, redact, release
from palplat.errors import PalplatError
from palplat.fetch import FetchSalt, source_url
from palplat.host.pillar import Tailscale

P = "palplat:host:tailscale"
TAILSCALE = "/usr/bin/tailscale"
TAILSCALED = "/usr/sbin/tailscaled"
BINARIES = {"tailscale": TAILSCALE, "tailscaled": TAILSCALED}  # archive member -> path
UNIT = "/etc/systemd/system/tailscaled.service"
UNIT_TEXT = """# Managed by palplat (Salt): tailscaled from palplat:host:tailscale.
[Unit]
Description=Tailscale node agent (managed by palplat)
Documentation=https://tailscale.com/kb/
Wants=network-pre.target
After=network-pre.target NetworkManager.service systemd-resolved.service

[Service]
# FLAGS: extra tailscaled flags (the .deb's /etc/default/tailscaled; optional here)
EnvironmentFile=-/etc/default/tailscaled
ExecStart=/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state \\
  --socket=/run/tailscale/tailscaled.sock --port=41641 $FLAGS
ExecStopPost=/usr/sbin/tailscaled --cleanup
Restart=on-failure
RuntimeDirectory=tailscale
RuntimeDirectoryMode=0755
StateDirectory=tailscale
StateDirectoryMode=0700
CacheDirectory=tailscale
CacheDirectoryMode=0750
Type=notify

[Install]
WantedBy=multi-user.target
"""


class TailscaleError(PalplatError):
    pass


def installed_version(path: str | Path = TAILSCALED, run=proc.run) -> str | None:
    if not Path(path).exists():
        return None
    res = run([str(path), "--version"], check=False, timeout=30)
    first = (res.stdout or "").strip().splitlines()
    return first[0].strip().split("-")[0] if res.returncode == 0 and first else "unknown"


def archive_url(ts: Tailscale) -> str:
    return source_url(ts.url, ts.version)


@dataclass
class InstallPlan:
    current: str | None
    desired: str | None
    unit_changed: bool

    @property
    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.desired and self.current != self.desired:
            out["tailscale"] = {"old": self.current, "new": self.desired}
        if self.unit_changed:
            out["unit"] = {"old": None if self.current is None else "changed", "new": UNIT}
        return out


def _unit_differs(root: str | Path = "/") -> bool:
    try:
        return Path(root, UNIT.lstrip("/")).read_text() != UNIT_TEXT
    except FileNotFoundError:
        return True


def install_plan(ts: Tailscale, root: str | Path = "/", run=proc.run) -> InstallPlan:
    tailscaled = Path(root, TAILSCALED.lstrip("/"))
    return InstallPlan(installed_version(tailscaled, run), ts.version, _unit_differs(root))


def install(
    ts: Tailscale,
    plan: InstallPlan,
    root: str | Path = "/",
    fetch_salt: FetchSalt | None = None,
    run=proc.run,
    reload=None,
) -> None:
    """Download, verify and install (:func:`palplat.release.install`); then write the unit
    (``reload`` after a unit change: default ``systemctl daemon-reload`` when root is /)."""
    if plan.desired and plan.current != plan.desired:
        url = archive_url(ts)
        release.install(
            release.Artifact(url, P, sha256=ts.sha256, sums_url=url + ".sha256"),
            {name: Path(root, path.lstrip("/")) for name, path in BINARIES.items()},
            what="tailscale",
            version=ts.version,
            version_of=lambda path: installed_version(path, run),
            current=plan.current,
            fetch_salt=fetch_salt,
        )
    if plan.unit_changed:
        unit = Path(root, UNIT.lstrip("/"))
        unit.parent.mkdir(parents=True, exist_ok=True)
        unit.write_text(UNIT_TEXT)
        if reload is not None:
            reload()
        elif str(root) == "/":
            run(["systemctl", "daemon-reload"], timeout=60)


# ------------------------------------------------------------------------------ join


def status(run=proc.run, cli: str = TAILSCALE) -> dict[str, Any]:
    """``tailscale status --json``; ``BackendState`` is ``NotInstalled`` without the CLI and
    ``Unreachable`` (with ``Error``) when tailscaled does not answer."""
    if not Path(cli).exists() and "/" in cli:
        return {"BackendState": "NotInstalled"}
    res = run([cli, "status", "--json"], check=False, timeout=30)
    try:
        return json.loads(res.stdout)
    except ValueError:
        return {"BackendState": "Unreachable", "Error": redact.tail(res.stderr or res.stdout, 300)}


def prefs(run=proc.run, cli: str = TAILSCALE) -> dict[str, Any]:
    """``tailscale debug prefs`` (the node's settings: ``Hostname``, ``ControlURL``,
    ``RouteAll``, ...); empty when it cannot be read (then nothing is compared)."""
    res = run([cli, "debug", "prefs"], check=False, timeout=30)
    try:
        out = json.loads(res.stdout) if res.returncode == 0 else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def settings_drift(ts: Tailscale, now: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pillar's settings a running node does not have: ``hostname`` and
    ``accept_routes`` (``tailscale set`` changes them), ``login_server`` (a new login)."""
    out: dict[str, dict[str, Any]] = {}
    if not now:
        return out
    if ts.hostname and now.get("Hostname") not in (None, ts.hostname):
        out["hostname"] = {"old": now.get("Hostname"), "new": ts.hostname}
    if "RouteAll" in now and bool(now["RouteAll"]) != ts.accept_routes:
        out["accept_routes"] = {"old": bool(now["RouteAll"]), "new": ts.accept_routes}
    url = (now.get("ControlURL") or "").rstrip("/")
    if ts.login_server and url and url != ts.login_server.rstrip("/"):
        out["login_server"] = {"old": url, "new": ts.login_server}
    return out


@dataclass
class JoinPlan:
    state: str
    tags_now: list[str]
    key_file_changed: bool
    up: bool
    comment: str
    changes: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # for `tailscale set`


def _key_differs(ts: Tailscale) -> bool:
    if ts.auth_key is None:
        return False
    try:
        return Path(ts.auth_key_file).read_text().strip() != str(ts.auth_key.reveal()).strip()
    except FileNotFoundError:
        return True
    except OSError as exc:
        raise TailscaleError(
            f"{P}:auth_key_file: {ts.auth_key_file} cannot be read ({exc.strerror}); it must be "
            "a regular file palplat (root) can read and write, mode 0600"
        ) from None


def join_plan(ts: Tailscale, run=proc.run, cli: str = TAILSCALE) -> JoinPlan:
    st = status(run, cli)
    state = st.get("BackendState") or "unknown"
    tags = sorted((st.get("Self") or {}).get("Tags") or [])
    key_changed = _key_differs(ts)
    up = state != "Running" or tags != sorted(ts.tags)
    drift = settings_drift(ts, prefs(run, cli)) if state == "Running" else {}
    if "login_server" in drift:
        up = True  # another control server: a new login (with every setting)
    settings = {} if up else drift
    changes: dict[str, Any] = {}
    if settings:
        changes["settings"] = settings
    if key_changed:
        old = "another key" if Path(ts.auth_key_file).exists() else None
        changes["auth_key_file"] = {"old": old, "new": f"{ts.auth_key_file} (0600)"}
    if up:
        changes["tailscale"] = {
            "old": {"state": state, "tags": tags},
            "new": {"state": "Running", "tags": sorted(ts.tags)},
        }
    if up and state == "Running":
        # tags and the control server of a running node change only with a new login
        # (`tailscale set` has no --advertise-tags): `up --force-reauth` with a key that
        # was already used (a one-off key) logs the node out of the tailnet, and SSH and
        # Salt with it when they run over tailscale0. Only with a key that can log in.
        what = (
            f"the control server ({drift['login_server']['old']} -> {drift['login_server']['new']})"
            if "login_server" in drift
            else f"the tags ({tags} -> {sorted(ts.tags)})"
        )
        if not key_changed and not ts.auth_key_reusable:
            raise TailscaleError(
                f"{P}: changing {what} of a running node needs a new login (tailscale has no "
                "`tailscale set` for it), and the key in "
                f"{ts.auth_key_file} already logged this node in: a one-off key would fail "
                "and drop the node from the tailnet (SSH and Salt over tailscale0 with it). "
                f"Put a fresh auth key allowed to use these tags in {P}:auth_key (GPG pillar), "
                f"or set {P}:auth_key_reusable: true if the key is reusable, or change it in "
                "the Tailscale admin console and update the pillar to match; nothing was "
                "changed"
            )
    if up and ts.auth_key is None and not Path(ts.auth_key_file).exists():
        raise TailscaleError(
            f"{P}: the node is {state} and there is no auth key: set {P}:auth_key (GPG "
            f"pillar) or put the key in {ts.auth_key_file} (mode 0600)"
        )
    if up and state == "Running":
        comment = (
            f"log in again (tailscale up --force-reauth, with a fresh key) to change "
            f"{'the control server' if 'login_server' in drift else 'the tags'} to "
            f"{sorted(ts.tags)}"
        )
    elif up:
        comment = f"join the tailnet as {state} -> Running with tags {sorted(ts.tags)}"
    elif settings:
        comment = f"set {', '.join(sorted(settings))} on the running node (tailscale set)"
    else:
        comment = f"on the tailnet (Running, tags {tags})"
    return JoinPlan(state, tags, key_changed, up, comment, changes, settings)


def set_argv(ts: Tailscale, settings: dict[str, Any], cli: str = TAILSCALE) -> list[str]:
    """``tailscale set`` for the settings a running node changes without a new login."""
    argv = [cli, "set"]
    if "hostname" in settings:
        argv.append(f"--hostname={ts.hostname}")
    if "accept_routes" in settings:
        argv.append(f"--accept-routes={'true' if ts.accept_routes else 'false'}")
    return argv


def up_argv(ts: Tailscale, cli: str = TAILSCALE, reauth: bool = False) -> list[str]:
    argv = [cli, "up", f"--auth-key=file:{ts.auth_key_file}", f"--timeout={ts.up_timeout}s"]
    argv.append("--advertise-tags=" + ",".join(ts.tags))
    if ts.hostname:
        argv.append(f"--hostname={ts.hostname}")
    if ts.login_server:
        argv.append(f"--login-server={ts.login_server}")
    argv.append(f"--accept-routes={'true' if ts.accept_routes else 'false'}")
    if reauth:
        argv.append("--force-reauth")
    return argv


def join(ts: Tailscale, plan: JoinPlan, run=proc.run, cli: str = TAILSCALE, progress=None) -> None:
    if plan.key_file_changed and ts.auth_key is not None:
        Path(ts.auth_key_file).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc.write_private(ts.auth_key_file, str(ts.auth_key.reveal()).strip() + "\n")
    if plan.up:
        if progress:
            progress("start", f"tailscale up (timeout {ts.up_timeout}s)")
        # tags of a running node change only with a new login
        reauth = plan.state == "Running"
        run(up_argv(ts, cli, reauth), timeout=ts.up_timeout + 30)
    elif plan.settings:
        run(set_argv(ts, plan.settings, cli), timeout=60)
    st = status(run, cli)
    tags = sorted((st.get("Self") or {}).get("Tags") or [])
    if st.get("BackendState") != "Running" or tags != sorted(ts.tags):
        why = f" ({st['Error']})" if st.get("Error") else ""
        raise TailscaleError(
            f"after tailscale up the node is {st.get('BackendState')}{why} with tags {tags} "
            f"(want Running, {sorted(ts.tags)}); check that the auth key may use these tags "
            "(the tailnet policy's tagOwners)"
        )
    left = settings_drift(ts, prefs(run, cli)) if (plan.up or plan.settings) else {}
    if left:
        raise TailscaleError(
            f"{P}: after tailscale {'up' if plan.up else 'set'} the node still differs: "
            + ", ".join(f"{k} {v['old']!r} (want {v['new']!r})" for k, v in sorted(left.items()))
        )
    if progress:
        progress("done", "on the tailnet")
