"""The ``palplat:services`` pillar section: ``defaults`` plus one entry per service.

Field-level rules live here (types, patterns, the six-field cron of a backup schedule);
rules that look across sections (the releases a service relies on, credentials a service
needs, names that must not clash) live in :mod:`palplat.services.checks`, which
:func:`palplat.config.cross_check` runs so that every problem is reported at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from palplat.fields import Cidr, DnsLabel, Duration, Model, Port, Quantity
from palplat.secret import Secret

# ----------------------------------------------------------------------- validators

_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
# (name, lowest, highest, names usable instead of numbers, '?' allowed)
_CRON_FIELDS = (
    ("seconds", 0, 59, (), False),
    ("minutes", 0, 59, (), False),
    ("hours", 0, 23, (), False),
    ("day-of-month", 1, 31, (), True),
    ("month", 1, 12, _MONTHS, False),
    ("day-of-week", 0, 6, _DAYS, True),
)
_CRON_HINT = (
    "CloudNativePG schedules have six fields, seconds first: 'seconds minutes hours "
    "day-of-month month day-of-week', e.g. '0 0 3 * * *' for 03:00 every day"
)


def _cron_value(text: str, lo: int, hi: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        n = int(text)
        return n if lo <= n <= hi else None
    if text.upper() in names:
        return names.index(text.upper()) + lo
    return None


def _cron_field(text: str, lo: int, hi: int, names: tuple[str, ...], q: bool) -> str | None:
    """None when ``text`` is a valid cron field, else what is wrong with it."""
    if q and text == "?":
        return None
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            return f"has step {step!r}: a step is a positive number"
        if base == "*":
            continue
        first, _, last = base.partition("-")
        a = _cron_value(first, lo, hi, names)
        b = _cron_value(last, lo, hi, names) if last else a
        if a is None or b is None:
            return f"has {base!r}: values must be {lo}-{hi}" + (
                f" or {names[0]}-{names[-1]}" if names else ""
            )
        if a > b:
            return f"has the range {base!r}, which runs backwards"
    return None


def cron6(v: str) -> str:
    """``v`` when it is a six-field cron (seconds first) as CloudNativePG reads it."""
    fields = v.split()
    if len(fields) != 6:
        raise ValueError(f"is not a six-field cron ({len(fields)} fields); {_CRON_HINT}")
    for text, (name, lo, hi, names, q) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field(text, lo, hi, names, q)
        if problem:
            raise ValueError(f"is not a valid cron: its {name} field {problem}; {_CRON_HINT}")
    return " ".join(fields)


def _resource_quantity(v: str) -> str:
    if not re.match(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|K|M|G|T|P|E)?$", v):
        raise ValueError("is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 10Gi)")
    return v


def _http_url(v: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", v):
        raise ValueError("is not an http(s) URL (e.g. https://harbor.example.ts.net)")
    return v.rstrip("/")


Cron6 = Annotated[str, AfterValidator(cron6)]
ResourceQuantity = Annotated[str, AfterValidator(_resource_quantity)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Retention = Annotated[str, Field(pattern=r"^[1-9][0-9]*[dwm]$")]
ResourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9./_-]*[A-Za-z0-9])?$")]
Resources = dict[ResourceName, ResourceQuantity]

DEFAULT_QUOTA: dict[str, str] = {
    "requests.cpu": "2",
    "requests.memory": "4Gi",
    "limits.cpu": "4",
    "limits.memory": "8Gi",
    "requests.storage": "50Gi",
    "persistentvolumeclaims": "10",
    "pods": "30",
}


# --------------------------------------------------------------------- per service


class Backup(Model):
    schedule: Cron6 = Field(description="Six-field cron (seconds first), as CloudNativePG wants.")
    retention: Retention = Field("14d", description="How long backups are kept: <n>d, w or m.")


class Database(Model):
    instances: Annotated[int, Field(ge=1, le=9)] = 1
    size: Quantity = "1Gi"
    backup: Backup | None = Field(
        None, description="Scheduled backups to the platform's object store (defaults)."
    )


class Metrics(Model):
    path: str = "/metrics"
    port: Port | None = Field(None, description="Defaults to the service's port.")
    interval: Duration = "30s"


class Alert(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    expr: str = Field(min_length=1)
    for_: Duration = Field("5m", alias="for")
    severity: Literal["critical", "warning", "info"] = "warning"
    summary: str | None = None


class Limits(Model):
    """The namespace's LimitRange for containers (values per resource, e.g. cpu, memory)."""

    default: Resources = Field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"},
        description="Limits of a container that sets none.",
    )
    default_request: Resources = Field(
        default_factory=lambda: {"cpu": "50m", "memory": "64Mi"},
        description="Requests of a container that sets none.",
    )
    max: Resources = Field(default_factory=dict, description="Most one container may ask for.")


class Peer(Model):
    """One extra NetworkPolicy peer: pods of a namespace (optionally selected by labels),
    pods of the service's own namespace (``pods`` alone), or an IP block."""

    namespace: DnsLabel | None = None
    pods: dict[str, str] = Field(default_factory=dict, description="Pod label selector.")
    cidr: Cidr | None = None
    ports: list[Port] = Field(default_factory=list, description="Empty: every port.")
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class Network(Model):
    """Traffic allowed beyond palplat's defaults (default deny; ingress from the Tailscale
    proxies when funnelled and from monitoring; egress to DNS and the own database)."""

    ingress: list[Peer] = Field(default_factory=list, description="Extra allowed sources.")
    egress: list[Peer] = Field(default_factory=list, description="Extra allowed destinations.")


class Service(Model):
    repo: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")] = Field(
        description="owner/name of the source repository on the forge (Woodpecker builds it)."
    )
    port: Port = Field(description="The port the workload serves on (its Service port).")
    namespace: DnsLabel | None = Field(None, description="Defaults to the service name.")
    image: Annotated[str, Field(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")] | None = Field(
        None, description="Repository in the service's Harbor project; default: the name."
    )
    overlay: str | None = Field(
        None, description="Path of the kustomize overlay in deployments_repo (defaults)."
    )
    funnel: bool = Field(False, description="Public on the internet via Tailscale Funnel.")
    ci: bool = Field(True, description="Activate the repository in Woodpecker.")
    database: Database | None = None
    metrics: Metrics | None = None
    alerts: list[Alert] = []
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Secret] = Field(
        default_factory=dict, description="One Kubernetes Secret for the workload (GPG pillar)."
    )
    quota: Resources = Field(
        default_factory=dict, description="ResourceQuota entries merged over the defaults'."
    )
    limits: Limits | None = Field(None, description="Replaces the defaults' LimitRange.")
    network: Network = Network()
    enabled: bool = Field(True, description="false: palplat leaves this service alone.")
    absent: bool = Field(
        False,
        description="Offboard: remove delivery, ingress, monitoring, CI and robots; data "
        "(namespace, database, Harbor project) stays unless delete_data is also true.",
    )
    delete_data: bool = Field(
        False, description="With absent: also delete the namespace, database and Harbor project."
    )


# ------------------------------------------------------------------------ defaults


class HarborApi(Model):
    url: HttpUrl = Field(description="Harbor's address; the API is <url>/api/v2.0.")
    username: str = "admin"
    password: Secret | None = Field(None, description="Needed by every service (GPG pillar).")
    verify_tls: bool = True
    robot_prefix: str = Field("robot$", description="Harbor's robot_name_prefix.")


class WoodpeckerApi(Model):
    url: HttpUrl = Field(description="Woodpecker's address; the API is <url>/api.")
    token: Secret | None = Field(
        None, description="A personal access token of an admin (GPG pillar)."
    )
    verify_tls: bool = True


class RepoCredentials(Model):
    username: str
    password: Secret


class ObjectStore(Model):
    """Where database backups go (an S3 API, e.g. the platform's MinIO)."""

    endpoint: HttpUrl = Field(description="e.g. http://minio.minio.svc:9000")
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    access_key: str | None = Field(
        None,
        description="The S3 access key id: an identifier, not a secret (it appears in the "
        "object store's own configuration and logs); the secret is secret_key.",
    )
    secret_key: Secret | None = None
    release: DnsLabel | None = Field(
        "minio", description="The platform release serving it (checked to be enabled)."
    )


class ServiceReleases(Model):
    """Names of the platform releases services rely on (keys of platform:releases)."""

    tailscale: DnsLabel = "tailscale-operator"
    cnpg: DnsLabel = "cnpg"
    monitoring: DnsLabel = "kube-prometheus-stack"
    argocd: DnsLabel = "argocd"


class MonitoringDefaults(Model):
    labels: dict[str, str] = Field(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        description="Labels Prometheus selects ServiceMonitors, rules and Probes by.",
    )
    prober: str | None = Field(
        None,
        description="host:port of the blackbox exporter that probes public URLs; default: "
        "the Service of the platform's prometheus-blackbox-exporter release.",
    )
    module: str = "http_2xx"


class ServiceDefaults(Model):
    registry: str | None = Field(None, description="Registry host images are pushed to.")
    forge: str | None = None
    deployments_repo: str | None = Field(None, description="The GitOps repository (overlays).")
    deployments_revision: str = "HEAD"
    deployments_credentials: RepoCredentials | None = Field(
        None, description="Argo CD's credential for deployments_repo (a repository Secret)."
    )
    overlay: str = Field("overlays/{service}", description="Overlay path; {service}: the name.")
    tailnet_domain: str | None = Field(None, description="e.g. tail0000.ts.net (funnel hosts).")
    image_update_strategy: Literal["semver", "latest", "digest", "name"] = "latest"
    argocd_project: str = "default"
    harbor: HarborApi | None = None
    woodpecker: WoodpeckerApi | None = None
    object_store: ObjectStore | None = None
    releases: ServiceReleases = ServiceReleases()
    monitoring: MonitoringDefaults = MonitoringDefaults()
    quota: Resources = Field(default_factory=lambda: dict(DEFAULT_QUOTA))
    limits: Limits = Limits()


class Services(Model):
    """``services`` holds ``defaults`` plus one entry per service name."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[DnsLabel, Service] = Field(init=False)  # type: ignore[assignment]

    defaults: ServiceDefaults = ServiceDefaults()

    def items(self) -> list[tuple[str, Service]]:
        return sorted((self.__pydantic_extra__ or {}).items())
