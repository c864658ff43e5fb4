"""palplat's host firewall: one nftables table, rendered, diffed and applied atomically.

* :func:`desired` builds the table from ``palplat:firewall`` plus the node's k3s profile.
  Every rule carries its name in its comment; addresses go into named interval sets.
* :func:`render` writes an ``nft -f`` script that replaces only palplat's table in one
  transaction (``table`` + ``delete table`` + the new table); other tables are never named.
* :func:`parse` reads ``nft -j list table`` back into the same model, normalized (set
  elements and port lists become merged intervals), so "changed?" is an equality test and
  the diff is per rule name.
* :func:`lockout_problems` refuses a table that blocks the management ports from
  ``management.allow_from``; :func:`narrows` tells whether a change takes away access to
  the management ports, which is then applied commit-confirmed (:func:`schedule`,
  :func:`confirm`).

The modules, each importing only those above it:

* ``intervals``: address and port intervals (the normal form of sets and port lists)
* ``ruleset``: the table model (:class:`Table`, :class:`Rule`, :class:`NftSet`),
  :func:`render` and :func:`parse`
* ``build``: :func:`desired` and the k3s port profile
* ``changes``: :func:`diff` and :func:`summary`
* ``policy``: reachability of the management ports, :func:`narrows`, the lock-out guard
* ``cli``: :class:`Nft`, the ``nft`` command line
* ``host``: :class:`Paths`, the boot-time config, ``nftables.service``
* ``sshd``: the port(s) sshd really listens on (the guard protects those)
* ``commit``: commit-confirmed (arm, confirm, roll back; the program that rolls back is
  :mod:`palplat.nft_rollback`)
* ``converge``: :class:`Plan`, :func:`plan` and :func:`apply`
* ``probe``: the proof of access before an orchestrated confirm (a new connection to SSH
  from outside the node, before and after the change)
* ``checks``: pillar cross checks (rule names, sets, cluster ports open to the world)

This module only re-exports: ``from palplat import nft; nft.plan(cfg)``.
"""

from palplat.nft.build import desired, profile_rules
from palplat.nft.changes import SHOW, diff, summary
from palplat.nft.cli import NFT_TIMEOUT, Nft, NftRejected, NotInstalled, installed
from palplat.nft.commit import (
    confirm,
    last_outcome,
    pending,
    rollback_now,
    schedule,
    systemd_running,
)
from palplat.nft.converge import Plan, apply, plan
from palplat.nft.host import (
    INCLUDE_COMMENT,
    PERSIST_HEADER,
    SERVICE,
    Paths,
    persist_plan,
    persist_write,
    rooted,
    service_enable,
    service_enabled,
)
from palplat.nft.intervals import (
    FULL,
    MAX,
    Interval,
    Intervals,
    addr_elements,
    covers,
    merge,
    net_interval,
    port_intervals,
    split_cidrs,
)
from palplat.nft.policy import lockout_problems, management_ports, narrows, reach
from palplat.nft.probe import info as probe_info
from palplat.nft.ruleset import CHAIN, FAMILY, NftSet, Rule, Table, parse, removal_script, render

__all__ = [
    "CHAIN",
    "FAMILY",
    "FULL",
    "INCLUDE_COMMENT",
    "MAX",
    "NFT_TIMEOUT",
    "PERSIST_HEADER",
    "SERVICE",
    "SHOW",
    "Interval",
    "Intervals",
    "Nft",
    "NftRejected",
    "NotInstalled",
    "NftSet",
    "Paths",
    "Plan",
    "Rule",
    "Table",
    "addr_elements",
    "apply",
    "confirm",
    "covers",
    "desired",
    "diff",
    "last_outcome",
    "lockout_problems",
    "management_ports",
    "merge",
    "narrows",
    "net_interval",
    "parse",
    "pending",
    "persist_plan",
    "persist_write",
    "installed",
    "plan",
    "port_intervals",
    "probe_info",
    "profile_rules",
    "reach",
    "removal_script",
    "render",
    "rollback_now",
    "rooted",
    "schedule",
    "service_enable",
    "service_enabled",
    "split_cidrs",
    "summary",
    "systemd_running",
]
