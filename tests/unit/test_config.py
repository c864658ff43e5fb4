"""The palplat pillar model: the example is valid; bad input gets path-precise errors."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from palplat import config, redact
from palplat.errors import PillarError
from palplat.schema import pillar_schema

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "examples" / "seed-platform.sls"


def merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def example():
    base = yaml.safe_load((REPO / "pillar/palplat/init.sls").read_text())
    secrets = yaml.safe_load((REPO / "pillar/palplat/secrets.sls").read_text())
    return merge(base, secrets)


def problems(pillar):
    with pytest.raises(PillarError) as exc:
        config.load(pillar)
    return {p.path: p for p in exc.value.problems}, str(exc.value)


def test_example_pillar_is_valid(example):
    cfg = config.load(example)
    assert len(cfg.platform.releases) == 14
    assert [n for n, _ in cfg.services.items()] == sorted(
        [
            "pal-e-docs",
            "basketball-api",
            "pal-e-app",
            "westsidekingsandqueens",
            "platform-validation",
            "gcal-scheduler",
        ]
    )
    waves = config.release_order(config.releases(cfg))
    flat = [n for w in waves for n in w]
    assert flat.index("minio") < flat.index("loki") < flat.index("promtail")
    assert flat.index("nvidia-device-plugin") < flat.index("ollama")


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _leaves(v, path + (i,))
    else:
        yield path, tree


@pytest.mark.skipif(not SEED.exists(), reason="shared/examples/seed-platform.sls not present")
def test_example_is_equivalent_to_the_seed_platform(example):
    seed = yaml.safe_load(SEED.read_text())
    seed_leaves = dict(_leaves(seed))
    # palplat's own additions to the seed's shape, documented in the example
    ollama = ("palplat", "platform", "releases", "ollama", "values")
    additions = {
        ("palplat", "platform", "helm", "version"),
        # GPU workloads get the nvidia runtime class and the GPU node label (docs/gpu.md)
        (*ollama, "runtimeClassName"),
        (*ollama, "nodeSelector", "nvidia.com/gpu.present"),
    }
    # service onboarding needs the APIs and settings the seed leaves implicit (docs/services.md)
    svc = ("palplat", "services", "defaults")
    additions |= {k for k, _ in _leaves(example) if k[:3] == svc and k[3] not in seed_leaves}
    # the host stage's accounts, sshd, journald and Tailscale settings (docs/host.md)
    additions |= {k for k, _ in _leaves(example) if k[:2] == ("palplat", "host")}
    additions -= {k for k in additions if k in seed_leaves}
    # the platform's wiring, each subtree named (docs/platform.md, "Differences from the
    # seed"): what the seed's releases need to render, install and reach each other
    rel = ("palplat", "platform", "releases")
    val, sec = "values", "secret_values"
    kps, loki = (*rel, "kube-prometheus-stack"), (*rel, "loki")
    spec = (*kps, val, "prometheus", "prometheusSpec")
    selectors = ("serviceMonitor", "podMonitor", "rule", "probe")
    receiver = ("alertmanager", "config", "receivers", 0, "telegram_configs", 0)
    wiring = [
        *[(*rel, "minio", val, k) for k in ("buckets", "resources", "environment", "policies")],
        (*rel, "minio", val, "users"),  # the backups' own user, not the chart's default
        (*rel, "minio", "secrets"),  # its secret key, read by the chart (existingSecret)
        *[(*spec, f"{k}SelectorNilUsesHelmValues") for k in selectors],
        (*kps, val, "grafana"),
        (*kps, sec, "grafana"),
        (*kps, sec, *receiver, "chat_id"),  # helm replaces lists: the receiver repeats it
        *[(*loki, val, "loki", k) for k in ("auth_enabled", "commonConfig", "compactor")],
        *[(*loki, val, "loki", k) for k in ("schemaConfig", "storage", "configStorageType")],
        *[(*loki, val, k) for k in ("deploymentMode", "singleBinary", "read", "write", "backend")],
        *[(*loki, val, k) for k in ("chunksCache", "resultsCache")],
        (*loki, sec),
        *[(*rel, r, "database") for r in ("forgejo", "woodpecker", "keycloak")],
        *[(*rel, r, "expose") for r in ("minio", "kube-prometheus-stack", "forgejo", "woodpecker")],
        *[(*rel, r, "expose") for r in ("harbor", "keycloak")],
        *[(*rel, r, val) for r in ("forgejo", "woodpecker", "harbor", "keycloak", "argocd")],
        (*rel, "argocd-image-updater", val),
        *[(*rel, r, sec) for r in ("forgejo", "argocd")],
        (*rel, "woodpecker", sec, "server", "env", "WOODPECKER_FORGEJO_CLIENT"),
        (*rel, "woodpecker", sec, "agent"),
    ]  # fmt: skip
    additions |= {k for k, _ in _leaves(example) if any(k[: len(w)] == w for w in wiring)}
    # ollama 0.63.0 takes its models as a list (the seed has the 1.x chart's models.pull)
    models = (*rel, "ollama", val, "ollama", "models")
    seed_leaves[(*models, 0)] = seed_leaves.pop((*models, "pull", 0))
    ours = {k: v for k, v in _leaves(example) if k not in additions}
    assert seed_leaves.keys() == ours.keys()
    for path, value in seed_leaves.items():
        if value == "SECRET":
            assert str(ours[path]).startswith("CHANGE-ME"), path
        else:
            assert ours[path] == value, path
    # the seed lacks only what onboarding needs beyond it (Harbor and Woodpecker access, the
    # tailnet domain, the backup object store): nothing else of it is a problem
    with pytest.raises(PillarError) as exc:
        config.load(seed)
    assert {p.path.rsplit(":", 1)[0] for p in exc.value.problems} <= {
        "palplat:services:defaults",
        "palplat:services:pal-e-docs:database",
    }, str(exc.value)


def test_secrets_are_masked_everywhere(example):
    cfg = config.load(example)
    dumped = json.dumps(cfg.model_dump(mode="json", by_alias=True))
    assert "CHANGE-ME" not in dumped
    assert "CHANGE-ME-k3s-token" in redact.registered()
    assert cfg.k3s.token.reveal() == "CHANGE-ME-k3s-token"
    assert repr(cfg.k3s.token) == "<hidden>"
    assert redact.mask({"x": "token=CHANGE-ME-k3s-token;"}) == {"x": "token=<hidden>;"}
    tree = cfg.platform.releases["kube-prometheus-stack"].secret_values
    assert "CHANGE-ME" not in repr(tree)


@pytest.mark.parametrize(
    "mutate, path, words",
    [
        (
            lambda p: p["services"]["pal-e-docs"].update(port="8000"),
            "palplat:services:pal-e-docs:port",
            "wrong type",
        ),
        (
            lambda p: p["services"]["pal-e-docs"].update(port=70000),
            "palplat:services:pal-e-docs:port",
            "65535",
        ),
        (
            lambda p: p["services"]["pal-e-docs"].update(prot=1),
            "palplat:services:pal-e-docs:prot",
            "did you mean 'port'",
        ),
        (lambda p: p["firewall"].update(alow=[]), "palplat:firewall:alow", "did you mean 'allow'"),
        (lambda p: p.update(k3ss={}), "palplat:k3ss", "did you mean 'k3s'"),
        (
            lambda p: p["services"].update(Bad_Name={"repo": "a/b", "port": 1}),
            "palplat:services:Bad_Name",
            "DNS-1123",
        ),
        (
            lambda p: p["platform"]["releases"]["loki"].update(namespace="Monitoring!"),
            "palplat:platform:releases:loki:namespace",
            "DNS-1123",
        ),
        (
            lambda p: p["platform"]["releases"]["loki"].update(needs=["promtail"]),
            "palplat:platform:releases",
            "cycle: loki -> promtail -> loki",
        ),
        (
            lambda p: p["platform"]["releases"]["cnpg"].update(needs=["minoi"]),
            "palplat:platform:releases:cnpg:needs:0",
            "did you mean 'minio'",
        ),
        (
            lambda p: p["firewall"]["allow"][0].update(ports=[0]),
            "palplat:firewall:allow:0:ports:0",
            "between 1 and 65535",
        ),
        (
            lambda p: p["firewall"]["allow"][0].update(proto="icmpx"),
            "palplat:firewall:allow:0:proto",
            "'tcp' or 'udp'",
        ),
        (
            lambda p: p["firewall"]["management"].update(allow_from=["10.0.0.300/8"]),
            "palplat:firewall:management:allow_from:0",
            "CIDR",
        ),
        (
            lambda p: p["k3s"].update(token="-----BEGIN PGP MESSAGE-----\n\nhQEMA\n"),
            "palplat:k3s:token",
            "could not decrypt",
        ),
        (
            lambda p: p["services"].update(
                **{"pal-e-docs2": dict(p["services"]["pal-e-docs"], namespace="pal-e-docs")}
            ),
            "palplat:services:pal-e-docs2",
            "duplicate service",
        ),
        (
            lambda p: p["platform"]["releases"]["forgejo"]["chart"].pop("version"),
            "palplat:platform:releases:forgejo:chart:version",
            "pin a version",
        ),
        (lambda p: p["k3s"].update(version="1.33"), "palplat:k3s:version", "pattern"),
        (
            lambda p: p["k3s"]["config"].update({"flanel-backend": "vxlan"}),
            "palplat:k3s:config:flanel-backend",
            "did you mean 'flannel-backend'",
        ),
    ],
)
def test_bad_input_names_the_path(example, mutate, path, words):
    pillar = copy.deepcopy(example)
    mutate(pillar["palplat"])
    found, text = problems(pillar)
    assert path in found, text
    assert words in str(found[path]), text
    assert "CHANGE-ME" not in text


def test_all_problems_are_reported_at_once(example):
    pillar = copy.deepcopy(example)
    pillar["palplat"]["services"]["pal-e-docs"]["port"] = 0
    pillar["palplat"]["firewall"]["default_policy"] = "reject-all"
    pillar["palplat"]["host"]["packges"] = []
    found, text = problems(pillar)
    assert len(found) == 3, text
    assert text.startswith("the palplat pillar has 3 problems; nothing was changed")


def test_newer_k3s_flags_can_be_declared(example):
    pillar = copy.deepcopy(example)
    pillar["palplat"]["k3s"]["config"]["some-future-flag"] = True
    found, _ = problems(pillar)
    assert "palplat:k3s:config:some-future-flag" in found
    assert "extra_flags" in found["palplat:k3s:config:some-future-flag"].message
    pillar["palplat"]["k3s"]["extra_flags"] = ["some-future-flag"]
    config.load(pillar)


def test_not_a_mapping():
    found, _ = problems({"palplat": ["a"]})
    assert "palplat" in found


def test_committed_schema_is_current():
    committed = json.loads((REPO / "schema/palplat.schema.json").read_text())
    assert committed == json.loads(json.dumps(pillar_schema())), "run make schema"
    props = committed["properties"]["palplat"]["properties"]
    assert {"host", "firewall", "k3s", "gpu", "platform", "services"} <= set(props)
