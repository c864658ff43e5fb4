"""palplat.platform: the objects the platform stage creates beside releases, their order
and their pillar checks (no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from palplat import config
from palplat.errors import PillarError
from palplat.model import Database
from palplat.platform import access, database, objects
from tests.support import example as example_pillar

REPO = Path(__file__).resolve().parents[3]


def _merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def example():
    return example_pillar.filled()


def test_cnpg_cluster_and_its_credentials():
    db = database.cnpg_cluster("forgejo", "forgejo", Database(instances=2, size="10Gi"))
    assert db.manifest == {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "forgejo-db", "namespace": "forgejo"},
        "spec": {
            "instances": 2,
            "storage": {"size": "10Gi"},
            "bootstrap": {"initdb": {"database": "app", "owner": "app"}},
        },
    }
    assert (db.secret, db.host, db.port, db.database) == (
        "forgejo-db-app",
        "forgejo-db-rw",
        5432,
        "app",
    )
    assert db.secret_key_ref("password") == {
        "secretKeyRef": {"name": "forgejo-db-app", "key": "password"}
    }
    with pytest.raises(ValueError, match="not a key"):
        db.secret_key_ref("passwd")


def test_tailscale_ingress_and_probe():
    ing = access.tailscale_ingress(
        "palplat-forgejo", "forgejo", "forgejo-http", 3000, "https://forgejo.t.ts.net", funnel=True
    )
    assert ing["metadata"]["annotations"] == {"tailscale.com/funnel": "true"}
    assert ing["spec"]["tls"] == [{"hosts": ["forgejo"]}]
    assert ing["spec"]["defaultBackend"]["service"] == {
        "name": "forgejo-http",
        "port": {"number": 3000},
    }
    private = access.tailscale_ingress("x", "n", "s", 80, "https://x.t.ts.net", funnel=False)
    assert "annotations" not in private["metadata"]
    probe = access.blackbox_probe(
        "palplat-forgejo", "monitoring", "https://forgejo.t.ts.net", "bb:9115"
    )
    assert probe["spec"]["prober"]["url"] == "bb:9115"
    assert probe["spec"]["targets"]["staticConfig"]["static"] == ["https://forgejo.t.ts.net"]


def test_example_layout_and_groups(example):
    cfg = config.load(example)
    rels = config.releases(cfg)
    first, second = objects.layout(rels)
    assert set(second) == {"forgejo", "woodpecker", "keycloak"}
    assert "cnpg" in first and not set(first) & set(second)
    groups = objects.groups(cfg, rels)
    assert list(groups) == ["secrets", "databases", "access", "dora"]  # the order they apply in
    sec = groups["secrets"]
    assert sorted((m["kind"], m["metadata"]["name"]) for m in sec.manifests) == [
        ("Namespace", "forgejo"),
        ("Namespace", "harbor"),
        ("Namespace", "minio"),
        ("Namespace", "monitoring"),
        ("Secret", "alertmanager-telegram"),
        # made by palplat (generated), kept with the pillar's Secrets
        ("Secret", "forgejo-admin"),
        ("Secret", "grafana-admin"),
        ("Secret", "harbor-admin"),
        ("Secret", "harbor-secret-key"),
        ("Secret", "minio-backup-user"),
    ]
    assert sec.prune and sec.prune_kinds == (("v1", "Secret"),)
    (minio,) = [m for m in sec.manifests if m["metadata"]["name"] == "minio-backup-user"]
    key = minio["stringData"]["secretKey"]
    assert str(key) == "<hidden>" and key.reveal() == example_pillar.test_value(
        "CHANGE-ME-minio-backup-key"
    )
    store = cfg.services.defaults.object_store
    assert store.secret_key.reveal() == key.reveal()  # one value (a YAML alias)
    dbs = groups["databases"]
    backups = ["Secret", "ScheduledBackup"]  # forgejo and keycloak back up
    # forgejo's namespace came with its generated admin Secret (one group per namespace)
    assert [m["kind"] for m in dbs.manifests] == ["Namespace"] * 2 + [
        "Cluster", *backups, "Cluster", *backups, "Cluster"
    ]  # fmt: skip
    # a Cluster or namespace is never pruned (data); a removed backup's objects are
    assert dbs.prune and {k for _, k in dbs.prune_kinds} == {"ScheduledBackup", "Secret"}
    assert groups["access"].prune
    kinds = {}
    for m in groups["access"].manifests:
        kinds.setdefault(m["kind"], []).append(m["metadata"]["name"])
    assert len(kinds["Ingress"]) == len(kinds["Probe"]) == 6
    assert objects.prober(rels) == (
        "monitoring",
        "blackbox-exporter-prometheus-blackbox-exporter.monitoring.svc:9115",
    )


def test_fullname_follows_the_charts_rule(example):
    cfg = config.load(example)
    rels = config.releases(cfg)
    assert objects.fullname("keycloak", rels["keycloak"]) == "keycloak-keycloakx"
    assert objects.fullname("minio", rels["minio"]) == "minio"
    assert objects.fullname("forgejo", rels["forgejo"]) == "forgejo"  # oci: last segment


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (
            lambda r: r["forgejo"].update(needs=[]),
            "palplat:platform:releases:forgejo:database",
            "CloudNativePG",
        ),
        (
            lambda r: r["harbor"]["expose"].update(url="https://forgejo.tail0000.ts.net"),
            "palplat:platform:releases:harbor:expose:url",
            "already used",
        ),
        (
            lambda r: r.pop("blackbox-exporter"),
            "palplat:platform:releases:forgejo:expose:probe",
            "blackbox exporter",
        ),
        (
            lambda r: r["harbor"]["expose"].update(url="http://harbor.tail0000.ts.net"),
            "palplat:platform:releases:harbor:expose:url",
            "https URL",
        ),
    ],
)
def test_pillar_checks(example, mutate, path, words):
    pillar = copy.deepcopy(example)
    mutate(pillar["palplat"]["platform"]["releases"])
    with pytest.raises(PillarError) as exc:
        config.load(pillar)
    found = {p.path: str(p) for p in exc.value.problems}
    assert path in found, str(exc.value)
    assert words in found[path]


def test_platform_database_backups_to_the_object_store(example):
    """``database.backup`` of a release: barman to the services' object store under
    ``platform/<key>``, its keys' Secret and a ScheduledBackup beside the Cluster; without
    an object store the pillar is refused at that path."""
    cfg = config.load(example)
    rels = config.releases(cfg)
    dbs = objects.groups(cfg, rels)["databases"].manifests
    by = {(m["kind"], m["metadata"]["namespace"] if "namespace" in m["metadata"] else ""): m
          for m in dbs if m["kind"] != "Namespace"}  # fmt: skip
    for key in ("forgejo", "keycloak"):
        ns = rels[key].namespace
        barman = by[("Cluster", ns)]["spec"]["backup"]["barmanObjectStore"]
        assert barman["destinationPath"] == f"s3://cnpg-backups/platform/{key}"
        assert by[("ScheduledBackup", ns)]["spec"]["cluster"] == {"name": f"{key}-db"}
        keys = by[("Secret", ns)]["stringData"]
        assert str(keys["ACCESS_SECRET_KEY"]) == "<hidden>"
    pillar = copy.deepcopy(example)
    pillar["palplat"]["services"]["defaults"].pop("object_store")
    pillar["palplat"]["services"].pop("pal-e-docs")  # its own backup needs the store too
    with pytest.raises(PillarError) as exc:
        config.load(pillar)
    found = {p.path: str(p) for p in exc.value.problems}
    assert "object_store" in found["palplat:platform:releases:keycloak:database:backup"]


def test_backup_keys_once_per_namespace_and_the_bucket_stays_readable(example):
    """Two backed-up databases in one namespace share one keys' Secret (two would be a
    duplicate object); the access key id is not a secret, so names containing it (the
    bucket, destination paths) are not masked."""
    from palplat import redact

    pillar = copy.deepcopy(example)
    rels = pillar["palplat"]["platform"]["releases"]
    rels["keycloak"]["namespace"] = rels["forgejo"]["namespace"]
    cfg = config.load(pillar)
    dbs = objects.groups(cfg, config.releases(cfg))["databases"].manifests
    keys = [m for m in dbs if m["kind"] == "Secret"]
    assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in keys] == [
        ("forgejo", "palplat-backup-store")
    ]
    path = "s3://cnpg-backups/platform/forgejo"
    assert redact.mask_text(path) == path


def test_generated_secrets_are_made_once_and_kept(example):
    """A random value is made when the live Secret lacks it and kept after; fixed values
    follow the pillar; every value is a Secret (masked)."""
    import base64

    from palplat.platform import generated
    from palplat.secret import Secret

    cfg = config.load(example)
    rels = config.releases(cfg)
    first = {
        m["metadata"]["name"]: m for m in generated.manifests(rels, {}) if m["kind"] == "Secret"
    }
    admin = first["forgejo-admin"]["stringData"]
    assert admin["username"] == "forgejo-admin"
    pw = admin["password"]
    assert isinstance(pw, Secret) and len(pw.reveal()) == 32 and pw.reveal().isalnum()
    assert len(first["harbor-secret-key"]["stringData"]["secretKey"].reveal()) == 16
    live = {
        ("forgejo", "forgejo-admin"): {
            "data": {"password": base64.b64encode(b"kept-value-1234567890").decode()}
        }
    }
    again = {m["metadata"]["name"]: m for m in generated.manifests(rels, live)}
    assert again["forgejo-admin"]["stringData"]["password"].reveal() == "kept-value-1234567890"
    # another run without a live Secret makes another value (never the same by chance)
    other = {m["metadata"]["name"]: m for m in generated.manifests(rels, {})}
    assert (
        other["grafana-admin"]["stringData"]["admin-password"]
        != first["grafana-admin"]["stringData"]["admin-password"]
    )


def test_every_object_beside_a_release_names_its_release_key(example):
    cfg = config.load(example)
    grp = objects.groups(cfg, config.releases(cfg))
    for name, g in grp.items():
        if name == objects.DORA:  # beside no release key: pruned as a whole
            assert g.known is None
            continue
        assert g.known == frozenset(config.releases(cfg))
        for m in g.manifests:
            if m["kind"] == "Namespace":
                assert objects.RELEASE_LABEL not in (m["metadata"].get("labels") or {})
            else:
                assert objects.release_of(m) in cfg.platform.releases, m["metadata"]
    by_name = {m["metadata"]["name"]: m for m in grp["secrets"].manifests}
    assert objects.release_of(by_name["minio-backup-user"]) == "minio"
    assert objects.release_of(by_name["forgejo-admin"]) == "forgejo"  # generated
