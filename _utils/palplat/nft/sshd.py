"""The port(s) sshd really listens on, which the lock-out guard and the confirm probe
protect.

When the host stage manages sshd (:func:`palplat.host.checks.ssh_managed`) it sets the port
itself (``host:ssh:port``, else ``firewall:management:ssh_port``; the two must agree), so
the pillar is the truth. Otherwise palplat asks sshd: ``sshd -T`` prints the effective
configuration (every ``Port`` and ``ListenAddress``); a host whose sshd listens on 2222
while the pillar keeps the default 22 is then guarded on 2222, and the guard refuses a
table that would only open 22. Tables in a network namespace or under another root
(sandbox, tests) are not the host's sshd: the pillar's port is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from palplat import proc
from palplat.errors import CommandError
from palplat.host.checks import ssh_managed, ssh_port


@dataclass(frozen=True)
class SshPorts:
    ports: tuple[int, ...]
    source: str  # where the ports come from, for messages

    def differs_from(self, pillar_port: int) -> list[int]:
        return [p for p in self.ports if p != pillar_port]


def parse_sshd_t(text: str) -> list[int]:
    """The TCP ports of ``sshd -T``: ``port N`` lines and ``listenaddress ADDR:N`` lines."""
    ports: set[int] = set()
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        key = key.lower()
        if key == "port" and value.strip().isdigit():
            ports.add(int(value))
        elif key == "listenaddress":
            m = re.search(r":(\d+)$", value.strip())
            if m and (value.startswith("[") or value.count(":") == 1):
                ports.add(int(m.group(1)))
    return sorted(p for p in ports if 0 < p < 65536)


def live_ports(cfg, run=proc.run) -> SshPorts:
    """The SSH port(s) the firewall must keep open on this node (see the module doc)."""
    fw = cfg.firewall
    pillar = fw.management.ssh_port
    if ssh_managed(cfg):
        return SshPorts((ssh_port(cfg),), "the host stage manages sshd")
    if fw.netns or (fw.root or "/") != "/":
        return SshPorts((pillar,), "palplat:firewall:management:ssh_port")
    try:
        res = run(["sshd", "-T"], check=False, timeout=30)
    except CommandError:  # no sshd on this host: nothing listens, the pillar's port is kept
        return SshPorts((pillar,), "palplat:firewall:management:ssh_port (no sshd found)")
    ports = parse_sshd_t(res.stdout) if res.returncode == 0 else []
    if not ports:
        why = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no port"]
        return SshPorts(
            (pillar,), f"palplat:firewall:management:ssh_port (sshd -T failed: {why[0][:200]})"
        )
    return SshPorts(tuple(ports), "sshd -T (sshd is not managed by palplat)")
