"""The ``palplat:services`` pillar section: ``defaults`` plus one entry per service.

Field-level rules live here (types, patterns, the six-field cron of a backup schedule);
rules that look across sections (the releases a service relies on, credentials a service
needs, names that must not clash) live in :mod:`palplat.services.checks`, which
:func:`palplat.config.cross_check` runs so that every problem is reported at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

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
    """A PostgreSQL database (CloudNativePG)."""

    instances: Annotated[int, Field(ge=1, le=9)] = 1
    """PostgreSQL instances (1: no replica)."""
    size: Quantity = "1Gi"
    """Volume size of each instance."""
    backup: Backup | None = Field(
        None, description="Scheduled backups to the platform's object store (defaults)."
    )


class Metrics(Model):
    """Prometheus scraping (a ServiceMonitor)."""

    path: str = "/metrics"
    """HTTP path Prometheus scrapes."""
    port: Port | None = Field(None, description="Defaults to the service's port.")
    interval: Duration = "30s"
    """Scrape interval."""


class Alert(Model):
    """One Prometheus alert."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    """Alert name (unique per service; not one of palplat's defaults)."""
    expr: str = Field(min_length=1)
    """PromQL expression."""
    for_: Duration = Field("5m", alias="for")
    """How long expr must hold before it fires."""
    severity: Literal["critical", "warning", "info"] = "warning"
    """Label severity."""
    summary: str | None = None
    """The annotation summary."""


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
    """Pods of this namespace (with pods: only those)."""
    pods: dict[str, str] = Field(default_factory=dict, description="Pod label selector.")
    cidr: Cidr | None = None
    """An IP block instead of pods."""
    ports: list[Port] = Field(default_factory=list, description="Empty: every port.")
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol of ports."""


class Network(Model):
    """Traffic allowed beyond palplat's defaults (default deny; ingress from the Tailscale
    proxies when funnelled and from monitoring; egress to DNS and the own database)."""

    ingress: list[Peer] = Field(default_factory=list, description="Extra allowed sources.")
    egress: list[Peer] = Field(default_factory=list, description="Extra allowed destinations.")


class Service(Model):
    """One service: its namespace, registry, CI, delivery, ingress, monitoring, database and
    secrets. See docs/services.md.
    """

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
    """A CloudNativePG Cluster <name>-db in the service's namespace (credentials in the Secret
    <name>-db-app).
    """
    metrics: Metrics | None = None
    """A ServiceMonitor Prometheus scrapes."""
    alerts: list[Alert] = []
    """PrometheusRule alerts, beside palplat's defaults (target down, restart loop)."""
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
    """Harbor's API."""

    url: HttpUrl = Field(description="Harbor's address; the API is <url>/api/v2.0.")
    username: str = "admin"
    """Harbor user palplat signs in as (an admin)."""
    password: Secret | None = Field(
        None,
        description="The admin's password (GPG pillar). Unset: the one palplat generated for "
        "the Harbor release (its values' existingSecretAdminPassword Secret, `generated`).",
    )
    verify_tls: bool = Field(True, description="Check Harbor's TLS certificate.")
    robot_prefix: str = Field("robot$", description="Harbor's robot_name_prefix.")
    allow_http: bool = Field(
        False,
        description="Accept an http:// url (the admin password travels in clear): only for "
        "a Harbor on loopback or a network you trust.",
    )


class WoodpeckerApi(Model):
    """Woodpecker CI's API."""

    url: HttpUrl = Field(description="Woodpecker's address; the API is <url>/api.")
    token: Secret | None = Field(
        None,
        description="A personal access token of a Woodpecker admin (GPG pillar). It needs a "
        "browser login, so palplat cannot make it: unset, the services' CI part waits for "
        "the operator (the run says where to make it) while the other parts converge.",
    )
    verify_tls: bool = Field(True, description="Check Woodpecker's TLS certificate.")
    allow_http: bool = Field(
        False,
        description="Accept an http:// url (the token travels in clear): only for a "
        "Woodpecker on loopback or a network you trust.",
    )


class RepoCredentials(Model):
    """Argo CD's credential for deployments_repo."""

    username: str
    """User Argo CD reads deployments_repo as."""
    password: Secret | None = Field(
        None,
        description="GPG pillar. Unset, with deployments_repo on the forge: the read-only "
        "access token palplat makes in Forgejo for Argo CD (services:defaults:forge).",
    )


def _forge_url(v):
    """``forge: https://...`` (palplat 0.1's form) is ``forge: {url: https://...}``."""
    return {"url": v} if isinstance(v, str) else v


class ForgeApi(Model):
    """Forgejo, where the services' repositories live, installed by the platform release
    ``services:defaults:releases:forge``. In the platform stage palplat signs in as that
    release's admin and makes what the apps around it need (never asking the operator to
    copy it): the OAuth2 application Woodpecker logs in with, and the read-only token Argo
    CD reads deployments_repo with. See docs: the first run."""

    url: HttpUrl = Field(description="Forgejo's address (browsers, OAuth redirects, clones).")
    api_url: HttpUrl | None = Field(
        None,
        description="Where palplat calls Forgejo's API (<api_url>/api/v1). Default: the "
        "ClusterIP of the forge release's `expose` Service, which a k3s node reaches "
        "before the tailnet ingress exists; set it for a cluster palplat does not run on "
        "(k3s:mode: external).",
    )
    admin_secret: DnsLabel | None = Field(
        None,
        description="The Secret (keys username, password) in the forge release's namespace "
        "palplat signs in with. Default: the chart's gitea.admin.existingSecret, else the "
        "release's values gitea.admin.username and secret_values gitea.admin.password.",
    )
    verify_tls: bool = Field(True, description="Check Forgejo's TLS certificate (api_url).")
    allow_http: bool = Field(
        False,
        description="Accept an http:// api_url (the admin's password travels in clear): only "
        "for a Forgejo on loopback or a network you trust. The default route (the Service's "
        "ClusterIP) is the chart's plain HTTP, inside the node that calls it.",
    )
    woodpecker_oauth: bool = Field(
        True,
        description="Make the OAuth2 application Woodpecker logs in with (redirect "
        "<woodpecker url>/authorize) and keep its client id and secret in the Secret "
        "palplat-forgejo-oauth of Woodpecker's namespace (WOODPECKER_FORGEJO_CLIENT, "
        "WOODPECKER_FORGEJO_SECRET: list it in the chart's server.extraSecretNamesForEnvFrom).",
    )
    argocd_token: bool = Field(
        True,
        description="Make the read-only access token Argo CD reads deployments_repo with, "
        "kept in the Secret palplat-forgejo-argocd of the forge's namespace (when "
        "deployments_credentials has no password).",
    )


class ObjectStore(Model):
    """Where database backups go (an S3 API, e.g. the platform's MinIO)."""

    endpoint: HttpUrl = Field(description="e.g. http://minio.minio.svc:9000")
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    """Bucket the backups go to."""
    access_key: str | None = Field(
        None,
        description="The S3 access key id: an identifier, not a secret (it appears in the "
        "object store's own configuration and logs); the secret is secret_key.",
    )
    secret_key: Secret | None = None
    """The S3 secret key (GPG pillar)."""
    release: DnsLabel | None = Field(
        "minio", description="The platform release serving it (checked to be enabled)."
    )


class ServiceReleases(Model):
    """Names of the platform releases services rely on (keys of platform:releases)."""

    tailscale: DnsLabel = "tailscale-operator"
    """The Tailscale operator (funnel ingresses)."""
    cnpg: DnsLabel = "cnpg"
    """CloudNativePG (databases)."""
    monitoring: DnsLabel = "kube-prometheus-stack"
    """kube-prometheus-stack (ServiceMonitors, rules, probes)."""
    argocd: DnsLabel = "argocd"
    """Argo CD (delivery)."""
    forge: DnsLabel = Field("forgejo", description="Forgejo (services:defaults:forge).")
    woodpecker: DnsLabel = Field("woodpecker", description="Woodpecker CI (its OAuth client).")
    harbor: DnsLabel = Field("harbor", description="Harbor (its generated admin password).")


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
    """The blackbox exporter module public URLs are probed with."""


class ServiceDefaults(Model):
    """What every service shares: registry, GitOps repository, the APIs palplat manages,
    monitoring, quota.
    """

    registry: str | None = Field(None, description="Registry host images are pushed to.")
    forge: Annotated[ForgeApi | None, BeforeValidator(_forge_url)] = Field(
        None, description="Forgejo: what palplat makes in it for the other apps (ForgeApi)."
    )
    deployments_repo: str | None = Field(None, description="The GitOps repository (overlays).")
    deployments_revision: str = "HEAD"
    """Git revision Argo CD follows."""
    deployments_credentials: RepoCredentials | None = Field(
        None, description="Argo CD's credential for deployments_repo (a repository Secret)."
    )
    overlay: str = Field("overlays/{service}", description="Overlay path; {service}: the name.")
    tailnet_domain: str | None = Field(None, description="e.g. tail0000.ts.net (funnel hosts).")
    image_update_strategy: Literal["semver", "latest", "digest", "name"] = "latest"
    """argocd-image-updater's update strategy."""
    argocd_project: str = "default"
    """Argo CD project of the Applications."""
    harbor: HarborApi | None = None
    """Harbor's API: projects and robots per service."""
    woodpecker: WoodpeckerApi | None = None
    """Woodpecker's API: repositories and pipeline secrets per service."""
    object_store: ObjectStore | None = None
    """Where database backups go (an S3 API, e.g. the platform's MinIO)."""
    releases: ServiceReleases = ServiceReleases()
    """The platform releases services rely on."""
    monitoring: MonitoringDefaults = MonitoringDefaults()
    """How services are monitored."""
    quota: Resources = Field(default_factory=lambda: dict(DEFAULT_QUOTA))
    """ResourceQuota of every service namespace (a service's quota is merged over it)."""
    limits: Limits = Limits()
    """LimitRange of every service namespace (a service's limits replace it)."""


class Services(Model):
    """``services`` holds ``defaults`` plus one entry per service name."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[DnsLabel, Service] = Field(init=False)  # type: ignore[assignment]

    defaults: ServiceDefaults = ServiceDefaults()
    """Settings every service shares."""

    def items(self) -> list[tuple[str, Service]]:
        return sorted((self.__pydantic_extra__ or {}).items())
