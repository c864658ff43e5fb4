"""The ``helm`` CLI: argv lists (never a shell string), JSON output parsed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from palplat import proc, redact
from palplat.errors import CommandError, PalplatError

# the post-renderer script: standalone, helm runs it as ``<python> <path>``
KEEP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keep.py")


class HelmError(PalplatError):
    """A release could not be converged; ``revision`` is its current helm revision."""

    def __init__(self, message: str, revision: int | None = None):
        self.revision = revision
        super().__init__(redact.mask_text(message))


def post_renderer(keep_pvcs: bool) -> list[str]:
    """helm flags that mark the chart's PVCs ``helm.sh/resource-policy: keep``."""
    if not keep_pvcs:
        return []
    return ["--post-renderer", sys.executable, "--post-renderer-args", KEEP_SCRIPT]


class Helm:
    """The ``helm`` CLI: one method per command, argv lists, JSON output parsed.

    ``env`` (e.g. ``HELM_CACHE_HOME``) is passed to every call; ``runner`` is
    :func:`palplat.proc.run` (secrets never reach argv: values go through 0600 files,
    registry passwords through stdin).
    """

    def __init__(
        self,
        binary: str = "helm",
        kubeconfig: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        runner: Callable[..., proc.Result] = proc.run,
    ):
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.runner = runner

    def run(self, *args: str, input: str | None = None, timeout: float | None = 900) -> str:  # noqa: A002
        argv = [self.binary, *args]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        return self.runner(argv, input=input, env=self.env or None, timeout=timeout).stdout

    def list_releases(self) -> dict[tuple[str, str], dict]:
        """Every release in every namespace (all states): ``{(namespace, name): entry}``."""
        out = self.run("list", "--all-namespaces", "--all", "--max", "0", "-o", "json")
        rows = json.loads(out or "[]") or []
        return {(r["namespace"], r["name"]): r for r in rows}

    def repo_add(self, name: str, url: str) -> None:
        """Add (or refresh) a repository; downloads its index."""
        self.run("repo", "add", "--force-update", name, url, timeout=120)

    def registry_login(self, host: str, username: str, password: Any) -> None:
        """Log in to an OCI registry; the password goes through stdin only."""
        self.run(
            "registry",
            "login",
            host,
            "--username",
            username,
            "--password-stdin",
            input=str(password),
            timeout=120,
        )

    def upgrade(
        self,
        release: str,
        namespace: str,
        chart: list[str],
        values_file: str,
        *,
        atomic: bool,
        wait: bool,
        timeout: int,
        history_max: int,
        create_namespace: bool,
        dry_run: str | None = None,
        keep_pvcs: bool = False,
    ) -> dict:
        """``helm upgrade --install``; returns the release JSON (manifest included).

        ``dry_run``: ``"server"`` (lookup works) or ``"client"`` (no API validation)."""
        args = ["upgrade", "--install", release, *chart, "--namespace", namespace]
        args += ["--values", values_file, "--reset-values", "--skip-crds"]
        args += ["--history-max", str(history_max), "--timeout", f"{timeout}s", "-o", "json"]
        if create_namespace:
            args.append("--create-namespace")
        args += post_renderer(keep_pvcs)
        if dry_run:
            args.append(f"--dry-run={dry_run}")
        elif atomic:
            args.append("--atomic")
        if wait and not dry_run:
            args.append("--wait")
        out = self.run(*args, timeout=timeout + 120)
        return json.loads(out)

    def template(
        self,
        release: str,
        namespace: str,
        chart: list[str],
        values_file: str,
        *,
        kube_version: str | None = None,
        api_versions: list[str] | tuple[str, ...] = (),
        is_upgrade: bool = False,
    ) -> str:
        """Render client-side (no API server): the manifest text with the CRDs of the
        crds/ directories of the chart and its enabled subcharts first, each document
        after a ``# Source: <chart path>/<file>`` line, hooks left out. No post-renderer:
        it would drop those lines. ``kube_version``/``api_versions``: the server's
        capabilities (helm's defaults are Kubernetes v1.20 and its built-in APIs)."""
        args = ["template", release, *chart, "--namespace", namespace, "--values", values_file]
        args += ["--include-crds", "--no-hooks"]
        if kube_version:
            args += ["--kube-version", kube_version]
        if api_versions:
            args += ["--api-versions", ",".join(api_versions)]
        if is_upgrade:
            args.append("--is-upgrade")
        return self.run(*args, timeout=300)

    def rollback(self, release: str, namespace: str, timeout: int) -> None:
        self.run("rollback", release, "--namespace", namespace, "--timeout", f"{timeout}s")

    def uninstall(self, release: str, namespace: str, timeout: int, wait: bool) -> None:
        args = ["uninstall", release, "--namespace", namespace, "--timeout", f"{timeout}s"]
        if wait:
            args.append("--wait")
        self.run(*args, timeout=timeout + 120)

    def status(self, release: str, namespace: str) -> dict | None:
        try:
            return json.loads(self.run("status", release, "--namespace", namespace, "-o", "json"))
        except CommandError as exc:
            if "not found" in (exc.stderr or ""):
                return None
            raise
