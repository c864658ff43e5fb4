"""The k3s flags palplat knows and the ``palplat:k3s`` pillar check.

:func:`check` is pure (the pillar model in, problems out) and this module imports nothing
of :mod:`palplat.config`: pillar validation (:func:`palplat.config.cross_check`) runs it
with ``stage=False``, and the k3s stage runs it in full before anything changes.
"""

from __future__ import annotations

import difflib
import json
import re
import urllib.parse

from palplat import validation
from palplat.errors import PillarProblem
from palplat.model import K3S_SECRET_KEYS, PalplatPillar

P = "palplat:k3s"

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
    apiserver-bind-address kine-tls
    """.split()
)
# Keys palplat derives from dedicated pillar fields.
MANAGED_KEYS = {
    "token": "palplat:k3s:token (GPG pillar)",
    "token-file": "palplat:k3s:token (GPG pillar)",
    "server": "palplat:k3s:server_url",
    "cluster-init": "palplat:k3s:cluster_init",
}
# config.yaml keys whose values are secrets wherever they came from (the model types them).
SECRET_KEYS = K3S_SECRET_KEYS


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
    out.extend(_paths_and_modes(k))
    return out


# System directories a data-dir may not be (purge deletes the data-dir recursively).
_SYSTEM_DIRS = frozenset(
    "/ /bin /boot /dev /etc /home /lib /lib64 /media /mnt /opt /proc /root /run /sbin /srv "
    "/sys /tmp /usr /usr/local /var /var/lib /var/log /var/lib/rancher".split()
)


def _paths_and_modes(k) -> list[PillarProblem]:
    out: list[PillarProblem] = []
    data_dir = k.config.get("data-dir")
    if data_dir is not None:
        text = data_dir if isinstance(data_dir, str) else ""
        norm = "/" + "/".join(c for c in text.split("/") if c not in ("", "."))
        if (
            not isinstance(data_dir, str)
            or not re.fullmatch(r"/[A-Za-z0-9._/+@,=:-]*", text)
            or "/../" in text + "/"
        ):
            out.append(
                PillarProblem(
                    f"{P}:config:data-dir",
                    "must be a normalized absolute path of letters, digits and . _ / + @ , = : -",
                    validation.found(data_dir),
                )
            )
        elif norm in _SYSTEM_DIRS or norm.count("/") < 2:
            out.append(
                PillarProblem(
                    f"{P}:config:data-dir",
                    f"is {norm}, a system or top-level directory: k3s keeps its state there "
                    "and palplat_k3s.absent purge=True would delete it; use a directory of "
                    "its own (default /var/lib/rancher/k3s)",
                    validation.found(data_dir),
                )
            )
    mode = k.config.get("write-kubeconfig-mode")
    if mode is not None:
        text = mode if isinstance(mode, (str, int)) and not isinstance(mode, bool) else ""
        text = str(text)
        if not re.fullmatch(r"0?[0-7]{3}", text):
            out.append(
                PillarProblem(
                    f"{P}:config:write-kubeconfig-mode",
                    'must be an octal mode as a string, e.g. "0600"',
                    validation.found(mode),
                )
            )
        elif int(text, 8) & 0o007:
            out.append(
                PillarProblem(
                    f"{P}:config:write-kubeconfig-mode",
                    f"is {text}: every local user could read the admin kubeconfig (cluster "
                    'admin credentials); use "0600" (k3s\'s default; or "0640" with '
                    "write-kubeconfig-group)",
                    validation.found(mode),
                )
            )
    return out
