"""The ``palplat:host`` pillar section: what the host stage sets up before the firewall
and k3s (operator accounts and keys, sshd, kernel prerequisites, swap, time, journald,
security updates, Tailscale).

Field-level rules live here (an SSH key that is a key, user, package, module and sysctl
names that cannot carry a shell character, a timezone from the tz database); rules that
look across sections (the SSH port and the firewall's management port agree, at least one
key when sshd takes only keys) live in :mod:`palplat.host.checks`, and facts of the host
itself (does this sysctl exist here) in :mod:`palplat.host.facts`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import struct
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator

from palplat.fields import DnsLabel, Model, Port
from palplat.secret import Secret

# --------------------------------------------------------------------------- validators

SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
# Accounts of the OS and of common daemons: an operator account is never one of them.
SYSTEM_USERS = frozenset(
    "root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc "
    "gnats nobody nogroup _apt messagebus sshd systemd-network systemd-resolve "
    "systemd-timesync systemd-journal-remote polkitd salt tailscale".split()
)
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+._@-]{0,127}$")
MODULE_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
SYSCTL_RE = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_/-]+)+$")
TAG_RE = re.compile(r"^tag:[a-z0-9][a-z0-9-]{0,62}$")


def ssh_key(v: str) -> str:
    """One OpenSSH public key line: ``<type> <base64 blob> [comment]``, the blob's own type
    equal to the line's (so a truncated or pasted-wrong key is caught, not installed)."""
    parts = v.strip().split(None, 2)
    hint = "; paste one line of a .pub file, e.g. 'ssh-ed25519 AAAAC3Nz... you@laptop'"
    if len(parts) < 2 or "\n" in v.strip():
        raise ValueError("is not an SSH public key" + hint)
    kind, blob = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(
            f"is not an SSH public key: '{kind[:40]}' is not a key type (one of "
            f"{', '.join(SSH_KEY_TYPES)}; options before the key are not supported){hint}"
        )
    try:
        raw = base64.b64decode(blob, validate=True)
        (n,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + n].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise ValueError(
            "is not an SSH public key: its key data is not the base64 of a key" + hint
        ) from None
    if inner != kind or len(raw) < 4 + n + 16:
        raise ValueError(
            f"is not an SSH public key: the key data is not a {kind} key (truncated or "
            "mixed up with another key)" + hint
        )
    return " ".join(parts)


def user_name(v: str) -> str:
    if not USER_RE.match(v):
        raise ValueError(
            "is not a valid user name: up to 32 lowercase letters, digits, '_' and '-', "
            "starting with a letter or '_' (e.g. 'pal')"
        )
    if v in SYSTEM_USERS:
        raise ValueError("is a system account; operator accounts need a name of their own")
    return v


def group_name(v: str) -> str:
    if not USER_RE.match(v):
        raise ValueError("is not a valid group name (lowercase letters, digits, '_' and '-')")
    return v


def package_name(v: str) -> str:
    if not PACKAGE_RE.match(v):
        raise ValueError(
            "is not a package name: lowercase letters, digits and + . - _ @, starting with "
            "a letter or digit; no spaces, no shell characters, one package per entry"
        )
    return v


def module_name(v: str) -> str:
    if not MODULE_RE.match(v):
        raise ValueError("is not a kernel module name (letters, digits, '_' and '-')")
    return v


def sysctl_name(v: str) -> str:
    if not SYSCTL_RE.match(v) or ".." in v:
        raise ValueError(
            "is not a sysctl name: dotted, as `sysctl -a` prints it (e.g. net.ipv4.ip_forward)"
        )
    return v


def sysctl_value(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError("must be a number or a string")
    if isinstance(v, str) and (not v.strip() or any(c in v for c in "\n\r=#;")):
        raise ValueError("must be one line without '=', '#' or ';'")
    return v


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    try:
        import zoneinfo

        return frozenset(zoneinfo.available_timezones())
    except Exception:  # noqa: BLE001 - no tz database here: the minion checks it
        return frozenset()


def timezone(v: str) -> str:
    zones = _zones()
    if not re.match(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$", v) or (zones and v not in zones):
        raise ValueError(
            "is not a timezone of the tz database (e.g. Europe/Berlin, America/Los_Angeles, "
            "Etc/UTC); `timedatectl list-timezones` lists them"
        )
    return v


def hhmm(v: str) -> str:
    m = re.match(r"^([01][0-9]|2[0-3]):([0-5][0-9])$", v)
    if not m:
        raise ValueError("must be a time of day HH:MM (e.g. 04:00)")
    return v


def journal_size(v: str) -> str:
    if not re.match(r"^[0-9]+[KMGT]$", v):
        raise ValueError("must be a size with a unit K, M, G or T (e.g. 1G, 500M)")
    return v


def journal_span(v: str) -> str:
    if not re.match(r"^[0-9]+(s|min|h|day|week|month|year)$", v):
        raise ValueError("must be a time span (e.g. 2week, 1month, 30day)")
    return v


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def hostname(v: str) -> str:
    if len(v) > 253 or not HOSTNAME_RE.match(v):
        raise ValueError("is not a host name (e.g. 0.debian.pool.ntp.org)")
    return v


def abs_path(v: str) -> str:
    if not v.startswith("/") or any(c in v for c in "\n\0") or "/../" in v + "/":
        raise ValueError("must be an absolute path")
    return v


def tag(v: str) -> str:
    if not TAG_RE.match(v):
        raise ValueError("is not a Tailscale tag: 'tag:' and a lowercase name (e.g. tag:k3s)")
    return v


SshKey = Annotated[str, AfterValidator(ssh_key)]
UserName = Annotated[str, AfterValidator(user_name)]
GroupName = Annotated[str, AfterValidator(group_name)]
PackageName = Annotated[str, AfterValidator(package_name)]
# Salt's os_family grain values palplat knows package names for
OS_FAMILIES = ("Debian", "RedHat", "Arch", "Suse")


def package(v: Any) -> str | dict[str, str]:
    """A package: one name everywhere, or its name per OS family (a family left out
    installs nothing there). One error per entry, at its own path."""
    if isinstance(v, str):
        return package_name(v)
    if not isinstance(v, dict) or not v:
        raise ValueError(
            "is not a package: a name, or a mapping of OS family to name, e.g. "
            "{Debian: nfs-common, RedHat: nfs-utils}"
        )
    for fam, name in v.items():
        if fam not in OS_FAMILIES:
            raise ValueError(
                f"names the OS family {fam!r}; Salt's os_family grain is one of "
                f"{', '.join(OS_FAMILIES)}"
            )
        if not isinstance(name, str):
            raise ValueError(f"{fam}: is not a package name (a string)")
        try:
            package_name(name)
        except ValueError as exc:
            raise ValueError(f"{fam}: {exc}") from None
    return dict(v)


Package = Annotated[
    Any,
    PlainValidator(
        package,
        json_schema_input_type=PackageName | dict[Literal[OS_FAMILIES], PackageName],  # type: ignore[valid-type]
    ),
]
ModuleName = Annotated[str, AfterValidator(module_name)]
SysctlName = Annotated[str, AfterValidator(sysctl_name)]
SysctlValue = Annotated[Any, AfterValidator(sysctl_value)]
Timezone = Annotated[str, AfterValidator(timezone)]
HostName = Annotated[str, AfterValidator(hostname)]
AbsPath = Annotated[str, AfterValidator(abs_path)]
Tag = Annotated[str, AfterValidator(tag)]


# ------------------------------------------------------------------------------- models


def _swap_word(v: Any) -> Any:
    """YAML 1.1 (Salt's loader) reads a bare ``off`` as false: that is what it meant."""
    return "off" if v is False else v


class User(Model):
    """An operator account: key-only login (no password is ever set)."""

    ssh_keys: list[SshKey] = Field(
        default_factory=list, description="OpenSSH public keys, one line each (authorized_keys)."
    )
    groups: list[GroupName] = Field(default_factory=list, description="Extra groups.")
    sudo: bool = Field(
        False,
        description="sudo without a password (the account has none: logins are key-only).",
    )
    shell: AbsPath = "/bin/bash"
    """Login shell."""
    uid: Annotated[int, Field(ge=1000, le=59999)] | None = None
    """Fixed uid (1000-59999); default: the next free one."""
    fullname: Annotated[str, Field(pattern=r"^[^:\n,]*$")] = ""
    """GECOS full name."""


class Ssh(Model):
    """sshd's settings (a drop-in that wins over the distribution's config)."""

    manage: bool | None = Field(
        None,
        description="Configure sshd: key-only, no root login, the port below. Default (null): "
        "once an account under host:users has ssh_keys; true requires one.",
    )
    port: Port | None = Field(
        None,
        description="sshd's port. Default: palplat:firewall:management:ssh_port; when both "
        "are set they must be equal (the firewall keeps that port open).",
    )


class TimeSync(Model):
    """Time sync (etcd needs a right clock)."""

    enabled: bool = Field(True, description="systemd-timesyncd keeps the clock (etcd needs it).")
    servers: list[HostName] = Field(
        default_factory=list, description="NTP servers; empty: the distribution's pool."
    )


class Journald(Model):
    """journald's limits."""

    system_max_use: Annotated[str, AfterValidator(journal_size)] = "1G"
    """Most disk space the journal takes (e.g. 2G)."""
    max_retention: Annotated[str, AfterValidator(journal_span)] = "1month"
    """Oldest entries kept (e.g. 1month, 2week)."""


class AutoUpdates(Model):
    """Automatic security updates."""

    enabled: bool = Field(
        True,
        description="Automatic security updates (Debian: unattended-upgrades). Arch has no "
        "equivalent: the stage says so and does nothing.",
    )
    reboot: bool = Field(False, description="Reboot by itself when an update needs it.")
    reboot_time: Annotated[str, AfterValidator(hhmm)] = "04:00"
    """When an automatic reboot may happen (HH:MM), with reboot: true."""


class Tailscale(Model):
    """tailscaled on the host, joined to the tailnet with an auth key from a 0600 file."""

    enabled: bool = False
    """Install and join tailscaled (needs an auth key only you can make)."""
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")] | None = Field(
        None, description="Pinned tailscale version (required when enabled), e.g. 1.76.6."
    )
    url: str = Field(
        "https://pkgs.tailscale.com/stable/tailscale_{version}_{arch}.tgz",
        description="Static release archive: the official pattern, a mirror, file:// or salt://.",
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="sha256 of the archive; default: the published <url>.sha256."
    )
    auth_key: Secret | None = Field(
        None,
        description="Auth key (GPG pillar). palplat writes it to auth_key_file (0600); "
        "tailscale reads it from there, never from argv. Unset: put the file there yourself.",
    )
    auth_key_file: AbsPath = "/etc/palplat/tailscale-auth.key"
    """The auth key's 0600 file on the host (written from auth_key, or put there by you)."""
    auth_key_reusable: bool = Field(
        False,
        description="The auth key may log in more than once (a reusable key): a change of "
        "tags or control server on a running node may then log in again with it. Otherwise "
        "such a change needs a fresh key in auth_key.",
    )
    tags: list[Tag] = Field(default_factory=list, description="--advertise-tags.")
    hostname: DnsLabel | None = Field(None, description="Tailscale machine name.")
    login_server: str | None = Field(None, description="Control server URL (Headscale).")
    accept_routes: bool = False
    """tailscale up --accept-routes."""
    up_timeout: Annotated[int, Field(ge=10, le=600)] = 120
    """Seconds to wait for the join."""


class Host(Model):
    """The host stage: Salt's own states (pkg, user, ssh_auth, file, sysctl, service,
    timezone) with palplat's pillar checks, ordering and verification. See docs/host.md."""

    manage: bool = Field(
        True,
        description="Manage the host. The sandbox sets false so that nothing outside its "
        "work directory changes.",
    )
    packages: list[Package] = Field(
        default_factory=list,
        description="OS packages: a name, or a name per OS family where they differ, e.g. "
        "{Debian: nfs-common, RedHat: nfs-utils, Arch: nfs-utils} (a family left out "
        "installs nothing there). The plan checks each against the package index.",
    )
    timezone: Timezone | None = None
    """IANA timezone (timezone.system), e.g. Europe/Berlin; checked against the host's tz database.
    """
    users: dict[UserName, User] = Field(default_factory=dict, description="Operator accounts.")
    ssh: Ssh = Ssh()
    """sshd: key-only logins, no root, on the firewall's SSH port."""
    k3s_prerequisites: bool = Field(
        True,
        description="The kernel modules (br_netfilter, overlay) and sysctls (forwarding, "
        "bridge netfilter) k3s needs, before kernel_modules and sysctl below.",
    )
    kernel_modules: list[ModuleName] = Field(
        default_factory=list, description="Loaded now and at every boot (modules-load.d)."
    )
    sysctl: dict[SysctlName, SysctlValue] = Field(
        default_factory=dict,
        description="Kernel parameters, now and at every boot (sysctl.d); override the "
        "k3s prerequisites by naming them.",
    )
    swap: Annotated[Literal["off", "keep"], BeforeValidator(_swap_word)] = Field(
        "off",
        description="off: no active swap and none at boot (what k3s's kubelet expects). A "
        "bare YAML off (read as false) means off.",
    )
    time_sync: TimeSync = TimeSync()
    """systemd-timesyncd."""
    journald: Journald = Journald()
    """journald's disk use."""
    auto_updates: AutoUpdates = AutoUpdates()
    """Automatic security updates (Debian: unattended-upgrades)."""
    tailscale: Tailscale = Tailscale()
    """tailscaled on the host (the tailnet the firewall trusts)."""
