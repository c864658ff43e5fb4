"""What palplat makes in Forgejo for the apps around it (palplat.platform.forge), against
the real kube-apiserver and the Forgejo contract fake (every request and answer checked
against Forgejo's own API document).

The admin palplat signs in as is the one it generated for the forge release (a Secret in
the cluster the chart reads: gitea.admin.existingSecret); the fake reads its password
from that same Secret, as the real Forgejo gets it from the chart.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from palplat import config, kube, redact
from palplat.errors import PalplatError
from palplat.platform import forge, generated
from palplat.services import credentials
from tests.support.fakes import contract
from tests.support.fakes.forgejo import FORGEJO_DOC, ForgejoFake

pytestmark = [
    pytest.mark.controlplane,
    pytest.mark.skipif(not FORGEJO_DOC.exists(), reason=f"{FORGEJO_DOC} is absent"),
    pytest.mark.skipif(not contract.available()[0], reason=contract.available()[1]),
]


@pytest.fixture
def k(kubeconfig):
    client = kube.Kube(kubeconfig)
    yield client
    client.close()


def _decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


@pytest.fixture
def env(k, kubeconfig):
    """Namespaces for Forgejo and Woodpecker, the pillar, the generated admin Secret, the
    fake (its admin password read from that Secret)."""
    tag = uuid.uuid4().hex[:6]
    fns, wns = f"forgejo-{tag}", f"woodpecker-{tag}"

    def admin_password() -> str:
        live = k.get("v1", "Secret", "forgejo-admin", fns)
        return _decoded(live or {}).get("password", "")

    fake = ForgejoFake(username="forgejo-admin", password=admin_password).start()
    pillar = {
        "palplat": {
            "gpu": {"enabled": False},
            "k3s": {"kubeconfig": kubeconfig},
            "platform": {
                "releases": {
                    "forgejo": {
                        "namespace": fns,
                        "chart": {"path": "/nonexistent/forgejo"},
                        "generated": {
                            "forgejo-admin": {
                                "username": "forgejo-admin",
                                "password": {"random": 32},
                            }
                        },
                        "values": {"gitea": {"admin": {"existingSecret": "forgejo-admin"}}},
                    },
                    "woodpecker": {
                        "namespace": wns,
                        "needs": ["forgejo"],
                        "chart": {"path": "/nonexistent/woodpecker"},
                        "values": {
                            "server": {
                                "extraSecretNamesForEnvFrom": [
                                    "woodpecker-secret",
                                    forge.OAUTH_SECRET,
                                ]
                            }
                        },
                    },
                }
            },
            "services": {
                "defaults": {
                    "forge": {
                        "url": "https://forgejo.tail0000.ts.net",
                        "api_url": fake.url,
                        "allow_http": True,  # the fake on loopback
                    },
                    "woodpecker": {"url": "https://woodpecker.tail0000.ts.net"},
                    "deployments_repo": "https://forgejo.tail0000.ts.net/pal-e/deploy.git",
                }
            },
        }
    }
    cfg = config.load(pillar)
    # the platform stage's secrets group: the admin Secret the chart (and palplat) reads
    made = generated.manifests(config.releases(cfg), generated.live_secrets(k))
    kube.converge(k, made, owner=generated.OWNER, dry_run=False)
    try:
        yield {"cfg": cfg, "pillar": pillar, "fake": fake, "fns": fns, "wns": wns}
    finally:
        fake.stop()
        assert fake.violations == [], fake.violations
        for ns in (fns, wns):
            k.delete("v1", "Namespace", ns)


def test_first_run_makes_the_oauth_client_and_the_token_then_nothing(k, env):
    cfg, fake = env["cfg"], env["fake"]
    planned = forge.plan(cfg, k)
    assert set(planned) == {
        f"Forgejo OAuth2 application {forge.APP_NAME}",
        f"Secret/{env['wns']}/{forge.OAUTH_SECRET}",
        f"Forgejo access token {forge.TOKEN_NAME}",
        f"Secret/{env['fns']}/{forge.TOKEN_SECRET}",
    }
    assert fake.log == []  # a plan never calls Forgejo
    assert credentials.repo_credentials(cfg, k) is None  # not made yet

    made = forge.converge(cfg, k)
    assert set(made) == set(planned)
    app = fake.app_named(forge.APP_NAME)
    assert app["redirect_uris"] == ["https://woodpecker.tail0000.ts.net/authorize"]
    assert app["confidential_client"] is True
    oauth = _decoded(k.get("v1", "Secret", forge.OAUTH_SECRET, env["wns"]))
    assert oauth == {forge.CLIENT_KEY: app["client_id"], forge.SECRET_KEY: app["client_secret"]}
    tok = fake.tokens[forge.TOKEN_NAME]
    assert tok["scopes"] == ["read:repository"]
    stored = _decoded(k.get("v1", "Secret", forge.TOKEN_SECRET, env["fns"]))
    assert stored == {"username": "forgejo-admin", "token": tok["sha1"]}
    # nothing secret in what the state shows
    shown = json.dumps(made) + str(made)
    for secret in (app["client_secret"], tok["sha1"]):
        assert secret not in shown and secret in redact.registered()
    # the services stage finds Argo CD's credential
    user, token = credentials.repo_credentials(cfg, k)
    assert user == "forgejo-admin" and token.reveal() == tok["sha1"]

    # converged: the plan is empty, and a run costs no request to Forgejo
    fake.reset_log()
    assert forge.plan(cfg, k) == {} and forge.converge(cfg, k) == {}
    assert fake.log == []


def test_a_lost_client_secret_or_a_new_redirect_are_made_again(k, env):
    cfg, fake = env["cfg"], env["fake"]
    forge.converge(cfg, k)
    first = fake.app_named(forge.APP_NAME)
    # the Secret is gone (deleted by hand): Forgejo shows no client secret twice, so a new
    # application replaces the old one
    k.delete("v1", "Secret", forge.OAUTH_SECRET, env["wns"])
    forge.converge(cfg, k)
    second = fake.app_named(forge.APP_NAME)
    assert second["id"] != first["id"] and len(fake.apps) == 1
    assert (
        _decoded(k.get("v1", "Secret", forge.OAUTH_SECRET, env["wns"]))[forge.SECRET_KEY]
        == second["client_secret"]
    )
    # Woodpecker moved: the application is updated (and its new secret stored)
    pillar = env["pillar"]
    pillar["palplat"]["services"]["defaults"]["woodpecker"]["url"] = "https://ci.tail0000.ts.net"
    cfg2 = config.load(pillar)
    planned = forge.plan(cfg2, k)
    assert planned == {
        f"Forgejo OAuth2 application {forge.APP_NAME}": {
            "old": "redirect https://woodpecker.tail0000.ts.net/authorize",
            "new": "redirect https://ci.tail0000.ts.net/authorize",
        }
    }
    forge.converge(cfg2, k)
    third = fake.app_named(forge.APP_NAME)
    assert third["id"] == second["id"]
    assert third["redirect_uris"] == ["https://ci.tail0000.ts.net/authorize"]
    assert (
        _decoded(k.get("v1", "Secret", forge.OAUTH_SECRET, env["wns"]))[forge.SECRET_KEY]
        == third["client_secret"]
    )
    assert forge.plan(cfg2, k) == {}


def test_forgejo_down_or_refusing_says_what_to_do(k, env):
    cfg, fake = env["cfg"], env["fake"]
    fake.fail("POST", r"/user/applications/oauth2$", 403, times=1)
    with pytest.raises(PalplatError) as exc:
        forge.converge(cfg, k)
    assert "Forgejo" in str(exc.value) and "403" in str(exc.value)
    assert "re-run" in str(exc.value)
    with fake.down(), pytest.raises(PalplatError) as exc:
        forge.converge(cfg, k)
    assert "cannot reach Forgejo" in str(exc.value)
    # and then it goes through
    assert forge.converge(cfg, k)
    assert forge.plan(cfg, k) == {}
