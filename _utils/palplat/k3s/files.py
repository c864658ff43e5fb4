"""``config.yaml`` and ``registries.yaml``: their desired content, the plan (a per-key diff
with secrets masked) and the atomic 0600 write."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from palplat import redact, units
from palplat.errors import PalplatError
from palplat.k3s.flags import SECRET_KEYS
from palplat.k3s.layout import K3S_KUBECONFIG, paths, rooted
from palplat.model import PalplatPillar
from palplat.secret import Secret

HIDDEN = redact.HIDDEN


def desired_config(cfg: PalplatPillar) -> dict[str, Any]:
    """config.yaml content (plain values: it is written 0600)."""
    k, p = cfg.k3s, paths(cfg)
    out: dict[str, Any] = {
        key: (v.reveal() if isinstance(v, Secret) else v) for key, v in k.config.items()
    }
    if k.token is not None:
        out["token"] = str(k.token.reveal())
    if k.server_url:
        out["server"] = k.server_url
    if k.role == "server" and k.cluster_init and not k.server_url:
        out["cluster-init"] = True
    default_kc = str(rooted(p.root, K3S_KUBECONFIG))
    if k.role == "server" and (str(p.kubeconfig) != K3S_KUBECONFIG or p.root != "/"):
        if "write-kubeconfig" not in out and str(p.kubeconfig) != K3S_KUBECONFIG:
            out["write-kubeconfig"] = str(p.kubeconfig)
        elif "write-kubeconfig" not in out:
            out["write-kubeconfig"] = default_kc
    if p.root != "/":
        out.setdefault("data-dir", str(p.data_dir))
        if k.registries is not None:
            out.setdefault("private-registry", str(p.registries))
    return out


def desired_registries(cfg: PalplatPillar) -> dict[str, Any] | None:
    r = cfg.k3s.registries
    if r is None:
        return None
    out: dict[str, Any] = {}
    if r.mirrors:
        out["mirrors"] = {
            host: {
                k: v for k, v in (("endpoint", m.endpoint), ("rewrite", m.rewrite)) if v is not None
            }
            for host, m in r.mirrors.items()
        }
    if r.configs:
        configs: dict[str, Any] = {}
        for host, c in r.configs.items():
            entry: dict[str, Any] = {}
            if c.auth:
                entry["auth"] = {
                    "username": c.auth.username,
                    "password": str(c.auth.password.reveal()),
                }
            if c.tls:
                entry["tls"] = {
                    k: v for k, v in c.tls.model_dump().items() if v not in (None, False)
                }
            configs[host] = entry
        out["configs"] = configs
    return out


def _dump(data: Mapping[str, Any]) -> str:
    return (
        "# Managed by palplat (Salt): edit the palplat:k3s pillar, not this file.\n"
        + yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=True)
    )


def _load_yaml(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"<unparsable>": True}
    return data if isinstance(data, dict) else {}


def _mask_config(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: (
                HIDDEN
                if k in SECRET_KEYS
                or k in ("password", "auth", "identitytoken")
                and not isinstance(v, dict)
                else _mask_config(v)
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_mask_config(v) for v in data]
    return redact.mask(data)


def _key_diff(old: dict | None, new: dict | None) -> dict:
    """{"old": {changed keys}, "new": {changed keys}} with secrets masked, or {}."""
    if old == new:
        return {}
    if old is None or new is None:
        return {"old": _mask_config(old), "new": _mask_config(new)}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return {
        "old": _mask_config({k: old[k] for k in keys if k in old}),
        "new": _mask_config({k: new[k] for k in keys if k in new}),
    }


def _file_mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None


def plan_files(cfg: PalplatPillar) -> dict[str, Any]:
    """Changes ``write_files`` would make: ``{"config.yaml": {old, new}, ...}`` (masked)."""
    p = paths(cfg)
    changes: dict[str, Any] = {}
    for label, path, want in (
        ("config.yaml", p.config, desired_config(cfg)),
        ("registries.yaml", p.registries, desired_registries(cfg)),
    ):
        have = _load_yaml(path)
        if want is None and have is None:
            continue
        d = _key_diff(have, want)
        if d:
            changes[label] = d
        elif want is not None and _file_mode(path) != 0o600:
            changes[label] = {"old": {"mode": oct(_file_mode(path) or 0)}, "new": {"mode": "0o600"}}
    return changes


def write_files(cfg: PalplatPillar) -> dict[str, Any]:
    """Write config.yaml / registries.yaml (0600, atomic) where they differ; verify."""
    changes = plan_files(cfg)
    p = paths(cfg)
    for label, path, want in (
        ("config.yaml", p.config, desired_config(cfg)),
        ("registries.yaml", p.registries, desired_registries(cfg)),
    ):
        if label not in changes:
            continue
        if want is None:
            path.unlink()
            continue
        units.write_if_changed(path, _dump(want), 0o600)
        if _load_yaml(path) != want or _file_mode(path) != 0o600:
            raise PalplatError(f"verify: {path} does not hold what was written")
    return changes
