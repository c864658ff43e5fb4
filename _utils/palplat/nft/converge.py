"""Plan and apply: desired vs live as a :class:`Plan` (what Salt's test mode shows), and
carrying it out (arm the rollback when risky, one ``nft -f`` transaction, verify, persist,
enable ``nftables.service``)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from palplat import nft_rollback, proc
from palplat.errors import PalplatError, PillarError
from palplat.nft.build import desired
from palplat.nft.changes import diff, summary
from palplat.nft.cli import Nft
from palplat.nft.commit import cancel, last_outcome, pending, schedule, unreported_rollback
from palplat.nft.host import (
    PERSIST_HEADER,
    SERVICE,
    Paths,
    persist_plan,
    persist_write,
    service_enable,
    service_enabled,
)
from palplat.nft.policy import lockout_problems, management_ports, narrows
from palplat.nft.ruleset import FAMILY, Table, render
from palplat.nft.sshd import SshPorts, live_ports


@dataclass
class Plan:
    fw: Any
    paths: Paths
    want: Table
    live: Table | None
    script: str
    changes: dict[str, Any]
    table_changed: bool
    risky_ports: list[int]
    pending: dict | None
    persist: dict[str, Any]  # what persisting changes now ({} when deferred or up to date)
    persist_content: str | None
    service: bool  # nftables.service needs enabling
    ssh: SshPorts | None = None  # the SSH port(s) guarded
    # an earlier change its timer rolled back, not reported yet, that this change (applied
    # without a confirmation) supersedes: the run keeps what it applies, so the orchestrated
    # confirm must not fail for the old one
    superseded: dict | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def comment(self, test: bool) -> str:
        if not self.changed:
            c = f"firewall table {FAMILY} {self.want.name} is in the desired state"
            if self.pending:
                left = max(0, int(self.pending["deadline"] - time.time()))
                c += (
                    f"; an earlier change is NOT confirmed yet and rolls back in {left}s: run "
                    "palplat_nftables.confirm"
                )
            return c
        verb = "would" if test else "did"
        parts = []
        if self.table_changed:
            parts.append(f"{verb} {summary(self.changes)} in table {FAMILY} {self.want.name}")
        if self.risky_ports:
            parts.append(
                f"the change narrows access to management port(s) "
                f"{', '.join(map(str, self.risky_ports))}: it {'would roll' if test else 'rolls'} "
                f"back in {self.fw.confirm_seconds}s unless confirmed with "
                "palplat_nftables.confirm"
                + (" (persistence waits for the confirmation)" if self.persist_content else "")
            )
        if self.persist:
            parts.append(f"{verb} write the boot-time config ({', '.join(self.persist)})")
        if self.superseded:
            at = time.strftime("%H:%M:%S", time.localtime(self.superseded.get("at", 0)))
            parts.append(
                f"this change {'would supersede' if test else 'supersedes'} an earlier, "
                f"never confirmed one ({self.superseded.get('outcome', 'rolled back')} by "
                f"its timer at {at})"
            )
        if self.service:
            parts.append(f"{verb} enable {SERVICE}")
        return "; ".join(parts)


def _persist_wanted(fw) -> bool:
    # The boot-time config belongs to the host's namespace: a netns table is persisted
    # only under a non-default root (sandbox, tests).
    return fw.persist and not (fw.netns and (fw.root or "/") == "/")


def plan(cfg, nft: Nft | None = None, run=proc.run, ssh: SshPorts | None = None) -> Plan:
    """Desired vs live: raises :class:`PillarError` on a lock-out, :class:`CommandError`
    when ``nft -c`` rejects the rendered table. Changes nothing. ``ssh``: the SSH ports to
    guard (default: :func:`palplat.nft.sshd.live_ports`, what sshd really listens on)."""
    fw = cfg.firewall
    nft = nft or Nft(fw.netns, run)
    paths = Paths.of(fw)
    want = desired(cfg)
    ssh = ssh or live_ports(cfg, run)
    problems = lockout_problems(fw, want, ssh)
    if problems:
        raise PillarError(problems)
    live = nft.live(fw.table)
    changes = diff(live, want)
    script = render(want)
    risky: list[int] = []
    if changes:
        nft.check(script)
        risky = narrows(live, want, management_ports(fw, ssh.ports))
    rec = pending(paths)
    content = None
    persist: dict[str, Any] = {}
    service = False
    if _persist_wanted(fw):
        header = PERSIST_HEADER.format(family=FAMILY, name=fw.table, main=paths.main_config)
        content = f"{header}\n{script}"  # == render(want, header), rendered once
        # Deferred to palplat_nftables.confirm while a change is unconfirmed.
        if not risky and rec is None:
            persist = persist_plan(paths, content)
        enabled = service_enabled(fw.root, run)
        service = enabled is False
    all_changes = dict(changes)
    if risky:
        all_changes["confirm"] = {
            "old": None,
            "new": f"rollback in {fw.confirm_seconds}s unless palplat_nftables.confirm",
        }
    if persist:
        all_changes["persist"] = persist
    if service:
        all_changes["service"] = {"old": "disabled", "new": f"{SERVICE} enabled"}
    superseded = unreported_rollback(paths) if changes and not risky and rec is None else None
    return Plan(
        fw,
        paths,
        want,
        live,
        script,
        all_changes,
        bool(changes),
        risky,
        rec,
        persist,
        content,
        service,
        ssh,
        superseded,
    )


def apply(p: Plan, nft: Nft | None = None, run=proc.run, progress=None) -> Table:
    """Carry out a plan: arm the rollback (risky changes), load the table in one
    transaction, re-read and verify, persist, enable the service. Returns the live table."""
    fw = p.fw
    nft = nft or Nft(fw.netns, run)
    say = progress or (lambda *a, **k: None)
    live = p.live
    if p.table_changed:
        rec = None
        if p.risky_ports or p.pending:
            persist = (
                {"paths": p.paths.__dict__, "content": p.persist_content}
                if p.persist_content is not None
                else None
            )
            # the restore script comes from the live table under the record's lock (or an
            # unconfirmed earlier change's), never from what this plan saw
            rec = schedule(fw, p.paths, nft, persist, run)
            say(
                "armed",
                f"rollback of {FAMILY} {fw.table} armed ({rec['mechanism']}), "
                f"{fw.confirm_seconds}s to confirm",
                force=True,
            )
        try:
            nft.load(p.script)
        except PalplatError:
            if rec is not None and rec.get("first"):
                # nothing was loaded and nothing earlier is pending: disarm this rollback
                with nft_rollback.locked(p.paths.record):
                    cur = nft_rollback.read(p.paths.record)
                    if cur is not None and cur.get("token") == rec["token"]:
                        cancel(rec, run)
                        os.unlink(p.paths.record)
                        with contextlib.suppress(OSError):
                            os.unlink(rec["restore_script"])
            raise
        live = nft.live(fw.table)
        if live is None or live.key() != p.want.key():
            left = diff(live, p.want)
            raise PalplatError(
                f"nft loaded table {FAMILY} {fw.table} but the live table differs from the "
                f"rendered one ({summary(left)}); check for another tool rewriting it"
            )
        say("applied", f"table {FAMILY} {fw.table} applied: {summary(p.changes) or 'persistence'}")
        if rec is None and p.superseded:
            _mark_superseded(p.paths, p.superseded)
    if p.persist:
        persist_write(p.paths, p.persist_content)
        left = persist_plan(p.paths, p.persist_content)
        if left:
            raise PalplatError(f"wrote the boot-time config but it still differs: {left}")
    if p.service:
        service_enable(fw.root, run)
    return live


def _mark_superseded(paths: Paths, last: dict) -> None:
    """The rolled-back change ``last`` is reported by this apply: mark it seen (the same
    record only, under the rollback's lock), so no later confirm fails for it."""
    if not os.path.isdir(paths.state_dir):
        return
    with nft_rollback.locked(paths.record):
        cur = last_outcome(paths)
        if cur and cur.get("at") == last.get("at") and cur.get("token") == last.get("token"):
            cur.update(seen=True, superseded=True)
            nft_rollback.write(nft_rollback.outcome_path(paths.record), cur)
