"""Readiness: the API's /readyz, this node Ready, the wait for both (with progress events),
and the check that a kubeconfig reaches a ready API server."""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from pathlib import Path

from palplat import redact, units
from palplat.errors import InputError, PalplatError, WaitTimeout
from palplat.k3s.install import installed_version
from palplat.k3s.layout import kubeconfig_path, node_name, paths, service_manager, unit_name
from palplat.kube import Kube, KubeError, NotFound
from palplat.model import PalplatPillar


def _kube(kubeconfig: Path):
    return Kube(str(kubeconfig), request_timeout=5)


def api_ready(kubeconfig: Path) -> tuple[bool, str]:
    """GET /readyz through ``kubeconfig``: (ready, why not)."""
    if not kubeconfig.exists():
        return False, f"kubeconfig {kubeconfig} not written yet"
    try:
        kube = _kube(kubeconfig)
    except PalplatError as exc:
        return False, str(exc)
    try:
        kube.request("GET", "/readyz", what="/readyz")
        return True, "ok"
    except KubeError as exc:
        if exc.status == 200:  # "ok" is not JSON
            return True, "ok"
        return False, f"API /readyz: {exc}"
    finally:
        kube.close()


def node_status(kubeconfig: Path, name: str) -> tuple[bool, str, dict | None]:
    """(Ready, why not, node object) of node ``name``."""
    if not kubeconfig.exists():
        return False, f"kubeconfig {kubeconfig} not written yet", None
    try:
        kube = _kube(kubeconfig)
    except PalplatError as exc:
        return False, str(exc), None
    try:
        node = kube.request("GET", f"/api/v1/nodes/{urllib.parse.quote(name)}", what=f"node {name}")
    except NotFound:
        return False, f"node {name} not registered yet", None
    except KubeError as exc:
        return False, f"node {name}: {exc}", None
    finally:
        kube.close()
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            if c.get("status") == "True":
                return True, "Ready", node
            return False, f"node {name} Ready={c.get('status')} ({c.get('reason', '')})", node
    return False, f"node {name} has no Ready condition yet", node


def wait_ready(cfg: PalplatPillar, progress=None, timeout: float | None = None) -> dict:
    """Wait for the API's /readyz (servers) and this node Ready; WaitTimeout names what is
    missing."""
    k, p = cfg.k3s, paths(cfg)
    timeout = float(timeout or k.ready_timeout)
    name = node_name(k)
    kc = p.kubeconfig if k.role == "server" else p.kubelet_kubeconfig
    sm = service_manager(cfg)
    unit = unit_name(k)
    start = time.monotonic()
    deadline = start + timeout
    if progress:
        progress("start", f"waiting up to {timeout:g}s for k3s {k.role} {name} to be Ready")
    missing: dict[str, str] = {}
    delay = 0.3
    # the kubelet that registers must be the binary just started (after an upgrade, a
    # Node still Ready from before the restart is not this k3s coming back)
    want = installed_version(p.binary) if k.mode == "install" else None
    while True:
        missing = {}
        if not sm.is_active(unit):
            missing["service"] = f"{unit} is not running"
        if k.role == "server":
            ok, why = api_ready(kc)
            if not ok:
                missing["api"] = why
        if "api" not in missing:
            ok, why, node = node_status(kc, name)
            have = ((node or {}).get("status") or {}).get("nodeInfo", {}).get("kubeletVersion")
            if not ok:
                missing["node"] = why
            elif want and have and have != want:
                missing["node"] = f"node {name} still reports {have}, not {want}"
        elapsed = time.monotonic() - start
        if not missing:
            if progress:
                progress("done", f"k3s {k.role} {name} Ready after {elapsed:.1f}s", force=True)
            return {"node": name, "elapsed": round(elapsed, 2)}
        if time.monotonic() >= deadline:
            what = "; ".join(f"{key}: {v}" for key, v in missing.items())
            hint = _log_hint(sm, unit)
            msg = f"k3s {k.role} {name} not ready after {timeout:g}s; still missing: {what}. {hint}"
            if progress:
                progress("timeout", msg, force=True)
            raise WaitTimeout(redact.mask_text(msg), {"missing": missing})
        if progress:
            progress("waiting", f"{elapsed:.0f}s: waiting for " + "; ".join(missing.values()))
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 3.0)


def _log_hint(sm: units.ServiceManager, unit: str) -> str:
    if isinstance(sm, units.Processes):
        tail = ""
        with contextlib.suppress(OSError):
            tail = redact.tail(
                "\n".join(sm.log_path(unit).read_text(errors="replace").splitlines()[-5:]), 2000
            )
        return f"Log {sm.log_path(unit)}:\n{tail}" if tail else f"See {sm.log_path(unit)}"
    return f"See `journalctl -u {unit}`."


def verify_kubeconfig(cfg: PalplatPillar) -> str:
    """External mode (and after install): the kubeconfig reaches the API server."""
    kc = Path(kubeconfig_path(cfg))
    if not kc.exists():
        raise InputError(
            f"kubeconfig {kc} does not exist; set palplat:k3s:kubeconfig to a readable file"
        )
    ok, why = api_ready(kc)
    if not ok:
        raise PalplatError(f"the kubeconfig {kc} does not reach a ready API server: {why}")
    return f"{kc} reaches a ready API server"
