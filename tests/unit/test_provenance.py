"""Where a pillar value came from decides whether it is a secret (palplat.provenance):
a decrypted value is masked wherever it lands and refused outside secret fields; plain
text and placeholders in secret fields are refused; a pull request's plan never holds a
secret value. Redaction covers the forms a secret takes on the way (base64, basic auth,
cut error text, tracebacks)."""

from __future__ import annotations

import base64
import copy
import io
import logging
import uuid

import pytest

from palplat import config, gpgtool, provenance, redact
from palplat.errors import PillarError
from palplat.provenance import DECRYPTED, REF, SEALED
from tests.support import example as example_pillar
from tests.support.saltenv import make_gpg_home


def new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def problems(pillar, **kw):
    with pytest.raises(PillarError) as exc:
        config.load(pillar, **kw)
    return {p.path: p for p in exc.value.problems}, str(exc.value)


def wrapped(value):
    return {DECRYPTED: value}


def test_a_decrypted_value_in_a_plain_field_is_refused_and_never_shown():
    """A ciphertext moved into a field that is not secret (firewall:table) is decrypted by
    the renderer (the moved value must still never show), and refused."""
    value = new("harbor-admin")
    found, text = problems({"palplat": {"firewall": {"table": wrapped(value)}}})
    assert "palplat:firewall:table" in found, text
    assert "not secret" in found["palplat:firewall:table"].message
    assert value not in text and value in redact.registered()


@pytest.mark.parametrize(
    "place",
    [
        ("services", "defaults", "harbor", "url"),  # a plain str field
        ("platform", "releases", "web", "values", "image", "tag"),  # inside chart values
        ("k3s", "config", "node-label"),  # a non-credential k3s key
        ("host", "timezone"),
    ],
)
def test_every_plain_place_refuses_a_decrypted_value(place):
    value = new("moved")
    pillar = {
        "platform": {"releases": {"web": {"namespace": "web", "chart": {"path": "/charts/web"}}}},
        "services": {"defaults": {"harbor": {"url": "https://harbor.example"}}},
    }
    node = pillar
    for part in place[:-1]:
        node = node.setdefault(part, {})
    node[place[-1]] = wrapped(value)
    found, text = problems({"palplat": pillar})
    assert ":".join(("palplat", *place)) in found, text
    assert value not in text


def test_plain_text_in_secret_fields_is_refused_unless_allowed():
    pillar = {"palplat": {"k3s": {"token": "plain-token-abcdef"}}}
    found, text = problems(pillar, plaintext_secrets=False)
    assert "palplat:k3s:token" in found and "plain text" in text
    assert "plain-token-abcdef" not in text
    config.load(pillar, plaintext_secrets=True)  # the tests' and sandbox's opt-out
    cfg = config.load({"palplat": {"k3s": {"token": wrapped("decrypted-token-1")}}},
                      plaintext_secrets=False)  # fmt: skip
    assert cfg.k3s.token.origin == "decrypted"


def test_numbers_in_secret_values_may_stay_in_clear():
    rel = {"namespace": "m", "chart": {"path": "/c"}, "secret_values": {"chat_id": 12345}}
    cfg = config.load({"palplat": {"platform": {"releases": {"m": rel}}}},
                      plaintext_secrets=False)  # fmt: skip
    assert cfg.platform.releases["m"].secret_values["chat_id"].reveal() == 12345


@pytest.mark.parametrize("value", ["CHANGE-ME-grafana", "prom-operator", "Harbor12345"])
def test_placeholders_and_published_defaults_are_refused(value):
    rel = {
        "namespace": "m",
        "chart": {"path": "/c"},
        "secret_values": {"grafana": {"adminPassword": wrapped(value)}},
    }
    found, text = problems({"palplat": {"platform": {"releases": {"m": rel}}}})
    path = "palplat:platform:releases:m:secret_values:grafana:adminPassword"
    assert path in found, text
    assert value not in text


def test_a_placeholder_in_a_plain_field_is_refused():
    found, _ = problems({"palplat": {"services": {"defaults": {"registry": "CHANGE-ME.io"}}}})
    assert "placeholder" in found["palplat:services:defaults:registry"].message


def test_k3s_credential_keys_are_secrets():
    tok = new("agent-token")
    dsn = "postgres://k3s:" + new("pw") + "@db.example:5432/k3s"
    cfg = config.load(
        {"palplat": {"k3s": {"config": {"agent-token": tok, "datastore-endpoint": dsn}}}}
    )
    shown = config.redact.mask(cfg.model_dump(mode="json", by_alias=True))
    assert shown["k3s"]["config"]["agent-token"] == "<hidden>"
    assert shown["k3s"]["config"]["datastore-endpoint"] == "<hidden>"
    plain = config.load({"palplat": {"k3s": {"config": {"datastore-endpoint": "sqlite://"}}}})
    assert plain.k3s.config["datastore-endpoint"] == "sqlite://"
    found, text = problems(
        {"palplat": {"k3s": {"config": {"vpn-auth": "name=tailscale,joinKey=tskey-xyz"}}}},
        plaintext_secrets=False,
    )
    assert "palplat:k3s:config:vpn-auth" in found and "tskey-xyz" not in text


def test_chart_urls_never_carry_credentials():
    rel = {
        "namespace": "m",
        "chart": {"repo": "https://bob:s3cret-pw@charts.example", "name": "m", "version": "1"},
    }
    found, text = problems({"palplat": {"platform": {"releases": {"m": rel}}}})
    assert "palplat:platform:releases:m:chart:repo" in found
    assert "s3cret-pw" not in text and len(found) == 1, text


def test_http_where_credentials_travel_is_refused():
    p = example_pillar.palplat()
    p["services"]["defaults"]["harbor"]["url"] = "http://harbor.example"
    p["platform"]["helm"]["url"] = "http://mirror.example/helm-{version}-linux-{arch}.tar.gz"
    found, text = problems({"palplat": p})
    assert "palplat:services:defaults:harbor:url" in found, text
    assert "palplat:platform:helm:url" in found, text
    p["services"]["defaults"]["harbor"]["allow_http"] = True
    p["platform"]["helm"]["sha256"] = "0" * 64
    config.load({"palplat": p})


def test_field_errors_and_cross_checks_are_reported_together():
    """A typo does not hide a needs cycle (issue 19: every problem at once)."""
    p = example_pillar.palplat()
    p["services"]["pal-e-docs"]["prot"] = 8000
    rels = p["platform"]["releases"]
    rels["loki"]["needs"] = [*rels["loki"].get("needs", []), "promtail"]
    found, text = problems({"palplat": p})
    assert "palplat:services:pal-e-docs:prot" in found, text
    assert "palplat:platform:releases" in found and "cycle" in text, text


def test_a_release_in_error_is_not_also_reported_as_undefined():
    p = example_pillar.palplat()
    p["platform"]["releases"]["minio"]["namespace"] = "Not_A_Label"
    found, text = problems({"palplat": p})
    assert list(found) == ["palplat:platform:releases:minio:namespace"], text


# ------------------------------------------------------------------- pull-request plans


def test_seal_keeps_unchanged_ciphertexts_as_references_and_seals_the_rest():
    ct_a = "-----BEGIN PGP MESSAGE-----\naaa\n-----END PGP MESSAGE-----"
    ct_b = "-----BEGIN PGP MESSAGE-----\nbbb\n-----END PGP MESSAGE-----"
    applied = {"k3s": {"token": ct_a}, "services": {"defaults": {"harbor": {"password": ct_b}}}}
    pr = {
        "k3s": {"token": ct_a},  # unchanged: the applied value, by reference
        "firewall": {"table": ct_b},  # moved: never decrypted
        "services": {"defaults": {"harbor": {"password": ct_a}}},  # another's: sealed
        "host": {"timezone": {DECRYPTED: "forged"}},  # a marker in the PR's text: sealed
    }
    sealed = provenance.seal(pr, applied)
    assert sealed["k3s"]["token"] == {REF: "k3s:token"}
    assert set(sealed["firewall"]["table"]) == {SEALED}
    assert set(sealed["services"]["defaults"]["harbor"]["password"]) == {SEALED}
    assert set(sealed["host"]["timezone"]) == {SEALED}
    assert "PGP" not in repr(sealed)


def test_a_plan_resolves_references_from_the_applied_pillar_only():
    token = new("applied-token")
    own = {"k3s": {"token": wrapped(token)}}
    plan = {"k3s": {"token": {REF: "k3s:token"}}, "firewall": {"table": {SEALED: "abc"}}}
    found, text = problems(
        {"palplat": plan},
        planning=True,
        resolve=lambda path: provenance.lookup(own, path),
        plaintext_secrets=False,
    )
    assert list(found) == ["palplat:firewall:table"], text  # sealed in a plain field
    del plan["firewall"]
    cfg = config.load(
        {"palplat": plan}, planning=True, resolve=lambda path: provenance.lookup(own, path)
    )
    assert cfg.k3s.token.reveal() == token and not cfg.k3s.token.sealed


def test_a_sealed_secret_plans_but_never_applies():
    plan = {"palplat": {"k3s": {"token": {SEALED: "0123abcd"}}}}
    cfg = config.load(copy.deepcopy(plan), planning=True)
    assert cfg.k3s.token.sealed and str(cfg.k3s.token) == "<hidden>"
    found, _ = problems(plan)  # a real run
    assert "palplat:k3s:token" in found


# ----------------------------------------------------------------------------- renderer


def test_the_renderer_decrypts_and_marks_every_ciphertext(tmp_path):
    home, fpr = make_gpg_home(tmp_path / "gpg")
    value = new("renderer")
    ct = gpgtool.encrypt(value, fpr, home)
    out = gpgtool.decrypt_tree({"a": {"b": ct, "c": [ct, "plain"]}}, home)
    assert out == {"a": {"b": wrapped(value), "c": [wrapped(value), "plain"]}}
    _, other_fpr = make_gpg_home(tmp_path / "other", name="another master")
    foreign = gpgtool.encrypt("x" * 10, other_fpr, str(tmp_path / "other"))
    with pytest.raises(gpgtool.DecryptError, match="a:b: cannot decrypt") as exc:
        gpgtool.decrypt_tree({"a": {"b": foreign}}, home)
    assert "PGP" not in str(exc.value)
    assert gpgtool.decrypt_tree({"a": foreign}, home, must_succeed=False) == {"a": foreign}


# ---------------------------------------------------------------------------- redaction


@pytest.mark.parametrize("user", ["u", "ab", "abc", "robot$proj+push", "node"])
def test_base64_forms_are_masked(user):
    pw = new("b64")
    redact.register([pw])
    header = base64.b64encode(f"{user}:{pw}".encode()).decode()
    dockercfg = '{"auths":{"h":{"auth":"' + header + '"}}}'  # stringData (data: hidden)
    for text in (header, base64.b64encode(pw.encode()).decode(), dockercfg):
        masked = redact.mask_text(f"Authorization: Basic {text}")
        assert "<hidden>" in masked
        for form in redact.base64_forms(pw):
            assert form not in masked


def test_error_text_is_masked_before_it_is_cut():
    from palplat.kube import client as kclient
    from palplat.services import http

    secret = new("cut-at-the-edge")
    redact.register([secret])
    text = "x" * 290 + secret
    for short in (http._short(text), kclient._short(text)):
        assert secret[:8] not in short


def test_log_tracebacks_are_masked():
    secret = new("traceback")
    redact.register([secret])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.Logger("palplat.test.tb")  # a plain logger (Salt's class aside)
    logger.addHandler(handler)
    handler.addFilter(redact.RedactingFilter())
    try:
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            logger.error("it broke", exc_info=True)
        logger.warning("here", stack_info=True)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "Traceback" in out and "<hidden>" in out and secret not in out


def _plain_strings(tree, cfg, path=()):
    """Paths of the example's string leaves that are not inside a secret field."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _plain_strings(v, cfg, (*path, str(k)))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _plain_strings(v, cfg, (*path, str(i)))
    elif isinstance(tree, str):
        yield path


def test_every_plain_string_of_the_example_refuses_a_decrypted_value():
    """Each plain string field the example uses, holding a decrypted value instead (a
    ciphertext moved there and merged): refused at that path, the value never shown."""
    example = example_pillar.palplat()
    cfg = config.load({"palplat": example})
    secret_paths = {path for path, v in provenance.leaves(cfg)}
    paths = [p for p in _plain_strings(example, cfg) if p not in secret_paths]
    assert len(paths) > 150
    value = new("moved-into-a-plain-field")
    for path in paths:
        tree = copy.deepcopy(example)
        node = tree
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(path[-1])] = wrapped(value)
        else:
            node[path[-1]] = wrapped(value)
        with pytest.raises(PillarError) as exc:
            config.load({"palplat": tree})
        text = str(exc.value)
        assert value not in text, path
        assert any(p.path.startswith(":".join(("palplat", *path))) or
                   ":".join(("palplat", *path)).startswith(p.path) for p in exc.value.problems), (
            path, text)  # fmt: skip
