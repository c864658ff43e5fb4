"""The k3s unit for the node's role: its text, the fingerprint of what a running k3s depends
on, and the service plan/apply (a restart only when the fingerprint differs from the one
recorded after the last successful start)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from palplat.fetch import sha256_file
from palplat.k3s.join import check_token
from palplat.k3s.layout import paths, service_manager, unit_name
from palplat.k3s.ready import wait_ready
from palplat.model import PalplatPillar


def unit_text(cfg: PalplatPillar) -> str:
    k, p = cfg.k3s, paths(cfg)
    sub = "server" if k.role == "server" else "agent"
    return f"""# Managed by palplat (Salt): edit the palplat:k3s pillar, not this file.
[Unit]
Description=k3s {sub} (managed by palplat)
Documentation=https://docs.k3s.io
Wants=network-online.target
After=network-online.target

[Service]
Type={"notify" if cfg.k3s.service_manager != "processes" else "simple"}
ExecStart={p.binary} {sub} --config {p.config}
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
"""


def fingerprint(cfg: PalplatPillar) -> str:
    """What a running k3s depends on: binary, config.yaml, registries.yaml, unit."""
    p = paths(cfg)
    h = hashlib.sha256()
    sm = service_manager(cfg)
    for path in (p.binary, p.config, p.registries, sm.unit_path(unit_name(cfg.k3s))):
        h.update(str(path).encode() + b"\0")
        try:
            h.update(sha256_file(path).encode())
        except FileNotFoundError:
            h.update(b"-")
    return h.hexdigest()


@dataclass
class ServicePlan:
    unit: str
    unit_changed: bool
    active: bool
    enabled: bool
    action: str  # nothing | start | restart
    why: str

    @property
    def changes(self) -> dict:
        out: dict[str, Any] = {}
        if self.unit_changed:
            out["unit"] = {"old": None if self.action == "start" else "changed", "new": self.unit}
        if not self.enabled:
            out["enabled"] = {"old": False, "new": True}
        if self.action != "nothing":
            out["service"] = {
                "old": "running" if self.active else "stopped",
                "new": self.action + "ed" if self.action == "restart" else "running",
            }
            out["service"]["why"] = self.why
        return out


def plan_service(cfg: PalplatPillar, pending: bool = False) -> ServicePlan:
    """``pending``: earlier states would change the binary/config in this run (test mode)."""
    sm = service_manager(cfg)
    name = unit_name(cfg.k3s)
    p = paths(cfg)
    unit_changed = sm.read_unit(name) != unit_text(cfg)
    active = sm.is_active(name)
    enabled = sm.is_enabled(name)
    try:
        stamp = p.stamp.read_text().strip()
    except FileNotFoundError:
        stamp = None
    if not active:
        action, why = "start", "not running"
    elif pending or unit_changed or stamp != fingerprint(cfg):
        action, why = "restart", "binary, config or unit changed since the last start"
    else:
        action, why = "nothing", ""
    return ServicePlan(name, unit_changed, active, enabled, action, why)


def apply_service(cfg: PalplatPillar, plan: ServicePlan, progress=None) -> dict:
    sm = service_manager(cfg)
    if plan.unit_changed:
        sm.write_unit(plan.unit, unit_text(cfg))
    if not plan.enabled:
        sm.enable(plan.unit)
    if plan.action != "nothing":
        # re-check the token right before a (re)start: a mismatch restarts nothing
        check_token(cfg)
        if progress:
            progress(
                "restart" if plan.action == "restart" else "start",
                f"{plan.action} {plan.unit}: {plan.why}",
            )
        (sm.restart if plan.action == "restart" else sm.start)(plan.unit)
    wait_ready(cfg, progress=progress)
    p = paths(cfg)
    p.stamp.parent.mkdir(parents=True, exist_ok=True)
    p.stamp.write_text(fingerprint(cfg) + "\n")
    return plan.changes
