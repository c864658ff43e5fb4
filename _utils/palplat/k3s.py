"""k3s lifecycle: pinned install, config files, service unit, join token, readiness.

Every path lives under ``palplat:k3s:root`` (``/`` on real hosts, a tmp dir in tests).
The state module calls, in order:

- :func:`check` -- pillar problems (unknown config keys, missing token, ...), before
  anything changes;
- :func:`plan_binary` / :func:`install_binary` -- the pinned binary from the configured
  source, sha256 verified (pillar or the release's ``sha256sum-<arch>.txt``), written to a
  temporary file beside the target and renamed over it, so a mismatch leaves the current
  binary in place; a downgrade is refused unless ``allow_downgrade``;
- :func:`plan_files` / :func:`write_files` -- ``config.yaml`` and ``registries.yaml``
  (0600), changes shown with secrets masked;
- :func:`check_token` -- the pillar token against the running cluster (the server's
  token file, or the join server's ``/cacerts`` + an authenticated supervisor request);
- :func:`plan_service` / :func:`apply_service` -- the unit for the role; a restart only
  when the fingerprint of (binary, config, registries, unit) differs from the one recorded
  after the last successful start; then :func:`wait_ready` (API /readyz and the node
  Ready) with progress events;
- :func:`uninstall`.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from palplat import proc, redact, services
from palplat.config import K3S_KUBECONFIG, kubeconfig_path
from palplat.errors import InputError, PalplatError, PillarProblem, WaitTimeout
from palplat.fetch import ChecksumError, FetchSalt, SourceError, arch, fetch, sha256_file
from palplat.model import K3s, PalplatPillar

P = "palplat:k3s"
HIDDEN = redact.HIDDEN

# --------------------------------------------------------------------------- k3s flags

# Flags `k3s agent` accepts (config.yaml keys are flags without the leading --). Servers
# run an agent too, so a server accepts these and SERVER_FLAGS.
AGENT_FLAGS = frozenset(
    """
    config debug v vmodule log alsologtostderr data-dir node-name with-node-id node-label
    node-taint image-credential-provider-bin-dir image-credential-provider-config selinux
    lb-server-port protect-kernel-defaults docker container-runtime-endpoint default-runtime
    image-service-endpoint disable-default-registry-endpoint nonroot-devices pause-image
    snapshotter private-registry system-default-registry airgap-extra-registry node-ip
    node-external-ip node-internal-dns node-external-dns resolv-conf flannel-iface
    flannel-conf flannel-cni-conf kubelet-arg kube-proxy-arg rootless prefer-bundled-bin
    vpn-auth vpn-auth-file disable-apiserver-lb enable-pprof bind-address
    token token-file server
    """.split()
)
SERVER_FLAGS = frozenset(
    """
    advertise-address advertise-port tls-san tls-san-security cluster-cidr service-cidr
    service-node-port-range cluster-dns cluster-domain flannel-backend flannel-ipv6-masq
    flannel-external-ip egress-selector-mode servicelb-namespace write-kubeconfig
    write-kubeconfig-mode write-kubeconfig-group helm-job-image agent-token agent-token-file
    cluster-init cluster-reset cluster-reset-restore-path kube-apiserver-arg etcd-arg
    kube-controller-manager-arg kube-scheduler-arg kube-cloud-controller-manager-arg
    kubelet-arg kube-proxy-arg datastore-endpoint datastore-cafile datastore-certfile
    datastore-keyfile etcd-expose-metrics etcd-disable-snapshots etcd-snapshot-name
    etcd-snapshot-schedule-cron etcd-snapshot-retention etcd-snapshot-dir
    etcd-snapshot-compress etcd-s3 etcd-s3-endpoint etcd-s3-endpoint-ca
    etcd-s3-skip-ssl-verify etcd-s3-access-key etcd-s3-secret-key etcd-s3-bucket
    etcd-s3-region etcd-s3-folder etcd-s3-proxy etcd-s3-config-secret etcd-s3-insecure
    etcd-s3-timeout default-local-storage-path disable disable-scheduler
    disable-cloud-controller disable-kube-proxy disable-network-policy
    disable-helm-controller disable-etcd disable-apiserver disable-controller-manager
    disable-agent embedded-registry supervisor-metrics secrets-encryption
    secrets-encryption-provider https-listen-port supervisor-port apiserver-port
    apiserver-bind-address kine-tls etcd-snapshot-retention cluster-reset
    """.split()
)
# Keys palplat derives from dedicated pillar fields.
MANAGED_KEYS = {
    "token": "palplat:k3s:token (GPG pillar)",
    "token-file": "palplat:k3s:token (GPG pillar)",
    "server": "palplat:k3s:server_url",
    "cluster-init": "palplat:k3s:cluster_init",
}
# config.yaml keys whose values are secrets wherever they came from.
SECRET_KEYS = frozenset(
    {"token", "agent-token", "datastore-endpoint", "etcd-s3-secret-key", "vpn-auth"}
)

BINARY_NAME = {"amd64": "k3s", "arm64": "k3s-arm64", "arm": "k3s-armhf"}
VERSION_RE = re.compile(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)(?:\+k3s([0-9]+))?$")


class TokenMismatch(PalplatError):
    """The pillar token does not belong to the running cluster; nothing was restarted."""


# ---------------------------------------------------------------------------- paths


def _rooted(root: str, path: str) -> Path:
    return Path(root) / path.lstrip("/") if root not in ("", "/") else Path(path)


@dataclass(frozen=True)
class Paths:
    root: str
    binary: Path
    config: Path
    registries: Path
    kubeconfig: Path
    data_dir: Path
    stamp: Path

    @property
    def token_file(self) -> Path:
        return self.data_dir / "server" / "token"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.data_dir / "agent" / "kubelet.kubeconfig"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "agent" / "images"


def paths(cfg: PalplatPillar) -> Paths:
    k = cfg.k3s
    root = k.root or "/"
    data_dir = k.config.get("data-dir") or str(_rooted(root, "/var/lib/rancher/k3s"))
    return Paths(
        root=root,
        binary=_rooted(root, "/usr/local/bin/k3s"),
        config=_rooted(root, "/etc/rancher/k3s/config.yaml"),
        registries=_rooted(root, "/etc/rancher/k3s/registries.yaml"),
        kubeconfig=Path(kubeconfig_path(cfg)),
        data_dir=Path(data_dir),
        stamp=_rooted(root, "/var/lib/palplat/k3s.applied"),
    )


def unit_name(k: K3s) -> str:
    return "k3s.service" if k.role == "server" else "k3s-agent.service"


def node_name(k: K3s) -> str:
    return str(k.config.get("node-name") or socket.gethostname()).lower()


# ----------------------------------------------------------------------- validation


def check(cfg: PalplatPillar, *, stage: bool = True) -> list[PillarProblem]:
    """Problems of ``palplat:k3s`` that the model alone cannot see (role-specific).

    ``stage=False`` (pillar validation, :func:`palplat.config.cross_check`) leaves out what
    only the k3s stage needs (a pinned version), so pillars of hosts that do not run the
    k3s stage stay valid.
    """
    k = cfg.k3s
    out: list[PillarProblem] = []
    if k.mode == "external":
        return out
    if stage and not k.version:
        out.append(
            PillarProblem(f"{P}:version", "is required with mode install: pin e.g. v1.33.5+k3s1")
        )
    known = (
        AGENT_FLAGS
        | (SERVER_FLAGS if k.role == "server" else frozenset())
        | frozenset(k.extra_flags)
    )
    for key in k.config:
        if key in MANAGED_KEYS:
            out.append(
                PillarProblem(
                    f"{P}:config:{key}", f"is set by palplat: use {MANAGED_KEYS[key]} instead"
                )
            )
        elif key not in known:
            other = " (a server flag: this node's role is agent)" if key in SERVER_FLAGS else ""
            guess = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            out.append(
                PillarProblem(
                    f"{P}:config:{key}",
                    f"is not a k3s {k.role} flag{other}{hint} Keys are `k3s {k.role}` flags "
                    "without the leading --; remove or fix it (a flag newer than palplat: "
                    f"list it in {P}:extra_flags)",
                )
            )
    if k.role == "agent" and not k.server_url:
        out.append(
            PillarProblem(f"{P}:server_url", "is required for role agent: the URL of a server")
        )
    if k.server_url:
        u = urllib.parse.urlparse(k.server_url)
        if u.scheme != "https" or not u.hostname:
            out.append(
                PillarProblem(
                    f"{P}:server_url",
                    "must be an https URL of a k3s server, e.g. https://10.0.0.1:6443",
                    json.dumps(k.server_url),
                )
            )
        if k.token is None:
            out.append(
                PillarProblem(
                    f"{P}:token",
                    "is required to join a cluster (server_url is set): put the cluster's "
                    "token in the GPG-encrypted pillar",
                )
            )
    if k.role == "agent" and k.registries is None:
        pass
    src = k.source.url
    if not re.match(r"^(https?|file|salt)://", src) and not src.startswith("/"):
        out.append(
            PillarProblem(
                f"{P}:source:url",
                "must be an http(s)://, file://, salt:// URL or an absolute path",
                json.dumps(src),
            )
        )
    if k.source.sha256 and not re.fullmatch(r"[0-9a-f]{64}", k.source.sha256):
        out.append(PillarProblem(f"{P}:source:sha256", "must be 64 lowercase hex digits"))
    return out


# ------------------------------------------------------------------------- versions


def parse_version(v: str) -> tuple[int, int, int, int]:
    m = VERSION_RE.match(v or "")
    if not m:
        raise InputError(f"not a k3s version: {v!r} (expected e.g. v1.33.5+k3s1)")
    return (int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0))


def installed_version(binary: Path) -> str | None:
    """The version ``k3s --version`` reports, or None when the binary is missing."""
    if not binary.exists():
        return None
    res = proc.run([str(binary), "--version"], check=False, timeout=60)
    m = re.search(r"k3s version (v\S+)", res.stdout + res.stderr)
    if res.returncode != 0 or not m:
        return "unknown"
    return m.group(1)


def release_url(k: K3s, filename: str) -> str:
    base = k.source.url
    version = k.version or ""
    if base.startswith(("http://", "https://")):
        version = urllib.parse.quote(version, safe="")
    base = base.replace("{version}", version).rstrip("/")
    return f"{base}/{filename}"


def expected_sha256(
    k: K3s, filename: str, workdir: Path, fetch_salt: FetchSalt | None
) -> tuple[str, str]:
    """(sha256, where it came from): the pillar's, else the release's checksum file."""
    if k.source.sha256 and filename == BINARY_NAME[arch()]:
        return k.source.sha256, f"{P}:source:sha256"
    sums_name = f"sha256sum-{arch()}.txt"
    url = release_url(k, sums_name)
    dest = workdir / sums_name
    fetch(url, dest, fetch_salt)
    for line in dest.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower(), url
    raise SourceError(f"{url} lists no checksum for {filename}")


# -------------------------------------------------------------------------- binary


@dataclass
class BinaryPlan:
    current: str | None
    desired: str | None
    images: bool  # the air-gap images archive needs installing

    @property
    def changes(self) -> dict:
        out: dict[str, Any] = {}
        if self.current != self.desired:
            out["version"] = {"old": self.current, "new": self.desired}
        if self.images:
            out["airgap_images"] = {"old": None, "new": self.desired}
        return out


def _images_name() -> str:
    return f"k3s-airgap-images-{arch()}.tar.zst"


def plan_binary(cfg: PalplatPillar) -> BinaryPlan:
    """What :func:`install_binary` would do; raises on a refused downgrade."""
    k, p = cfg.k3s, paths(cfg)
    current = installed_version(p.binary)
    desired = k.version
    if current not in (None, "unknown") and desired and current != desired:
        if parse_version(desired) < parse_version(current) and not k.allow_downgrade:
            raise InputError(
                f"{P}:version: {desired} is older than the installed {current}; downgrading "
                "k3s can break the cluster's datastore. Set palplat:k3s:allow_downgrade: true "
                "to force it; nothing was changed"
            )
    images = False
    if k.source.airgap_images:
        stamp = p.images_dir / f".{_images_name()}.version"
        images = not stamp.exists() or stamp.read_text().strip() != desired
    return BinaryPlan(current, desired, images)


def install_binary(
    cfg: PalplatPillar, plan: BinaryPlan, fetch_salt: FetchSalt | None = None, progress=None
) -> dict:
    """Download, verify and atomically install what ``plan`` says; returns changes."""
    k, p = cfg.k3s, paths(cfg)
    if plan.current != plan.desired:
        name = BINARY_NAME[arch()]
        p.binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.binary.with_name(f".{p.binary.name}.palplat-download")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            url = release_url(k, name)
            if progress:
                progress("download", f"downloading k3s {plan.desired} from {url}")
            fetch(url, tmp, fetch_salt)
            want, where = expected_sha256(k, name, tmp.parent, fetch_salt)
            got = sha256_file(tmp)
            if got != want:
                raise ChecksumError(
                    f"checksum mismatch for {url}: sha256 {got}, expected {want} (from {where}); "
                    f"the installed binary ({plan.current or 'none'}) was left in place. Check "
                    "palplat:k3s:source (url, sha256) and the mirror's files"
                )
            os.chmod(tmp, 0o755)
            got_version = installed_version(tmp)
            if got_version != plan.desired:
                raise ChecksumError(
                    f"{url} reports version {got_version}, not {plan.desired}; the installed "
                    "binary was left in place. Check palplat:k3s:source:url"
                )
            os.replace(tmp, p.binary)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                (tmp.parent / f"sha256sum-{arch()}.txt").unlink()
        back = installed_version(p.binary)
        if back != plan.desired:
            raise PalplatError(
                f"verify: {p.binary} reports {back} after install, not {plan.desired}"
            )
    if plan.images:
        name = _images_name()
        p.images_dir.mkdir(parents=True, exist_ok=True)
        dest = p.images_dir / name
        tmp = p.images_dir / f".{name}.palplat-download"
        try:
            fetch(release_url(k, name), tmp, fetch_salt, timeout=600)
            want, where = expected_sha256(k, name, p.images_dir, fetch_salt)
            got = sha256_file(tmp)
            if got != want:
                raise ChecksumError(
                    f"checksum mismatch for {name}: sha256 {got}, expected {want} (from {where})"
                )
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                (p.images_dir / f"sha256sum-{arch()}.txt").unlink()
        (p.images_dir / f".{name}.version").write_text(f"{plan.desired}\n")
    return plan.changes


# --------------------------------------------------------------------------- files


def desired_config(cfg: PalplatPillar) -> dict[str, Any]:
    """config.yaml content (plain values: it is written 0600)."""
    k, p = cfg.k3s, paths(cfg)
    out: dict[str, Any] = dict(k.config)
    if k.token is not None:
        out["token"] = str(k.token.reveal())
    if k.server_url:
        out["server"] = k.server_url
    if k.role == "server" and k.cluster_init and not k.server_url:
        out["cluster-init"] = True
    default_kc = str(_rooted(p.root, K3S_KUBECONFIG))
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
        services.write_if_changed(path, _dump(want), 0o600)
        if _load_yaml(path) != want or _file_mode(path) != 0o600:
            raise PalplatError(f"verify: {path} does not hold what was written")
    return changes


# -------------------------------------------------------------------------- token


def _token_parts(token: str, role: str) -> tuple[str | None, str, str]:
    """(CA hash or None, user, password) of a short or full (K10...) token."""
    m = re.match(r"^K10([0-9a-f]{64})::([^:]+):(.+)$", token)
    if m:
        return m.group(1), m.group(2), m.group(3)
    return None, ("node" if role == "agent" else "server"), token


def _insecure_ctx() -> ssl.SSLContext:
    # The CA is checked against the token's hash (full token) right after fetching it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(url: str, ctx: ssl.SSLContext, headers: dict | None = None, timeout: float = 10):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_token(cfg: PalplatPillar) -> str:
    """Check the pillar token against the running cluster; returns what was checked.

    - joining (``server_url`` set): fetch ``<server_url>/cacerts``; with a full token its
      CA hash must match; then an authenticated supervisor request
      (``/v1-k3s/client-ca.crt``, basic auth with the token) must not be refused.
    - a server with a token file (it already ran): the token's secret part must match.
    Raises :class:`TokenMismatch` (nothing restarted) or :class:`SourceError`.
    """
    k, p = cfg.k3s, paths(cfg)
    if k.mode == "external":
        return "external mode: no token"
    token = str(k.token.reveal()) if k.token is not None else None
    if k.server_url and token:
        try:
            return _check_join_token(k, token)
        except SourceError:
            # the join server is away (an outage, or it is being upgraded): a server that
            # already ran can still compare with its own copy of the cluster token
            if not (k.role == "server" and p.token_file.exists()):
                raise
    if k.role == "server" and token and p.token_file.exists():
        stored = p.token_file.read_text().strip()
        redact.register([stored])
        _, _, have = _token_parts(stored, "server")
        _, _, want = _token_parts(token, "server")
        if have != want:
            raise TokenMismatch(
                f"{P}:token does not match the token of the cluster this server already runs "
                f"({p.token_file}); k3s would refuse to start with it. Put that token in the "
                "GPG pillar (or remove the server's data to start a new cluster); nothing "
                "was restarted"
            )
        return "token matches the running cluster"
    return "no running cluster to check the token against"


def _check_join_token(k: K3s, token: str) -> str:
    """Join token against ``server_url``: CA hash (full token), then supervisor auth."""
    ca_hash, user, password = _token_parts(token, k.role)
    base = k.server_url.rstrip("/")
    ctx = _insecure_ctx()
    try:
        code, body = _get(f"{base}/cacerts", ctx)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(
            f"cannot reach {P}:server_url {base} to check the join token "
            f"({getattr(exc, 'reason', exc)}); nothing was restarted"
        ) from None
    if code != 200:
        raise SourceError(f"{base}/cacerts answered HTTP {code}; is {base} a k3s server?")
    if ca_hash and hashlib.sha256(body).hexdigest() != ca_hash:
        raise TokenMismatch(
            f"{P}:token does not belong to the cluster at {base}: its CA hash differs from "
            "the server's /cacerts. Put that cluster's token in the GPG pillar; nothing "
            "was restarted"
        )
    # A short token may be accepted as either supervisor user (agent-token setups):
    # it is wrong only when every candidate is refused.
    users = [user] if ca_hash else list(dict.fromkeys([user, "node", "server"]))
    codes = []
    for u in users:
        auth = base64.b64encode(f"{u}:{password}".encode()).decode()
        try:
            code, _ = _get(
                f"{base}/v1-k3s/client-ca.crt",
                ctx,
                headers={"Authorization": f"Basic {auth}"},
            )
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"cannot check the token at {base}: {exc}") from None
        codes.append(code)
        if code not in (401, 403):
            break
    else:
        raise TokenMismatch(
            f"{P}:token is refused by the server at {base} (HTTP {codes[-1]}): it does "
            "not match the running cluster. Put the cluster's token (server: "
            "/var/lib/rancher/k3s/server/token) in the GPG pillar; nothing was restarted"
        )
    return f"token accepted by {base}"


# -------------------------------------------------------------------------- service


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


def service_manager(cfg: PalplatPillar) -> services.ServiceManager:
    return services.manager(cfg.k3s.service_manager, cfg.k3s.root or "/")


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


# ------------------------------------------------------------------------ readiness


def _kube(kubeconfig: Path):
    from palplat.kube import Kube

    return Kube(str(kubeconfig), request_timeout=5)


def api_ready(kubeconfig: Path) -> tuple[bool, str]:
    """GET /readyz through ``kubeconfig``: (ready, why not)."""
    from palplat.kube import KubeError

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
    from palplat.kube import KubeError, NotFound

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
            if not ok:
                missing["node"] = why
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


def _log_hint(sm: services.ServiceManager, unit: str) -> str:
    if isinstance(sm, services.Processes):
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join(sm.log_path(unit).read_text(errors="replace").splitlines()[-5:])
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


# ------------------------------------------------------------------------ uninstall


def plan_uninstall(cfg: PalplatPillar, purge: bool = False) -> dict:
    p = paths(cfg)
    sm = service_manager(cfg)
    changes: dict[str, Any] = {}
    for unit in ("k3s.service", "k3s-agent.service"):
        if sm.is_active(unit) or sm.read_unit(unit) is not None:
            changes[unit] = {"old": "installed", "new": None}
    for label, path in (
        ("binary", p.binary),
        ("config.yaml", p.config),
        ("registries.yaml", p.registries),
        ("stamp", p.stamp),
    ):
        if path.exists():
            changes[label] = {"old": str(path), "new": None}
    if purge and p.data_dir.exists():
        changes["data_dir"] = {"old": str(p.data_dir), "new": None}
    return changes


def uninstall(cfg: PalplatPillar, purge: bool = False) -> dict:
    changes = plan_uninstall(cfg, purge)
    p = paths(cfg)
    sm = service_manager(cfg)
    for unit in ("k3s.service", "k3s-agent.service"):
        if unit in changes:
            sm.stop(unit)
            sm.disable(unit)
            sm.remove_unit(unit)
    for path in (p.binary, p.config, p.registries, p.stamp):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if purge:
        shutil.rmtree(p.data_dir, ignore_errors=True)
    left = plan_uninstall(cfg, purge)
    if left:
        raise PalplatError(f"verify: still present after uninstall: {', '.join(left)}")
    return changes


# ------------------------------------------------------------------------- status


def status(cfg: PalplatPillar) -> dict:
    """What the upgrade runner needs from a minion (no secrets)."""
    k, p = cfg.k3s, paths(cfg)
    sm = service_manager(cfg)
    return {
        "mode": k.mode,
        "role": k.role,
        "cluster_init": bool(k.role == "server" and k.cluster_init and not k.server_url),
        "node": node_name(k),
        "installed": installed_version(p.binary) if k.mode == "install" else None,
        "desired": k.version,
        "active": sm.is_active(unit_name(k)) if k.mode == "install" else None,
        "kubeconfig": str(p.kubeconfig) if k.role == "server" else None,
    }
