"""The services pillar: field rules (six-field cron, quantities) and cross checks, each
problem with its pillar path and the fix; nothing is changed when one is found."""

from __future__ import annotations

import pytest

from palplat import config
from palplat.errors import PillarError
from palplat.services import resolve
from palplat.services.pillar import cron6


def problems(p: dict) -> dict[str, str]:
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": p})
    assert "nothing was changed" in str(exc.value)
    return {pr.path: pr.message for pr in exc.value.problems}


@pytest.mark.parametrize(
    "cron",
    ["0 0 3 * * *", "*/30 * * * * *", "0 15,45 1-5 ? JAN-DEC MON-FRI", "0 0 0 1 * ?"],
)
def test_six_field_cron_accepted(cron):
    assert cron6(cron) == cron


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 3 * * *", "six-field cron (5 fields)"),
        ("@daily", "six-field cron (1 fields)"),
        ("0 0 25 * * *", "hours field has '25'"),
        ("0 0 3 * * 8", "day-of-week field has '8'"),
        ("0 0 3 ? * *", None),
        ("0 0 3 * ? *", "month field has '?'"),
        ("0 5-1 * * * *", "runs backwards"),
        ("0 */0 * * * *", "step '0'"),
    ],
)
def test_six_field_cron_refused(cron, why):
    if why is None:
        assert cron6(cron) == cron
        return
    with pytest.raises(ValueError) as exc:
        cron6(cron)
    assert why in str(exc.value)
    assert "'0 0 3 * * *'" in str(exc.value)  # the fix: an example


def test_example_resolves(example, load):
    plan = resolve.resolve(load(example))
    assert sorted(plan.specs) == [
        "basketball-api",
        "gcal-scheduler",
        "pal-e-app",
        "pal-e-docs",
        "platform-validation",
        "westsidekingsandqueens",
    ]
    docs = plan.specs["pal-e-docs"]
    assert docs.image == "harbor.tail0000.ts.net/pal-e-docs/pal-e-docs"
    assert docs.overlay == "overlays/pal-e-docs"
    assert docs.public_host == "pal-e-docs.tail0000.ts.net"
    assert docs.quota["requests.storage"] == "50Gi"
    assert plan.ns == {
        "tailscale": "tailscale",
        "monitoring": "monitoring",
        "cnpg": "cnpg-system",
        "argocd": "argocd",
        "object_store": "minio",
    }
    assert plan.specs["platform-validation"].public_host is None


def test_defaults_are_overridable_per_service(example, load):
    svc = example["services"]["pal-e-app"]
    svc.update(quota={"pods": "5"}, limits={"default": {"cpu": "1"}}, overlay="apps/{service}/prod")
    spec = resolve.resolve(load(example)).specs["pal-e-app"]
    assert spec.quota["pods"] == "5" and spec.quota["limits.memory"] == "8Gi"
    assert spec.limits.default == {"cpu": "1"}
    assert spec.overlay == "apps/pal-e-app/prod"


def test_funnel_database_backup_need_their_releases(example):
    rel = example["platform"]["releases"]
    rel["tailscale-operator"]["enabled"] = False
    del rel["cnpg"]
    for r in rel.values():
        r["needs"] = [n for n in r.get("needs", []) if n != "cnpg"]
    got = problems(example)
    funnel = got["palplat:services:pal-e-docs:funnel"]
    assert "Tailscale operator" in funnel
    assert "palplat:platform:releases:tailscale-operator" in funnel
    assert "CloudNativePG" in got["palplat:services:gcal-scheduler:database"]
    assert "remove database" in got["palplat:services:gcal-scheduler:database"]


def test_backup_needs_an_object_store_and_its_credentials(example):
    del example["services"]["defaults"]["object_store"]
    got = problems(example)
    assert "needs an object store" in got["palplat:services:pal-e-docs:database:backup"]
    assert (
        "palplat:services:defaults:object_store"
        in got["palplat:services:pal-e-docs:database:backup"]
    )


def test_backup_store_release_and_keys(example):
    store = example["services"]["defaults"]["object_store"]
    store["release"] = "minio-nope"
    del store["secret_key"]
    got = problems(example)
    assert "minio-nope" in got["palplat:services:defaults:object_store:release"]
    assert "GPG-encrypted" in got["palplat:services:defaults:object_store:secret_key"]


def test_backup_schedule_must_be_six_fields(example):
    example["services"]["pal-e-docs"]["database"]["backup"]["schedule"] = "0 3 * * *"
    got = problems(example)
    msg = got["palplat:services:pal-e-docs:database:backup:schedule"]
    assert "six-field cron" in msg and "seconds first" in msg


def test_credentials_palplat_makes_need_not_be_in_the_pillar(example, load):
    """The example has no Harbor password, Woodpecker token or Argo CD credential: Harbor's
    admin password is generated for its release, Argo CD's token is made in Forgejo, and
    Woodpecker's token waits for the operator (not a pillar problem)."""
    d = example["services"]["defaults"]
    assert "password" not in d["harbor"] and "token" not in d["woodpecker"]
    assert "deployments_credentials" not in d
    load(example)


def test_missing_api_credentials(example):
    d = example["services"]["defaults"]
    harbor = example["platform"]["releases"]["harbor"]
    harbor["values"].pop("existingSecretAdminPassword")  # nothing generates it any more
    del d["forge"]  # no token from Forgejo: a credential is needed
    d["deployments_credentials"] = {"username": "argocd"}
    got = problems(example)
    assert "GPG-encrypted" in got["palplat:services:defaults:harbor:password"]
    assert "basketball-api" in got["palplat:services:defaults:harbor:password"]
    assert "generate it" in got["palplat:services:defaults:harbor:password"]
    assert (
        "make a token in Forgejo"
        in got["palplat:services:defaults:deployments_credentials:password"]
    )


def test_forge_needs_its_release_an_admin_and_woodpecker_reading_the_client(example):
    rels = example["platform"]["releases"]
    rels["woodpecker"]["values"]["server"]["extraSecretNamesForEnvFrom"] = ["woodpecker-secret"]
    del rels["forgejo"]["values"]["gitea"]["admin"]["existingSecret"]
    got = problems(example)
    path = "palplat:platform:releases:woodpecker:values:server:extraSecretNamesForEnvFrom"
    assert "must list palplat-forgejo-oauth" in got[path]
    assert "names no admin password" in got["palplat:services:defaults:forge"]
    rels["forgejo"]["enabled"] = False
    assert "not an enabled" in problems(example)["palplat:services:defaults:forge"]


def test_forge_as_a_string_is_its_url(example, load):
    example["services"]["defaults"]["forge"] = "https://forgejo.tail0000.ts.net"
    cfg = load(example)
    assert cfg.services.defaults.forge.url == "https://forgejo.tail0000.ts.net"


def test_woodpecker_not_needed_without_ci(example, load):
    del example["services"]["defaults"]["woodpecker"]
    got = problems(example)
    assert "set ci: false" in got["palplat:services:defaults:woodpecker"]
    for name, svc in example["services"].items():
        if name != "defaults":
            svc["ci"] = False
    load(example)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a" * 41, "at most 40 characters"),
        ("pal--e", "consecutive separators"),
        ("kube-thing", "reserved by Kubernetes"),
        ("default", "reserved by Kubernetes"),
        ("library", "Harbor's default project"),
        ("Bad_Name", "DNS-1123 label"),
    ],
)
def test_invalid_service_names(example, name, why):
    example["services"][name] = {"repo": "a/b", "port": 80}
    got = problems(example)
    assert why in got[f"palplat:services:{name}"]


def test_service_in_a_platform_namespace(example):
    example["services"]["pal-e-app"]["namespace"] = "monitoring"
    got = problems(example)
    assert "belongs to the platform release" in got["palplat:services:pal-e-app:namespace"]


def test_entry_level_mistakes(example):
    svc = example["services"]["pal-e-app"]
    svc["delete_data"] = True
    svc["alerts"] = [
        {"name": "ServiceTargetDown", "expr": "up == 0"},
        {"name": "Mine", "expr": "x"},
        {"name": "Mine", "expr": "y"},
    ]
    svc["network"] = {"egress": [{"cidr": "10.0.0.0/8", "namespace": "x"}, {"ports": [5432]}]}
    got = problems(example)
    assert "set absent: true" in got["palplat:services:pal-e-app:delete_data"]
    assert "default alerts" in got["palplat:services:pal-e-app:alerts:0:name"]
    assert "duplicates alerts:1" in got["palplat:services:pal-e-app:alerts:2:name"]
    assert "either pods" in got["palplat:services:pal-e-app:network:egress:0"]
    assert "selects nothing" in got["palplat:services:pal-e-app:network:egress:1"]


def test_funnel_needs_the_tailnet_domain(example):
    del example["services"]["defaults"]["tailnet_domain"]
    got = problems(example)
    msg = got["palplat:services:defaults:tailnet_domain"]
    assert "basketball-api" in msg and "tail0000.ts.net" in msg


def test_absent_entries_need_no_releases(example, load):
    del example["platform"]["releases"]["tailscale-operator"]
    example["services"]["pal-e-app"]["absent"] = True
    got = problems(example)
    assert "palplat:services:pal-e-app:funnel" not in got
    assert "palplat:services:pal-e-docs:funnel" in got


def test_disabled_entries_are_not_checked(example, load):
    example["services"]["old"] = {"repo": "a/b", "port": 1, "funnel": True, "enabled": False}
    del example["services"]["defaults"]["tailnet_domain"]
    for name, svc in example["services"].items():
        if name not in ("defaults", "old"):
            svc["funnel"] = False
    plan = resolve.resolve(load(example))
    assert plan.disabled == ("old",) and "old" not in plan.specs


def test_secrets_are_masked_in_problems(example):
    example["services"]["pal-e-app"]["secrets"] = {"bad-key": "s3cr3t-value-1234"}
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": example})
    assert "s3cr3t-value-1234" not in str(exc.value)


def test_forge_api_over_http_needs_allow_http(example, load):
    """Forgejo's admin password goes to api_url: plain http only when allowed."""
    forge = example["services"]["defaults"]["forge"]
    forge["api_url"] = "http://10.43.0.12:3000"
    got = problems(example)
    assert "Forgejo's admin password" in got["palplat:services:defaults:forge:api_url"]
    forge["allow_http"] = True
    load(example)
