"""The ``palplat`` pillar model.

One pydantic model per pillar section. Every model forbids unknown keys (typos are errors
with a did-you-mean, see :mod:`palplat.config`), types are strict (``port: "80"`` is an
error, not a coercion), and secret fields are typed :class:`palplat.secret.Secret`.

Cross-field rules (release ``needs`` cycles and unknown references, service/namespace
clashes) live in :func:`palplat.config.cross_check` so that all of them are reported
together with the field errors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
)

from palplat import redact
from palplat.secret import Secret, secretize

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns_label(v: str) -> str:
    if len(v) > 63 or not DNS1123_LABEL.match(v):
        raise ValueError(
            "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'pal-e-docs')"
        )
    return v


def _cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(
                f"is not an IP network in CIDR form ({exc}); write e.g. 192.168.1.0/24"
            ) from None
        raise ValueError(f"has host bits set; did you mean {fixed}?") from None
    return str(net)


def _interface(v: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.:+-]{1,15}\*?$", v):
        raise ValueError("is not a network interface name (at most 15 characters, e.g. tailscale0)")
    return v


def _size(v: str) -> str:
    if not re.match(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$", v):
        raise ValueError("is not a Kubernetes quantity (e.g. 5Gi)")
    return v


def _duration(v: str) -> str:
    if not re.match(r"^([0-9]+(ms|s|m|h|d|w|y))+$", v):
        raise ValueError("is not a duration (e.g. 30s, 5m, 168h, 14d)")
    return v


def _secret_tree(v: Any) -> Any:
    if not isinstance(v, dict):
        raise ValueError("must be a mapping of values (they are all treated as secrets)")
    return secretize(v)


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Port = Annotated[int, Field(ge=1, le=65535)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Interface = Annotated[str, AfterValidator(_interface)]
Quantity = Annotated[str, AfterValidator(_size)]
Duration = Annotated[str, AfterValidator(_duration)]
SecretTree = Annotated[
    dict[str, Any],
    BeforeValidator(_secret_tree),
    PlainSerializer(lambda v: redact.mask(v)),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False, populate_by_name=True)


# --------------------------------------------------------------------------- host


class Host(Model):
    """Host-level settings applied with Salt's own states."""

    manage: bool = Field(
        True,
        description="Manage packages and timezone. The sandbox sets false so that nothing "
        "outside its work directory changes.",
    )
    packages: list[str] = []
    timezone: str | None = None


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


class Release(Model):
    namespace: DnsLabel
    chart: Chart
    values: dict[str, Any] = {}
    secret_values: SecretTree = Field(
        default_factory=dict,
        description="Merged over `values`; every leaf is a secret (GPG pillar).",
    )
    needs: list[str] = []
    enabled: bool = True
    timeout: Annotated[int, Field(ge=10, le=7200)] = 600
    wait: bool = True
    keep_pvcs: bool = Field(True, description="Keep PersistentVolumeClaims on uninstall.")
    create_namespace: bool = True
    release_name: DnsLabel | None = Field(None, description="Defaults to the map key.")


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


class Platform(Model):
    helm: HelmTool = HelmTool()
    releases: dict[DnsLabel, Release] = {}
    history_max: Annotated[int, Field(ge=1, le=100)] = 5
    parallel: Annotated[int, Field(ge=1, le=16)] = 4


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
    values: dict[str, Any] = {}


class Gpu(Model):
    enabled: Annotated[
        Any,
        PlainValidator(_gpu_enabled, json_schema_input_type=Literal["auto"] | bool),
        Field(description="auto: only where an NVIDIA device is present."),
    ] = "auto"
    driver: Literal["nvidia-open", "nvidia"] = "nvidia-open"
    container_toolkit: bool = True
    device_plugin: DevicePlugin = DevicePlugin()
    root: str = Field("/", description="Filesystem root for device detection (tests).")


# ------------------------------------------------------------------------ services


class Backup(Model):
    schedule: str = Field(description="Six-field cron (seconds first), as CloudNativePG wants.")
    retention: Duration = "14d"


class Database(Model):
    instances: Annotated[int, Field(ge=1, le=9)] = 1
    size: Quantity = "1Gi"
    backup: Backup | None = None


class Metrics(Model):
    path: str = "/metrics"
    port: Port | None = None
    interval: Duration = "30s"


class Alert(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    expr: str = Field(min_length=1)
    for_: Duration = Field("5m", alias="for")
    severity: Literal["critical", "warning", "info"] = "warning"
    summary: str | None = None


class ServiceDefaults(Model):
    registry: str | None = None
    forge: str | None = None
    deployments_repo: str | None = None
    tailnet_domain: str | None = None


class Service(Model):
    repo: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    port: Port
    namespace: DnsLabel | None = Field(None, description="Defaults to the service name.")
    funnel: bool = False
    database: Database | None = None
    metrics: Metrics | None = None
    alerts: list[Alert] = []
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Secret] = {}
    enabled: bool = True


class Services(Model):
    """``services`` holds ``defaults`` plus one entry per service name."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[DnsLabel, Service] = Field(init=False)  # type: ignore[assignment]

    defaults: ServiceDefaults = ServiceDefaults()

    def items(self) -> list[tuple[str, Service]]:
        return sorted((self.__pydantic_extra__ or {}).items())


# --------------------------------------------------------------------------- root


class PalplatPillar(Model):
    """The whole ``palplat`` pillar key."""

    host: Host = Host()
    firewall: Firewall = Firewall()
    k3s: K3s = K3s()
    gpu: Gpu = Gpu()
    platform: Platform = Platform()
    services: Services = Services()
