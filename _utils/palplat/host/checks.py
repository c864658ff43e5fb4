"""Cross checks of ``palplat:host`` with the rest of the pillar, reported by
:func:`palplat.config.cross_check` with every other problem.

- sshd's port and the firewall's management SSH port are the same port: the firewall keeps
  exactly that port open (and guards it against lock-out), so a difference would lock the
  operator out after the next reboot or firewall change;
- sshd set to key-only logins without root needs an operator account with a key;
- Tailscale needs a pinned version, like k3s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from palplat.errors import PillarProblem

if TYPE_CHECKING:  # pragma: no cover
    from palplat.model import PalplatPillar

BASE = "palplat:host"


def ssh_managed(cfg: PalplatPillar) -> bool:
    """sshd is configured by the host stage: explicitly (``ssh:manage: true``), or by default
    once an operator account with a key exists (so that a pillar without accounts never
    turns password logins off on a host nobody could then log in to)."""
    h = cfg.host
    if not h.manage or h.ssh.manage is False:
        return False
    return h.ssh.manage is True or any(u.ssh_keys for u in h.users.values())


def ssh_port(cfg: PalplatPillar) -> int:
    """sshd's port: ``host:ssh:port``, else the firewall's management SSH port."""
    return cfg.host.ssh.port or cfg.firewall.management.ssh_port


def check(cfg: PalplatPillar) -> list[PillarProblem]:
    h = cfg.host
    out: list[PillarProblem] = []
    fw_port = cfg.firewall.management.ssh_port
    if h.ssh.port is not None and h.ssh.port != fw_port and cfg.firewall.enabled:
        out.append(
            PillarProblem(
                f"{BASE}:ssh:port",
                f"is {h.ssh.port} but palplat:firewall:management:ssh_port is {fw_port}: the "
                f"firewall keeps only port {fw_port} open for SSH, so you would be locked out; "
                "set both to the same port, or leave host:ssh:port unset (it follows the "
                "firewall)",
                str(h.ssh.port),
            )
        )
    if h.manage and h.ssh.manage is True and not any(u.ssh_keys for u in h.users.values()):
        out.append(
            PillarProblem(
                f"{BASE}:users",
                "sshd is set to key-only logins without root (host:ssh:manage: true), but no "
                "account under host:users has ssh_keys: nobody could log in; add an operator "
                "with a key, or set host:ssh:manage: false",
            )
        )
    if h.manage and h.tailscale.enabled and not h.tailscale.version:
        out.append(
            PillarProblem(
                f"{BASE}:tailscale:version",
                "is required when tailscale is enabled: pin a release (e.g. 1.76.6); palplat "
                "verifies the archive's sha256",
            )
        )
    return out
