"""The ``palplat`` pillar model.

One pydantic model per pillar section. Every model forbids unknown keys (typos are errors
with a did-you-mean, see :mod:`palplat.config`), types are strict (``port: "80"`` is an
error, not a coercion), and secret fields are typed :class:`palplat.secret.Secret`.

Cross-field rules (release ``needs`` cycles and unknown references, service/namespace
clashes) live in :func:`palplat.config.cross_check` so that all of them are reported
together with the field errors.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainSerializer, ValidationInfo
from pydantic_core import PydanticCustomError

from palplat import redact
from palplat.chartref import Chart, ChartUrl, _chart_url  # noqa: F401 - re-exported
from palplat.dora.pillar import Dora  # noqa: F401 - re-exported: palplat.model.Dora
from palplat.fields import (  # noqa: F401 - re-exported: palplat.model.DnsLabel, ...
    DNS1123_LABEL,
    Cidr,
    DnsLabel,
    Duration,
    Interface,
    Model,
    Port,
    Quantity,
    SafePath,
    SecretTree,
    _cidr,
    _dns_label,
    _duration,
    _interface,
    _secret_tree,
    _size,
)
from palplat.gpu_pillar import (  # noqa: F401 - re-exported: palplat.model.Gpu, ...
    DevicePlugin,
    Gpu,
    TimeSlicing,
    ToolkitRepo,
)
from palplat.host.pillar import Host  # noqa: F401 - re-exported: palplat.model.Host
from palplat.nft.pillar import (  # noqa: F401 - re-exported: palplat.model.Firewall, ...
    Confirm,
    Firewall,
    FirewallRule,
    Management,
    PortOrRange,
    Source,
    _port_or_range,
    _source,
)
from palplat.provenance import Decrypted, Sealed
from palplat.secret import Secret, secret_from
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
# The firewall section lives in palplat.nft.pillar (re-exported here).


# ---------------------------------------------------------------------------- k3s


class RegistryAuth(Model):
    """Registry credentials."""

    username: str
    """Registry user."""
    password: Secret
    """GPG pillar."""


class RegistryTLS(Model):
    """Registry TLS settings."""

    insecure_skip_verify: bool = False
    """Do not check the registry's certificate."""
    ca_file: str | None = None
    """CA bundle on the node."""
    cert_file: str | None = None
    """Client certificate on the node."""
    key_file: str | None = None
    """Client key on the node."""


class RegistryConfig(Model):
    """One registry host's credentials and TLS."""

    auth: RegistryAuth | None = None
    """Credentials (registries.yaml configs.<host>.auth)."""
    tls: RegistryTLS | None = None
    """TLS settings (registries.yaml configs.<host>.tls)."""


class RegistryMirror(Model):
    """Where k3s pulls a registry's images from."""

    endpoint: list[str] = Field(min_length=1)
    """Mirror URLs, tried in order."""
    rewrite: dict[str, str] | None = None
    """Image name rewrites: regular expression -> replacement."""


class Registries(Model):
    """k3s's registries.yaml."""

    mirrors: dict[str, RegistryMirror] = {}
    """Per registry host (or '*'): where to pull from (k3s registries.yaml)."""
    configs: dict[str, RegistryConfig] = {}
    """Per registry host: credentials and TLS (k3s registries.yaml)."""


# config.yaml keys that are credentials: typed secret wherever they are set (a
# datastore-endpoint only when it holds a password, or came from decryption).
K3S_SECRET_KEYS = frozenset(
    {"token", "agent-token", "datastore-endpoint", "etcd-s3-secret-key", "vpn-auth"}
)


def _url_has_password(v: Any) -> bool:
    if not isinstance(v, str) or "://" not in v:
        return isinstance(v, str) and "@" in v and ":" in v.split("@", 1)[0]
    try:
        return urllib.parse.urlsplit(v).password is not None
    except ValueError:
        return True


def _k3s_config(v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in v.items():
        secret = key in K3S_SECRET_KEYS and (
            key != "datastore-endpoint"
            or isinstance(value, (Decrypted, Sealed, Secret))
            or _url_has_password(value)
        )
        if not secret:
            out[key] = value
            continue
        try:
            out[key] = secret_from(value, info.context)
        except PydanticCustomError as exc:
            raise PydanticCustomError(exc.type, exc.message(), {"subpath": key}) from None
    return out


class K3sSource(Model):
    """The k3s release archive: official URL, a mirror, file:// or salt://; sha256-verified."""

    url: str = Field(
        "https://github.com/k3s-io/k3s/releases/download/{version}",
        description="Base URL of a release: the official pattern, a mirror, or salt://...",
    )
    sha256: str | None = Field(
        None, description="sha256 of the k3s binary; default: the release's checksum file."
    )
    airgap_images: bool = False
    """Also install k3s-airgap-images-<arch>.tar.zst."""


class Drain(Model):
    """What draining this node (the ordered upgrade of an agent) may delete, as the flags of
    ``kubectl drain``; both off, so a drain that would lose something refuses first."""

    force: bool = Field(
        False, description="Evict pods no controller recreates (they are gone for good)."
    )
    delete_emptydir_data: bool = Field(
        False, description="Evict pods with emptyDir volumes (their data is lost)."
    )


class K3s(Model):
    """The k3s stage: install, configure, join, run; upgrades through the quorum-safe runner. See
    docs/k3s.md.
    """

    mode: Literal["install", "external"] = Field(
        "install",
        description="install: palplat installs and runs k3s. external: use an existing "
        "cluster through `kubeconfig` and skip installation.",
    )
    version: Annotated[str, Field(pattern=r"^v[0-9]+\.[0-9]+\.[0-9]+(\+k3s[0-9]+)?$")] | None = None
    """Pinned k3s release, e.g. v1.33.5+k3s1; required with mode install. A change on running nodes
    goes through the quorum-safe upgrade.
    """
    role: Literal["server", "agent"] = "server"
    """server (control plane; the first one runs the cluster-wide stages) or agent."""
    cluster_init: bool = Field(
        True, description="First server of the cluster (embedded etcd when several servers)."
    )
    server_url: str | None = Field(None, description="URL of an existing server, to join.")
    token: Secret | None = None
    """The cluster's join token (GPG pillar); required to join, checked against the running
    cluster.
    """
    kubeconfig: SafePath | None = Field(
        None, description="Kubeconfig path (external mode; default /etc/rancher/k3s/k3s.yaml)."
    )
    config: Annotated[
        dict[str, Any], AfterValidator(_k3s_config), PlainSerializer(lambda v: redact.mask(v))
    ] = Field(
        default_factory=dict,
        description="k3s config.yaml keys (flags without the --). The credentials among "
        "them (agent-token, etcd-s3-secret-key, vpn-auth, a datastore-endpoint with a "
        "password) are secrets: GPG pillar.",
    )
    registries: Registries | None = None
    """k3s's registries.yaml: mirrors and credentials."""
    source: K3sSource = K3sSource()
    """Where the k3s binary comes from."""
    allow_downgrade: bool = False
    """Allow a version older than the installed one."""
    extra_flags: list[str] = Field(
        default_factory=list,
        description="config keys to accept although palplat's list of k3s flags lacks "
        "them (a flag newer than palplat).",
    )
    ready_timeout: Annotated[int, Field(ge=10, le=3600)] = 300
    """Seconds to wait for the API server and the node to be ready after a (re)start."""
    root: SafePath = Field(
        "/",
        description="Filesystem root every k3s path lives under (tests use a tmp dir); it "
        "is written into the k3s unit's ExecStart.",
    )
    service_manager: Literal["auto", "systemd", "processes"] = Field(
        "auto", description="auto: systemd where it runs, else plain processes."
    )
    drain: Drain = Drain()
    """What draining this node (an agent's ordered upgrade) may delete: kubectl drain's
    --force and --delete-emptydir-data, both off."""


# ---------------------------------------------------------------------------- helm


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


class Random(Model):
    """A value palplat makes once (letters and digits) and keeps in the cluster."""

    random: Annotated[int, Field(ge=16, le=128)] = Field(description="Its length.")


SecretKey = Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$")]


class Release(Model):
    """One Helm release of the platform (fingerprinted: a run without a change calls no helm
    upgrade).
    """

    namespace: DnsLabel
    """Namespace the release is installed in (created when missing)."""
    chart: Chart
    """Where the chart comes from (repo + name, oci or path) and its pinned version."""
    values: dict[str, Any] = {}
    """Chart values (plain); secrets go in secret_values."""
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
    generated: dict[DnsLabel, dict[SecretKey, str | Random]] = Field(
        default_factory=dict,
        description="Kubernetes Secrets palplat makes in the release's namespace before the "
        "release, for charts that read an existingSecret (admin passwords): name -> key -> "
        "a fixed value, or {random: <length>}, made once and kept (never in the pillar, "
        "never shown). See docs: the first run.",
    )
    needs: list[str] = Field(
        default_factory=list, description="Releases installed first (keys of releases)."
    )
    enabled: bool = Field(True, description="false: uninstall the release (keep_pvcs).")
    timeout: Annotated[int, Field(ge=10, le=7200)] = Field(
        600, description="Seconds helm waits for the release's objects to be ready."
    )
    wait: bool = Field(
        True,
        description="Wait for readiness and roll back atomically on failure; false: neither "
        "(for charts whose objects never report ready).",
    )
    keep_pvcs: bool = Field(True, description="Keep PersistentVolumeClaims on uninstall.")
    create_namespace: bool = Field(True, description="helm --create-namespace.")
    release_name: DnsLabel | None = Field(None, description="Defaults to the map key.")
    database: Database | None = Field(
        None,
        description="A CloudNativePG Cluster `<key>-db` palplat creates in the release's "
        "namespace before the release; the chart reads the credentials from the Secret "
        "CloudNativePG makes, `<key>-db-app` (see docs/platform.md).",
    )
    expose: Expose | None = None
    """The release's web UI on the tailnet (a Tailscale Ingress, a blackbox Probe)."""


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
    path: SafePath = "/usr/local/bin/helm"
    """Where palplat installs helm (and looks for it)."""


def _mirrors(v: dict[str, str]) -> dict[str, str]:
    for src, dst in v.items():
        if (src.startswith("oci://")) != (dst.startswith("oci://")):
            raise ValueError(
                f"{src} -> {dst}: a repository URL needs an http(s) mirror and an oci:// "
                "prefix an oci:// mirror"
            )
    return v


class Platform(Model):
    """The platform stage: Helm releases in needs order, and the objects palplat makes beside them
    (databases, Tailscale ingresses, Secrets). See docs/platform.md.
    """

    helm: HelmTool = HelmTool()
    """The helm binary (pinned and verified when version is set)."""
    releases: dict[DnsLabel, Release] = {}
    """The platform's Helm releases, by key (the release name unless release_name)."""
    history_max: Annotated[int, Field(ge=1, le=100)] = 5
    """helm --history-max: revisions kept per release."""
    parallel: Annotated[int, Field(ge=1, le=16)] = 4
    """Releases of one needs-wave installed at once."""
    mirrors: Annotated[dict[ChartUrl, ChartUrl], AfterValidator(_mirrors)] = Field(
        default_factory=dict,
        description="Chart repository URL or OCI prefix (oci://registry[/path]) -> its "
        "mirror; every helm call uses the mirror. Not part of the release fingerprint: "
        "switching mirrors upgrades nothing.",
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
    dora: Dora = Dora()
