"""The ``palplat`` pillar model.

One pydantic model per pillar section. Every model forbids unknown keys (typos are errors
with a did-you-mean, see :mod:`palplat.config`), types are strict (``port: "80"`` is an
error, not a coercion), and secret fields are typed :class:`palplat.secret.Secret`.

Cross-field rules (release ``needs`` cycles and unknown references, service/namespace
clashes) live in :func:`palplat.config.cross_check` so that all of them are reported
together with the field errors.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator

from palplat.fields import (  # noqa: F401 - re-exported: palplat.model.DnsLabel, ...
    DNS1123_LABEL,
    Cidr,
    DnsLabel,
    Duration,
    Interface,
    Model,
    Port,
    Quantity,
    SecretTree,
    _cidr,
    _dns_label,
    _duration,
    _interface,
    _secret_tree,
    _size,
)
from palplat.host.pillar import Host  # noqa: F401 - re-exported: palplat.model.Host
from palplat.secret import Secret
from palplat.services.pillar import (  # noqa: F401 - re-exported
    Alert,
    Backup,
    Database,
    Metrics,
    Service,
    ServiceDefaults,
    Services,
)

# --------------------------------------------------------------------------- host
# The host section lives in palplat.host.pillar (re-exported here).


# ----------------------------------------------------------------------- firewall


class Management(Model):
    ssh_port: Port = 22
    salt_ports: list[Port] = Field(
        [4505, 4506], description="Salt master ports kept open from allow_from (servers)."
    )
    allow_from: list[Cidr] = Field(
        default_factory=list,
        description="Sources that must always reach the management ports.",
    )


def _port_or_range(v: Any) -> int | str:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError("must be a port number or a range 'LOW-HIGH'")
    if isinstance(v, int):
        if not 1 <= v <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return v
    m = re.match(r"^([0-9]{1,5})-([0-9]{1,5})$", v)
    if not m:
        raise ValueError("must be a port number or a range 'LOW-HIGH'")
    lo, hi = int(m.group(1)), int(m.group(2))
    if not (1 <= lo < hi <= 65535):
        raise ValueError("range must be LOW-HIGH with 1 <= LOW < HIGH <= 65535")
    return v


def _source(v: str) -> str:
    if v.startswith("@"):
        if not re.match(r"^@[a-z][a-z0-9_]{0,31}$", v):
            raise ValueError("is not a set reference: write '@' and a name from firewall:sets")
        return v
    return _cidr(v)


def _gpu_enabled(v: Any) -> Any:
    if v == "auto" or isinstance(v, bool):
        return v
    raise ValueError("must be auto, true or false")


PortOrRange = Annotated[
    Any,
    PlainValidator(
        _port_or_range,
        json_schema_input_type=int | Annotated[str, Field(pattern=r"^[0-9]+-[0-9]+$")],
    ),
    Field(description="A port (443) or an inclusive range ('30000-32767')."),
]
Source = Annotated[str, AfterValidator(_source)]


class FirewallRule(Model):
    name: DnsLabel = Field(description="Unique rule name; shown in diffs and rule comments.")
    proto: Literal["tcp", "udp"]
    ports: list[PortOrRange] = Field(min_length=1)
    from_: list[Source] = Field(
        default_factory=list,
        alias="from",
        description="Source networks or '@set' names; empty means from anywhere.",
    )
    iif: Interface | None = Field(None, description="Only traffic arriving on this interface.")


class Firewall(Model):
    enabled: bool = True
    table: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "palplat"
    netns: str | None = Field(
        None,
        description="Apply inside this named network namespace instead of the host's "
        "(the sandbox and the tests use it).",
    )
    management: Management = Management()
    confirm_seconds: Annotated[int, Field(ge=10, le=3600)] = 120
    trusted_interfaces: list[Interface] = []
    sets: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], list[Cidr]] = Field(
        default_factory=dict, description="Named address sets, referenced as '@name' in rules."
    )
    allow: list[FirewallRule] = []
    default_policy: Literal["drop", "accept"] = "drop"
    force: bool = Field(
        False,
        description="Allow a ruleset that blocks the management ports from allow_from. "
        "Dangerous: you can lose access to the host.",
    )
    persist: bool = Field(True, description="Write the table to the boot-time nftables config.")
    profile: bool = Field(
        True,
        description="Add the node's k3s ports (k3s-api, kubelet, flannel-*, etcd) and trust "
        "tailscale0. A rule in allow with the same name replaces a profile rule.",
    )
    rollback_timer: Literal["auto", "systemd", "process"] = Field(
        "auto",
        description="How an unconfirmed change is rolled back: a transient systemd timer "
        "(systemd-run), or a detached process. auto: systemd where it is PID 1.",
    )
    root: str = Field(
        "/",
        description="Filesystem root of the persistence and rollback files (tests use a tmp dir).",
    )
    main_config: str = Field(
        "/etc/nftables.conf",
        description="The distribution's boot-time nftables file (under root); palplat only "
        "adds one include line to it.",
    )


# ---------------------------------------------------------------------------- k3s


class RegistryAuth(Model):
    username: str
    password: Secret


class RegistryTLS(Model):
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class RegistryConfig(Model):
    auth: RegistryAuth | None = None
    tls: RegistryTLS | None = None


class RegistryMirror(Model):
    endpoint: list[str] = Field(min_length=1)
    rewrite: dict[str, str] | None = None


class Registries(Model):
    mirrors: dict[str, RegistryMirror] = {}
    configs: dict[str, RegistryConfig] = {}


class K3sSource(Model):
    url: str = Field(
        "https://github.com/k3s-io/k3s/releases/download/{version}",
        description="Base URL of a release: the official pattern, a mirror, or salt://...",
    )
    sha256: str | None = Field(
        None, description="sha256 of the k3s binary; default: the release's checksum file."
    )
    airgap_images: bool = False


class K3s(Model):
    mode: Literal["install", "external"] = Field(
        "install",
        description="install: palplat installs and runs k3s. external: use an existing "
        "cluster through `kubeconfig` and skip installation.",
    )
    version: Annotated[str, Field(pattern=r"^v[0-9]+\.[0-9]+\.[0-9]+(\+k3s[0-9]+)?$")] | None = None
    role: Literal["server", "agent"] = "server"
    cluster_init: bool = Field(
        True, description="First server of the cluster (embedded etcd when several servers)."
    )
    server_url: str | None = Field(None, description="URL of an existing server, to join.")
    token: Secret | None = None
    kubeconfig: str | None = Field(
        None, description="Kubeconfig path (external mode; default /etc/rancher/k3s/k3s.yaml)."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="k3s config.yaml keys (flags without the --)."
    )
    registries: Registries | None = None
    source: K3sSource = K3sSource()
    allow_downgrade: bool = False
    extra_flags: list[str] = Field(
        default_factory=list,
        description="config keys to accept although palplat's list of k3s flags lacks "
        "them (a flag newer than palplat).",
    )
    ready_timeout: Annotated[int, Field(ge=10, le=3600)] = 300
    root: str = Field(
        "/", description="Filesystem root every k3s path lives under (tests use a tmp dir)."
    )
    service_manager: Literal["auto", "systemd", "processes"] = Field(
        "auto", description="auto: systemd where it runs, else plain processes."
    )


# ---------------------------------------------------------------------------- helm


class Chart(Model):
    """Where a chart comes from: a helm repository, an OCI reference or a local path."""

    repo: str | None = Field(None, description="Helm repository URL (with `name`).")
    name: str | None = Field(None, description="Chart name in `repo`.")
    oci: Annotated[str, Field(pattern=r"^oci://.+")] | None = None
    path: str | None = Field(None, description="Local chart directory or archive.")
    version: str | None = Field(None, description="Chart version; required for repo and oci.")


def _https_url(v: str) -> str:
    u = urllib.parse.urlsplit(v)
    host = u.hostname or ""
    if u.scheme != "https" or "." not in host or u.username or u.query or u.fragment:
        raise ValueError(
            "must be an https URL on the tailnet, e.g. https://grafana.tail0000.ts.net"
        )
    _dns_label(host.split(".", 1)[0])
    return v


class Expose(Model):
    """A release's web UI on the tailnet: palplat creates a Tailscale Ingress to the chart's
    Service (and a blackbox Probe of the URL). See docs/platform.md."""

    service: DnsLabel = Field(description="The chart's Service to expose (its rendered name).")
    port: Port = Field(description="The Service port.")
    url: Annotated[str, AfterValidator(_https_url)] = Field(
        description="https://<machine>.<tailnet>: the Tailscale machine name is its first label."
    )
    funnel: bool = Field(False, description="Tailscale Funnel: reachable from the internet.")
    probe: bool = Field(True, description="A blackbox Probe (http_2xx) of url.")


class Release(Model):
    namespace: DnsLabel
    chart: Chart
    values: dict[str, Any] = {}
    secret_values: SecretTree = Field(
        default_factory=dict,
        description="Merged over `values`; every leaf is a secret (GPG pillar).",
    )
    secrets: dict[DnsLabel, dict[Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")], Secret]] = (
        Field(
            default_factory=dict,
            description="Kubernetes Secrets palplat makes in the release's namespace before the "
            "release (name -> key -> value, GPG pillar), for charts that read an existingSecret "
            "instead of taking the value inline.",
        )
    )
    needs: list[str] = []
    enabled: bool = True
    timeout: Annotated[int, Field(ge=10, le=7200)] = 600
    wait: bool = True
    keep_pvcs: bool = Field(True, description="Keep PersistentVolumeClaims on uninstall.")
    create_namespace: bool = True
    release_name: DnsLabel | None = Field(None, description="Defaults to the map key.")
    database: Database | None = Field(
        None,
        description="A CloudNativePG Cluster `<key>-db` palplat creates in the release's "
        "namespace before the release; the chart reads the credentials from the Secret "
        "CloudNativePG makes, `<key>-db-app` (see docs/platform.md).",
    )
    expose: Expose | None = None


class HelmTool(Model):
    """The helm binary the platform stage uses."""

    version: Annotated[str, Field(pattern=r"^v3\.[0-9]+\.[0-9]+$")] | None = Field(
        None,
        description="Pin (e.g. v3.22.0) to have palplat install and verify helm; unset: use "
        "the helm found at `path` or on PATH.",
    )
    url: str = Field(
        "https://get.helm.sh/helm-{version}-linux-{arch}.tar.gz",
        description="Release archive: the official pattern, a mirror, file:// or salt://.",
    )
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="sha256 of the archive; default: the `<url>.sha256sum` file."
    )
    path: str = "/usr/local/bin/helm"


def _chart_url(v: str) -> str:
    """A chart repository URL (http/https) or an OCI reference (oci://registry[/path])."""
    u = urllib.parse.urlsplit(v)
    if u.scheme not in ("http", "https", "oci") or not u.hostname:
        raise ValueError(
            "must be a chart repository URL (http:// or https://) or an OCI registry "
            "prefix (oci://registry[/path])"
        )
    if u.username or u.password:
        raise ValueError(
            "must not hold credentials (they would reach helm's argv and the logs); set "
            "registry credentials under palplat:k3s:registries:configs:<host>:auth"
        )
    if u.query or u.fragment:
        raise ValueError("must not have a query or fragment")
    return v


def _mirrors(v: dict[str, str]) -> dict[str, str]:
    for src, dst in v.items():
        if (src.startswith("oci://")) != (dst.startswith("oci://")):
            raise ValueError(
                f"{src} -> {dst}: a repository URL needs an http(s) mirror and an oci:// "
                "prefix an oci:// mirror"
            )
    return v


ChartUrl = Annotated[str, AfterValidator(_chart_url)]


class Platform(Model):
    helm: HelmTool = HelmTool()
    releases: dict[DnsLabel, Release] = {}
    history_max: Annotated[int, Field(ge=1, le=100)] = 5
    parallel: Annotated[int, Field(ge=1, le=16)] = 4
    mirrors: Annotated[dict[ChartUrl, ChartUrl], AfterValidator(_mirrors)] = Field(
        default_factory=dict,
        description="Chart repository URL or OCI prefix (oci://registry[/path]) -> its "
        "mirror; every helm call uses the mirror. Not part of the release fingerprint: "
        "switching mirrors upgrades nothing.",
    )


# ----------------------------------------------------------------------------- gpu


class TimeSlicing(Model):
    replicas: Annotated[int, Field(ge=1, le=64)]


class DevicePlugin(Model):
    chart: Chart = Chart(
        repo="https://nvidia.github.io/k8s-device-plugin",
        name="nvidia-device-plugin",
        version="0.17.1",
    )
    namespace: DnsLabel = "nvidia-device-plugin"
    time_slicing: TimeSlicing | None = None
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Chart values merged over palplat's (runtimeClassName nvidia, a node "
        "selector on nvidia.com/gpu.present=true, the time-slicing config).",
    )


class ToolkitRepo(Model):
    """NVIDIA's container-toolkit apt repository (Debian and Ubuntu)."""

    url: str = Field(
        "https://nvidia.github.io/libnvidia-container/stable/deb/{arch}",
        description="Repository base ({arch}: the Debian architecture, e.g. amd64).",
    )
    key_url: str = Field(
        "https://nvidia.github.io/libnvidia-container/gpgkey",
        description="Signing key (http(s), file:// or salt://); installed only when its "
        "fingerprint is key_fingerprint.",
    )
    key_fingerprint: Annotated[str, Field(pattern=r"^[0-9A-F]{40}$")] = Field(
        "C95B321B61E88C1809C4F759DDCAE044F796ECB0",
        description="Pinned fingerprint of the repository's signing key (primary key).",
    )
    keyring: str = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
    file: str = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"


class Gpu(Model):
    enabled: Annotated[
        Any,
        PlainValidator(_gpu_enabled, json_schema_input_type=Literal["auto"] | bool),
        Field(
            description="auto: only on nodes where an NVIDIA display device is found (per "
            "node). true: fail on a node without one. false: the GPU stage does nothing."
        ),
    ] = "auto"
    driver: Literal["nvidia-open", "nvidia"] = Field(
        "nvidia-open", description="Kernel module flavour: open (Turing and newer) or proprietary."
    )
    driver_branch: Annotated[str, Field(pattern=r"^[0-9]{3}(-server)?$")] = Field(
        "580", description="Ubuntu's driver branch (nvidia-driver-<branch>[-open])."
    )
    debian_non_free: bool = Field(
        True,
        description="Debian: add the contrib, non-free and non-free-firmware components "
        "(the driver packages live there) in a sources file of their own.",
    )
    debian_mirror: str = "http://deb.debian.org/debian"
    container_toolkit: bool = Field(
        True, description="Install nvidia-container-toolkit (false: it is provided otherwise)."
    )
    toolkit_repo: ToolkitRepo = ToolkitRepo()
    default_runtime: bool = Field(
        False,
        description="Make nvidia k3s's default runtime on GPU nodes (default-runtime: nvidia in "
        "a k3s config drop-in); pods then need no runtimeClassName.",
    )
    verify_timeout: Annotated[int, Field(ge=10, le=3600)] = Field(
        300, description="Seconds to wait for each GPU node's nvidia.com/gpu allocatable."
    )
    device_plugin: DevicePlugin = DevicePlugin()
    root: str = Field(
        "/",
        description="Filesystem root the GPU stage reads (sysfs, procfs, modules) and writes "
        "(keyring, k3s drop-in) under; tests point it at a tmp dir.",
    )


# ------------------------------------------------------------------------ services
# The services section lives in palplat.services.pillar (re-exported here).

# --------------------------------------------------------------------------- root


class PalplatPillar(Model):
    """The whole ``palplat`` pillar key."""

    host: Host = Host()
    firewall: Firewall = Firewall()
    k3s: K3s = K3s()
    gpu: Gpu = Gpu()
    platform: Platform = Platform()
    services: Services = Services()
