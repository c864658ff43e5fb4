"""Cross checks of ``palplat:services``: what a field alone cannot tell.

Run by :func:`palplat.config.cross_check` with every other check, before anything
changes. Each problem names its pillar path and the fix:

- names that Kubernetes, CloudNativePG or Harbor would refuse;
- ``funnel`` without the Tailscale operator (or without ``tailnet_domain``), ``database``
  without CloudNativePG, ``backup`` without an object store (or its release, or its
  credentials), delivery and monitoring without their releases;
- a missing Harbor credential (none in the pillar and none the Harbor release generates)
  when a service needs it; Woodpecker's token may be missing: the CI part then waits for
  the operator (services.credentials);
- ``forge``: its release, the admin palplat signs in as, Woodpecker reading the OAuth
  client palplat makes, a credential for ``deployments_repo``;
- alerts that clash with each other or with palplat's default alerts, network peers
  that are neither a namespace nor an IP block, ``delete_data`` without ``absent``.
"""

from __future__ import annotations

from palplat.errors import PillarProblem
from palplat.model import PalplatPillar
from palplat.platform import objects
from palplat.services.pillar import Service

ROOT = "palplat:services"
# derived names: <name>-db-<n> pods, <name>-db-rw services, robot names, ...
MAX_NAME = 40
DEFAULT_ALERTS = ("ServiceTargetDown", "ServiceRestartLoop")
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Harbor's own project (every installation has it; palplat must never own or delete it)
RESERVED_PROJECTS = ("library",)


def enabled_release(cfg: PalplatPillar, name: str | None) -> bool:
    rel = cfg.platform.releases.get(name or "")
    return rel is not None and rel.enabled


def release_namespace(cfg: PalplatPillar, name: str, default: str) -> str:
    """The namespace of platform release ``name`` (``default`` when it is not defined)."""
    rel = cfg.platform.releases.get(name)
    return rel.namespace if rel is not None else default


def active(cfg: PalplatPillar) -> list[tuple[str, Service]]:
    """The services palplat manages (``enabled``), absent ones included."""
    return [(n, s) for n, s in cfg.services.items() if s.enabled]


def check(cfg: PalplatPillar) -> list[PillarProblem]:
    services = active(cfg)
    if not services:
        return []
    out: list[PillarProblem] = []
    for name, svc in services:
        out.extend(_names(cfg, name, svc))
        out.extend(_entry(cfg, name, svc))
    out.extend(_defaults(cfg, services))
    return out


def _p(path: str, message: str, found: str | None = None) -> PillarProblem:
    return PillarProblem(f"{ROOT}:{path}", message, found)


def _names(cfg: PalplatPillar, name: str, svc: Service) -> list[PillarProblem]:
    out = []
    if len(name) > MAX_NAME:
        out.append(
            _p(
                name,
                f"service names are at most {MAX_NAME} characters (palplat derives object, "
                "database and robot names from them); choose a shorter name",
                repr(name),
            )
        )
    if "--" in name:
        out.append(
            _p(
                name,
                "has '--': Harbor project names allow no consecutive separators; use one '-'",
                repr(name),
            )
        )
    if name in RESERVED_PROJECTS:
        out.append(
            _p(
                name,
                f"'{name}' is Harbor's default project (every Harbor has it): a service "
                "would adopt it, and offboarding with delete_data would target it; choose "
                "another name",
                repr(name),
            )
        )
    ns = svc.namespace or name
    path = f"{name}:namespace" if svc.namespace else name
    if ns.startswith("kube-") or ns in RESERVED_NAMESPACES:
        out.append(
            _p(path, "names a namespace reserved by Kubernetes; give the service its own", ns)
        )
    owners = {
        rel.namespace: rname
        for rname, rel in cfg.platform.releases.items()
        if rel.namespace not in (None, "")
    }
    if ns in owners:
        out.append(
            _p(
                path,
                f"namespace '{ns}' belongs to the platform release '{owners[ns]}' (a service "
                "namespace gets a default-deny NetworkPolicy); set another namespace",
            )
        )
    return out


def _need_release(cfg, name: str, path: str, what: str, key: str, rel: str) -> list:
    if enabled_release(cfg, rel):
        return []
    return [
        _p(
            f"{name}:{path}",
            f"needs {what}: enable palplat:platform:releases:{rel} (or name yours in "
            f"palplat:services:defaults:releases:{key}), or remove {path}",
        )
    ]


def _entry(cfg: PalplatPillar, name: str, svc: Service) -> list[PillarProblem]:
    out: list[PillarProblem] = []
    d = cfg.services.defaults
    if svc.delete_data and not svc.absent:
        out.append(
            _p(
                f"{name}:delete_data",
                "acts only when offboarding: set absent: true as well, or remove delete_data",
            )
        )
    if svc.absent:
        return out  # what is being removed needs no release
    if svc.funnel:
        out += _need_release(
            cfg, name, "funnel", "the Tailscale operator", "tailscale", d.releases.tailscale
        )
    if svc.database is not None:
        out += _need_release(cfg, name, "database", "CloudNativePG", "cnpg", d.releases.cnpg)
        if svc.database.backup is not None:
            out += _backup(cfg, name)
    seen: dict[str, int] = {}
    for i, alert in enumerate(svc.alerts):
        if alert.name in DEFAULT_ALERTS:
            out.append(
                _p(
                    f"{name}:alerts:{i}:name",
                    f"is one of palplat's default alerts ({', '.join(DEFAULT_ALERTS)}); "
                    "choose another name",
                    alert.name,
                )
            )
        elif alert.name in seen:
            out.append(
                _p(
                    f"{name}:alerts:{i}:name",
                    f"duplicates alerts:{seen[alert.name]}; alert names must be unique",
                    alert.name,
                )
            )
        seen.setdefault(alert.name, i)
    for way in ("ingress", "egress"):
        for i, peer in enumerate(getattr(svc.network, way)):
            if peer.cidr and (peer.namespace or peer.pods):
                out.append(
                    _p(
                        f"{name}:network:{way}:{i}",
                        "gives cidr together with namespace/pods: a peer is either pods "
                        "(namespace and/or pods) or an IP block (cidr)",
                    )
                )
            elif not (peer.cidr or peer.namespace or peer.pods):
                out.append(
                    _p(
                        f"{name}:network:{way}:{i}",
                        "selects nothing: give namespace (all its pods), pods (labels in "
                        "the service's namespace), both, or cidr",
                    )
                )
    return out


def _backup(cfg: PalplatPillar, name: str) -> list[PillarProblem]:
    store = cfg.services.defaults.object_store
    if store is None:
        return [
            _p(
                f"{name}:database:backup",
                "needs an object store: set palplat:services:defaults:object_store (endpoint, "
                "bucket, access_key, secret_key), or remove backup",
            )
        ]
    out = []
    if store.release and not enabled_release(cfg, store.release):
        out.append(
            _p(
                "defaults:object_store:release",
                f"names the release '{store.release}', which is not an enabled "
                "palplat:platform:releases entry; enable it, or set release to null for an "
                f"object store outside the platform (needed by {name}'s backup)",
            )
        )
    for key in ("access_key", "secret_key"):
        if getattr(store, key) is None:
            out.append(
                _p(
                    f"defaults:object_store:{key}",
                    f"is required for database backups (service {name}); add it to the "
                    "GPG-encrypted pillar (make encrypt)",
                )
            )
    return out


def _harbor_admin_from_release(cfg: PalplatPillar) -> bool:
    rel = cfg.platform.releases.get(cfg.services.defaults.releases.harbor)
    if rel is None or not rel.enabled:
        return False
    return "harborAdminPassword" in rel.secret_values or bool(
        rel.values.get("existingSecretAdminPassword")
    )


def _forge(cfg: PalplatPillar, present: list[str]) -> list[PillarProblem]:
    """What palplat makes in Forgejo needs the forge release, a way to sign in, and
    Woodpecker reading the OAuth client; Argo CD needs a credential for deployments_repo."""
    from palplat.platform import forge

    d = cfg.services.defaults
    out: list[PillarProblem] = []
    creds = d.deployments_credentials
    if present and creds is not None and creds.password is None and not forge.wants_token(cfg):
        out.append(
            _p(
                "defaults:deployments_credentials:password",
                "is required: Argo CD reads deployments_repo with it; add it to the "
                "GPG-encrypted pillar, or let palplat make a token in Forgejo (set "
                "services:defaults:forge, with deployments_repo on that forge)",
            )
        )
    f = d.forge
    if f is None:
        return out
    rel = cfg.platform.releases.get(d.releases.forge)
    if rel is None or not rel.enabled:
        out.append(
            _p(
                "defaults:forge",
                f"names the forge release '{d.releases.forge}', which is not an enabled "
                "palplat:platform:releases entry: enable it, or name yours in "
                "services:defaults:releases:forge",
            )
        )
        return out
    st = forge.step(cfg)
    if st is None:
        return out
    admin = f.admin_secret or forge._tree(rel.values, "gitea", "admin", "existingSecret")
    if not admin and forge._tree(rel.secret_values, "gitea", "admin", "password") is None:
        out.append(
            _p(
                "defaults:forge",
                "palplat signs in to Forgejo as its admin, but the forge release "
                f"(palplat:platform:releases:{st.forge_key}) names no admin password: let "
                "palplat generate one (generated: {forgejo-admin: {username: ..., password: "
                "{random: 32}}} and values gitea.admin.existingSecret: forgejo-admin), or set "
                "secret_values gitea.admin.password",
            )
        )
    if st.woodpecker_key:
        wp = cfg.platform.releases[st.woodpecker_key]
        env_from = forge._tree(wp.values, "server", "extraSecretNamesForEnvFrom") or []
        if forge.OAUTH_SECRET not in env_from:
            out.append(
                PillarProblem(
                    f"palplat:platform:releases:{st.woodpecker_key}:values:server:"
                    "extraSecretNamesForEnvFrom",
                    f"must list {forge.OAUTH_SECRET}: palplat keeps Woodpecker's Forgejo OAuth "
                    f"client there ({forge.CLIENT_KEY}, {forge.SECRET_KEY}); add it (keep "
                    "the chart's woodpecker-secret), or set services:defaults:forge:"
                    "woodpecker_oauth: false and give the client yourself",
                )
            )
    return out


def _defaults(cfg: PalplatPillar, services: list[tuple[str, Service]]) -> list[PillarProblem]:
    d = cfg.services.defaults
    out: list[PillarProblem] = []
    present = [n for n, s in services if not s.absent]

    def names(ns: list[str]) -> str:
        return ", ".join(ns[:3]) + (f" and {len(ns) - 3} more" if len(ns) > 3 else "")

    if d.harbor is None:
        out.append(
            _p(
                "defaults:harbor",
                f"is required: every service gets a Harbor project and robots (needed by "
                f"{names([n for n, _ in services])}); set url, username and password",
            )
        )
    elif d.harbor.password is None and not _harbor_admin_from_release(cfg):
        out.append(
            _p(
                "defaults:harbor:password",
                f"is required to manage Harbor projects and robots (needed by "
                f"{names([n for n, _ in services])}): add it to the GPG-encrypted pillar, "
                f"or let palplat generate it for the Harbor release (palplat:platform:"
                f"releases:{d.releases.harbor}: generated, and values "
                "existingSecretAdminPassword naming that Secret)",
            )
        )
    ci = [n for n, s in services if s.ci]
    if ci and d.woodpecker is None:
        out.append(
            _p(
                "defaults:woodpecker",
                f"is required by services with CI ({names(ci)}): set url (and, once "
                "Woodpecker runs, token), or set ci: false on them",
            )
        )
    out.extend(_forge(cfg, present))
    if not present:
        return out
    if not d.registry:
        out.append(
            _p(
                "defaults:registry",
                f"is required: the registry host images of {names(present)} "
                "are pushed to (e.g. harbor.tail0000.ts.net)",
            )
        )
    if not d.deployments_repo:
        out.append(
            _p(
                "defaults:deployments_repo",
                f"is required: the GitOps repository Argo CD reads the overlays of "
                f"{names(present)} from",
            )
        )
    funnel = [n for n, s in services if s.funnel and not s.absent]
    if funnel and not d.tailnet_domain:
        out.append(
            _p(
                "defaults:tailnet_domain",
                f"is required by funnelled services ({names(funnel)}): their public host is "
                "<name>.<tailnet_domain>; set it, e.g. tail0000.ts.net",
            )
        )
    if funnel and not d.monitoring.prober and objects.prober(cfg.platform.releases) is None:
        out.append(
            _p(
                "defaults:monitoring:prober",
                f"is required by funnelled services ({names(funnel)}), whose public URL is "
                "probed: enable a prometheus-blackbox-exporter release or set host:port here",
            )
        )
    for key, what in (("argocd", "delivery (Argo CD)"), ("monitoring", "monitoring")):
        rel = getattr(d.releases, key)
        if not enabled_release(cfg, rel):
            out.append(
                _p(
                    f"defaults:releases:{key}",
                    f"names '{rel}', which is not an enabled palplat:platform:releases entry; "
                    f"every service gets {what}: enable that release or name yours here",
                )
            )
    return out
