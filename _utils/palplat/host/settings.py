"""What the host stage converges, computed once from the validated pillar: the data
``salt/palplat/host.sls`` renders Salt's own states from (package lists, accounts, the
exact text of every file palplat writes, service names per OS family).

Plain data (JSON-able) so that the SLS needs no logic: each file is ``{path, text,
mode}``; a part that does not apply is ``None`` with the reason in ``skipped``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palplat.host.checks import ssh_managed, ssh_port

if TYPE_CHECKING:  # pragma: no cover
    from palplat.model import PalplatPillar

HEADER = "# Managed by palplat (Salt): edit the palplat:host pillar, not this file.\n"

# What k3s needs from the kernel (https://docs.k3s.io/installation/requirements): bridged
# pod traffic through netfilter, forwarding, overlayfs for containerd's snapshotter.
K3S_MODULES = ("br_netfilter", "overlay")
K3S_SYSCTL: dict[str, int] = {
    "net.ipv4.ip_forward": 1,
    "net.ipv6.conf.all.forwarding": 1,
    "net.bridge.bridge-nf-call-iptables": 1,
    "net.bridge.bridge-nf-call-ip6tables": 1,
}
# Which module makes a sysctl appear (the host check accepts them before it is loaded).
SYSCTL_FROM_MODULE = {"net.bridge.": "br_netfilter"}

PATHS = {
    "sshd": "/etc/ssh/sshd_config.d/00-palplat.conf",
    "modules": "/etc/modules-load.d/palplat.conf",
    "sysctl": "/etc/sysctl.d/90-palplat.conf",
    "timesyncd": "/etc/systemd/timesyncd.conf.d/palplat.conf",
    "journald": "/etc/systemd/journald.conf.d/palplat.conf",
    "apt_periodic": "/etc/apt/apt.conf.d/20auto-upgrades",
    "apt_unattended": "/etc/apt/apt.conf.d/52palplat-unattended-upgrades",
    "sudoers": "/etc/sudoers.d/palplat-{user}",
    "fstab": "/etc/fstab",
}
SSH_SERVICE = {"Debian": "ssh", "Arch": "sshd"}
# What the host and firewall stages rely on, installed before they use it: the OpenSSH
# server (sshd, and the ssh client Salt's ssh_auth needs), nftables (the firewall's nft)
SSH_PACKAGE = {"Arch": "openssh"}  # elsewhere openssh-server
FIREWALL_PACKAGE = "nftables"


def package_names(cfg: PalplatPillar, os_family: str) -> list[tuple[int, str]]:
    """``(index in host:packages, name on this OS family)`` of the pillar's packages (an
    entry naming other families only is left out)."""
    out = []
    for i, p in enumerate(cfg.host.packages):
        name = p if isinstance(p, str) else p.get(os_family)
        if name:
            out.append((i, name))
    return out


def modules(cfg: PalplatPillar) -> list[str]:
    h = cfg.host
    names = list(K3S_MODULES) if h.k3s_prerequisites else []
    return names + [m for m in h.kernel_modules if m not in names]


def sysctls(cfg: PalplatPillar) -> dict[str, Any]:
    h = cfg.host
    out: dict[str, Any] = dict(K3S_SYSCTL) if h.k3s_prerequisites else {}
    out.update(h.sysctl)
    return out


def sshd_text(cfg: PalplatPillar) -> str:
    # sshd keeps the first value it reads for a keyword and Debian's sshd_config includes
    # sshd_config.d/*.conf first: 00-palplat.conf wins over the rest.
    return HEADER + (
        f"Port {ssh_port(cfg)}\n"
        "PermitRootLogin no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitEmptyPasswords no\n"
        "PubkeyAuthentication yes\n"
        "AuthenticationMethods publickey\n"
    )


# What `sshd -T` must report once the drop-in is active (lowercase keywords).
def sshd_expected(cfg: PalplatPillar) -> dict[str, str]:
    return {
        "port": str(ssh_port(cfg)),
        "permitrootlogin": "no",
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "pubkeyauthentication": "yes",
        "authenticationmethods": "publickey",
    }


def modules_text(names: list[str]) -> str:
    return HEADER + "".join(f"{m}\n" for m in names)


def timesyncd_text(cfg: PalplatPillar) -> str:
    servers = cfg.host.time_sync.servers
    return HEADER + "[Time]\n" + (f"NTP={' '.join(servers)}\n" if servers else "")


def journald_text(cfg: PalplatPillar) -> str:
    j = cfg.host.journald
    return (
        HEADER + f"[Journal]\nSystemMaxUse={j.system_max_use}\nMaxRetentionSec={j.max_retention}\n"
    )


def apt_periodic_text() -> str:
    return HEADER.replace("#", "//") + (
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    )


def apt_unattended_text(cfg: PalplatPillar) -> str:
    a = cfg.host.auto_updates
    return HEADER.replace("#", "//") + (
        f'Unattended-Upgrade::Automatic-Reboot "{str(a.reboot).lower()}";\n'
        f'Unattended-Upgrade::Automatic-Reboot-Time "{a.reboot_time}";\n'
    )


def _file(path: str, text: str, mode: str = "0644") -> dict[str, str]:
    return {"path": path, "text": text, "mode": mode}


def settings(cfg: PalplatPillar, os_family: str = "Debian") -> dict[str, Any]:
    """Everything host.sls renders, for one minion's validated pillar and OS family."""
    h = cfg.host
    debian = os_family == "Debian"
    skipped: dict[str, str] = {}
    packages = [name for _, name in package_names(cfg, os_family)]
    other = [p for p in h.packages if not isinstance(p, str) and os_family not in p]
    if other:
        skipped["packages"] = (
            f"{len(other)} entr{'y' if len(other) == 1 else 'ies'} of host:packages name no "
            f"package for {os_family}"
        )

    def need(pkg: str) -> None:
        if pkg not in packages:
            packages.append(pkg)

    users = {}
    for name, u in h.users.items():
        users[name] = {
            "ssh_keys": list(u.ssh_keys),
            "groups": list(u.groups),
            "shell": u.shell,
            "uid": u.uid,
            "fullname": u.fullname,
            "sudoers": _file(
                PATHS["sudoers"].format(user=name), f"{name} ALL=(ALL) NOPASSWD:ALL\n", "0440"
            )
            if u.sudo
            else None,
        }
        if u.sudo:
            need("sudo")
    out: dict[str, Any] = {
        "manage": h.manage,
        "os_family": os_family,
        "timezone": h.timezone,
        "users": users,
        "sshd": None,
        "modules": None,
        "sysctl": None,
        "swap": h.swap,
        "time_sync": None,
        "journald": _file(PATHS["journald"], journald_text(cfg)),
        "auto_updates": None,
        "tailscale": None,
        "skipped": skipped,
    }
    if ssh_managed(cfg) or any(u.ssh_keys for u in h.users.values()):
        need(SSH_PACKAGE.get(os_family, "openssh-server"))  # before sshd and ssh_auth
    if ssh_managed(cfg):
        out["sshd"] = {
            "file": _file(PATHS["sshd"], sshd_text(cfg)),
            "service": SSH_SERVICE.get(os_family, "sshd"),
            "expected": sshd_expected(cfg),
        }
    else:
        skipped["sshd"] = "host:ssh:manage is false, or no account under host:users has ssh_keys"
    mods = modules(cfg)
    if mods:
        out["modules"] = {"names": mods, "file": _file(PATHS["modules"], modules_text(mods))}
    values = sysctls(cfg)
    if values:
        out["sysctl"] = {"config": PATHS["sysctl"], "values": values}
    if h.time_sync.enabled:
        if debian:
            need("systemd-timesyncd")
        out["time_sync"] = {
            "file": _file(PATHS["timesyncd"], timesyncd_text(cfg)),
            "service": "systemd-timesyncd",
        }
    if h.auto_updates.enabled:
        if debian:
            need("unattended-upgrades")
            out["auto_updates"] = {
                "files": [
                    _file(PATHS["apt_periodic"], apt_periodic_text()),
                    _file(PATHS["apt_unattended"], apt_unattended_text(cfg)),
                ],
                "timers": ["apt-daily.timer", "apt-daily-upgrade.timer"],
            }
        else:
            skipped["auto_updates"] = (
                f"{os_family} has no automatic security updates palplat knows (Debian: "
                "unattended-upgrades); update by hand"
            )
    if h.tailscale.enabled:
        out["tailscale"] = {"tags": list(h.tailscale.tags), "service": "tailscaled", "join": True}
    out["packages"] = packages
    # Salt loads its ssh module (ssh_auth) only once the ssh client is there
    out["reload_modules"] = SSH_PACKAGE.get(os_family, "openssh-server") in packages
    out["firewall_packages"] = [FIREWALL_PACKAGE] if h.manage and cfg.firewall.enabled else []
    return out
