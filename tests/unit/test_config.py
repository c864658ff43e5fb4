"""The palplat pillar model: the example is valid; bad input gets path-precise errors."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from palplat import config, redact
from palplat.errors import PillarError
from palplat.schema import pillar_schema
from tests.support import example as example_pillar

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "examples" / "seed-platform.sls"


def merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def example():
    return example_pillar.filled()


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


@pytest.fixture
def seed_values_are_not_secrets():
    """The seed holds sample values in secret fields ("telegram", "SECRET"): validating it
    registers them for masking, which would mask those words in every later test of the
    process (the registry is process-wide, as on a minion)."""
    saved = redact.snapshot()
    yield
    redact.restore(saved)


@pytest.mark.skipif(not SEED.exists(), reason="shared/examples/seed-platform.sls not present")
@pytest.mark.usefixtures("seed_values_are_not_secrets")
def test_example_is_equivalent_to_the_seed_platform():
    example = example_pillar.raw()  # as committed: secrets are CHANGE-ME placeholders
    seed = yaml.safe_load(SEED.read_text())
    seed_leaves = dict(_leaves(seed))
    # palplat's own additions to the seed's shape, documented in the example
    ollama = ("palplat", "platform", "releases", "ollama", "values")
    additions = {
        ("palplat", "platform", "helm", "version"),
        # Kubernetes Secrets (palplat writes decrypted values there) encrypted at rest
        ("palplat", "k3s", "config", "secrets-encryption"),
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
        (*kps, val, "prometheus-node-exporter"),  # palplat's DORA textfile (docs/dora.md)
        (*kps, sec, "grafana"),
        (*kps, val, *receiver, "bot_token_file"),  # the token: a Secret palplat makes
        (*kps, val, "alertmanager", "alertmanagerSpec"),  # mounts it
        (*kps, "secrets"),
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
    # the Secrets palplat makes for the charts (admin passwords: `generated`)
    wiring += [(*rel, r, "generated") for r in ("kube-prometheus-stack", "forgejo", "harbor")]
    additions |= {k for k, _ in _leaves(example) if any(k[: len(w)] == w for w in wiring)}
    # the seed's receiver in secret_values (for its bot_token) is a mounted Secret here
    seed_rcv = (*kps, sec, "alertmanager", "config", "receivers", 0)
    assert seed_leaves.pop((*seed_rcv, "name")) == "telegram"
    assert seed_leaves.pop((*seed_rcv, "telegram_configs", 0, "bot_token")) == "SECRET"
    assert (*kps, "secrets", "alertmanager-telegram", "bot_token") in dict(_leaves(example))
    # safe defaults in place of the seed's (docs/firewall.md, "The example's firewall"):
    # only tailscale0 trusted, the k3s ports from the cluster's nodes and pods (the
    # profile), the admin kubeconfig 0600
    fw, k3s_conf = ("palplat", "firewall"), ("palplat", "k3s", "config")
    safer = [(*fw, "trusted_interfaces"), (*fw, "allow"), (*fw, "cluster_nodes"),
             (*k3s_conf, "write-kubeconfig-mode")]  # fmt: skip
    additions |= {k for k, _ in _leaves(example) if any(k[: len(w)] == w for w in safer)}
    for k in [k for k in seed_leaves if any(k[: len(w)] == w for w in safer)]:
        del seed_leaves[k]
    # ollama 0.63.0 takes its models as a list (the seed has the 1.x chart's models.pull)
    models = (*rel, "ollama", val, "ollama", "models")
    seed_leaves[(*models, 0)] = seed_leaves.pop((*models, "pull", 0))
    # the NFS client's name per OS family (the seed's nfs-utils is RedHat's and Arch's)
    pkgs = ("palplat", "host", "packages")
    seed_leaves[(*pkgs, 4, "RedHat")] = seed_leaves.pop((*pkgs, 4))
    # services:defaults:forge is a mapping (url: the seed's string, and what palplat makes)
    seed_leaves[(*svc, "forge", "url")] = seed_leaves.pop((*svc, "forge"))
    # what palplat makes on the first run instead of the operator (docs: the first run):
    # Woodpecker's Forgejo OAuth secret, Harbor's admin password and key (generated)
    for made in (
        (*rel, "woodpecker", sec, "server", "env", "WOODPECKER_FORGEJO_SECRET"),
        (*rel, "harbor", sec, "harborAdminPassword"),
        (*rel, "harbor", sec, "secretKey"),
    ):
        assert seed_leaves.pop(made) == "SECRET"
    additions -= seed_leaves.keys()
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
    token = example_pillar.test_value("CHANGE-ME-k3s-token")
    grafana = example_pillar.test_value("CHANGE-ME-grafana-admin")
    cfg = config.load(example)
    dumped = json.dumps(cfg.model_dump(mode="json", by_alias=True))
    assert token not in dumped and grafana not in dumped
    assert token in redact.registered()
    assert cfg.k3s.token.reveal() == token
    assert repr(cfg.k3s.token) == "<hidden>"
    assert redact.mask({"x": f"token={token};"}) == {"x": "token=<hidden>;"}
    tree = cfg.platform.releases["kube-prometheus-stack"].secret_values
    assert grafana not in repr(tree)


def test_the_committed_example_fails_until_its_placeholders_are_replaced():
    found, text = problems(example_pillar.raw())
    assert found and all("placeholder" in p.message for p in found.values()), text
    assert "palplat:k3s:token" in found
    assert "palplat:platform:releases:minio:secret_values:rootPassword" in found
    assert "CHANGE-ME-" not in text  # never the value, even of a placeholder


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


def test_quickstart_pillar_is_valid_once_its_placeholders_are_replaced():
    """pillar/palplat/quickstart.sls (docs/quickstart.md): as shipped, each CHANGE
    placeholder is a problem at its own pillar path (nothing runs with one left in);
    replaced, with the token from secrets.sls, it is valid. The booted Debian machine
    applies it (tests/functional/test_machine.py)."""
    text = (REPO / "pillar/palplat/quickstart.sls").read_text()
    with pytest.raises(PillarError) as exc:
        config.load(yaml.safe_load(text))
    paths = {p.path for p in exc.value.problems}
    assert paths == {
        "palplat:host:users:CHANGE-operator",
        "palplat:host:users:CHANGE-operator:ssh_keys:0",
        "palplat:firewall:management:allow_from:0",
        "palplat:firewall:allow:0:from:0",
    }, paths
    key = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd me@laptop"
    )
    text = text.replace("CHANGE-operator", "me").replace("CHANGE-ssh-ed25519-public-key", key)
    text = text.replace("CHANGE-your-network/24", "192.168.1.0/24")
    pillar = yaml.safe_load(text)
    pillar["palplat"]["k3s"]["token"] = "K10-quickstart-token"
    cfg = config.load(pillar)
    assert cfg.k3s.role == "server" and cfg.platform.helm.version == "v3.22.0"
