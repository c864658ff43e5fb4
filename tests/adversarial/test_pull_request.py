"""A hostile pull request gets nothing (issue 17; docs/security.md).

A real master and minion, the minion's pillar GPG-encrypted with `#!yaml|palplat` (no
plain-text opt-out), converged once against the test control plane with one release and
one onboarded service (Harbor and Woodpecker contract fakes). Then pull requests are
planned as CI does it (`salt-run palplat.plan pillarenv=pr-N source=<checkout>`), each
written by an attacker who can only open a pull request:

- Jinja and `#!py` payloads: nothing runs (a marker file never appears), the plan fails.
- every ciphertext moved into plain fields: never decrypted, never shown, refused.
- Harbor, Woodpecker and an OCI registry moved to loopback listeners that record every
  request: no credential reaches them.
- a chart that `lookup`s a cluster Secret and prints its own secret values transformed:
  the plan shows neither.
- the honest pull request plans exactly its change; an unchanged one plans nothing.

Every known secret is then searched in the plans, the Salt logs, the events, the job
cache and every process argv seen meanwhile.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from palplat import kube
from palplat.gpgtool import encrypt, yaml_block
from palplat.services import inventory, resolve
from tests.support import testenv
from tests.support.fakes import platform as fakes_platform
from tests.support.listener import Listener
from tests.support.saltenv import (
    REPO,
    ArgvWatcher,
    find_secrets,
    make_gpg_home,
    master_overrides,
    minion_overrides,
    read,
)

why_no_fakes = fakes_platform.missing()
pytestmark = [
    pytest.mark.skipif(why_no_fakes is not None, reason=f"{why_no_fakes} (../shared/reference)"),
    pytest.mark.salt,
    pytest.mark.slow,
    pytest.mark.controlplane,
]

CM_CHART = REPO / "tests" / "fixtures" / "charts" / "cm"
LOOKUP_CHART = REPO / "tests" / "fixtures" / "charts" / "lookup"
NS = "adv-" + uuid.uuid4().hex[:6]
SVC = "adv-shop-" + uuid.uuid4().hex[:6]
RELEASE_PW = "adv-release-pw-" + uuid.uuid4().hex
DEPLOY_PW = "adv-deploy-pw-" + uuid.uuid4().hex
VICTIM = "adv-cluster-secret-" + uuid.uuid4().hex  # a Secret in the cluster, not in pillar
SECRETS = [
    RELEASE_PW,
    DEPLOY_PW,
    VICTIM,
    fakes_platform.HARBOR_PASSWORD,
    fakes_platform.WOODPECKER_TOKEN,
]


def _double_b64(value: str) -> str:
    return base64.b64encode(base64.b64encode(value.encode())).decode()


def plain_pillar(kubeconfig: str, harbor_url: str, wp_url: str) -> dict:
    """The applied pillar's plain part (secrets.sls holds the ciphertexts)."""
    defaults = copy.deepcopy(fakes_platform.example()["services"]["defaults"])
    for key in ("harbor", "woodpecker", "deployments_credentials", "object_store", "forge"):
        defaults.pop(key, None)
    defaults["harbor"] = {"url": harbor_url, "allow_http": True}
    defaults["woodpecker"] = {"url": wp_url, "allow_http": True}
    defaults["deployments_credentials"] = {"username": "argocd"}
    # the one release stands in for every platform release the services stage needs
    defaults["releases"] = dict.fromkeys(("argocd", "monitoring", "tailscale", "cnpg"), "greeter")
    defaults["monitoring"] = {"prober": "blackbox.monitoring.svc:9115"}
    return {
        "host": {"manage": False},
        "firewall": {"enabled": False},
        "k3s": {"mode": "external", "kubeconfig": kubeconfig},
        "gpu": {"enabled": False},
        "platform": {
            "releases": {
                "greeter": {
                    "namespace": NS,
                    "chart": {"path": str(CM_CHART)},
                    "wait": False,
                    "values": {"greeting": "hello", "service": False},
                }
            }
        },
        "services": {"defaults": defaults, SVC: {"repo": f"adv/{SVC}", "port": 8080}},
    }


def secrets_sls(ct: dict[str, str]) -> str:
    """``#!yaml|palplat`` with each ciphertext at its place."""
    return (
        "#!yaml|palplat\npalplat:\n  platform:\n    releases:\n      greeter:\n"
        "        secret_values:\n"
        + yaml_block(ct["release"], "password", 10)
        + "  services:\n    defaults:\n      harbor:\n"
        + yaml_block(ct["harbor"], "password", 8)
        + "      woodpecker:\n"
        + yaml_block(ct["woodpecker"], "token", 8)
        + "      deployments_credentials:\n"
        + yaml_block(ct["deploy"], "password", 8)
    )


@pytest.fixture(scope="module")
def fakes(kubeconfig):
    k = kube.Kube(kubeconfig)
    fakes_platform.install_crds(k)
    harbor, wp = fakes_platform.start_fakes()
    wp.add_forge_repo(f"adv/{SVC}")
    try:
        yield harbor, wp
    finally:
        harbor.stop()
        wp.stop()
        for obj in inventory.take(k).objects(resolve.owner_of(SVC)):
            ref = kube.ref_of(obj)
            try:
                k.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            except kube.KubeError:
                pass
        k.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("listener-pki")
    testenv.make_pki(d)
    return d


@pytest.fixture(scope="module")
def bed(tmp_path_factory, kubeconfig, kube_api, helm_bin, salt_factories, fakes):
    import kubernetes

    harbor, wp = fakes
    home, fpr = make_gpg_home(tmp_path_factory.mktemp("gpg"))
    ct = {
        "release": encrypt(RELEASE_PW, fpr, home),
        "harbor": encrypt(fakes_platform.HARBOR_PASSWORD, fpr, home),
        "woodpecker": encrypt(fakes_platform.WOODPECKER_TOKEN, fpr, home),
        "deploy": encrypt(DEPLOY_PW, fpr, home),
    }
    main = tmp_path_factory.mktemp("pillar-main")
    (main / "top.sls").write_text("base:\n  '*':\n    - palplat\n    - secrets\n")
    plain = plain_pillar(kubeconfig, harbor.url, wp.url)
    (main / "palplat.sls").write_text(yaml.safe_dump({"palplat": plain}))
    (main / "secrets.sls").write_text(secrets_sls(ct))
    prs = tmp_path_factory.mktemp("pull-requests")
    marker = tmp_path_factory.mktemp("marker") / "PWNED"
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": NS}})
    core.create_namespaced_secret(
        NS, {"metadata": {"name": "victim"}, "stringData": {"password": VICTIM}}
    )
    master = salt_factories.salt_master_daemon(
        "adv-master-" + uuid.uuid4().hex[:6],
        overrides=master_overrides(main, Path(home), palplat_pr_root=str(prs)),
    )
    with ArgvWatcher() as argv, master.started(start_timeout=120):
        minion = master.salt_minion_daemon(
            "adv-minion-" + uuid.uuid4().hex[:6],
            overrides=minion_overrides(
                palplat_plaintext_secrets=False, **{"palplat.helm_bin": helm_bin}
            ),
        )
        with minion.started(start_timeout=120):
            assert minion.salt_call_cli(timeout=300).run("saltutil.sync_all").returncode == 0
            assert master.salt_run_cli(timeout=120).run("saltutil.sync_all").returncode == 0
            applied = minion.salt_call_cli(timeout=600).run("state.apply", "palplat")
            assert applied.returncode == 0, applied.stdout
            state = {
                "master": master,
                "minion": minion,
                "main": main,
                "plain": plain,
                "ct": ct,
                "tmp": tmp_path_factory,
                "marker": marker,
                "argv": argv,
                "outputs": [],
            }
            yield state
            # leave nothing on the shared control plane: the release, then its namespace
            subprocess.run(
                [helm_bin, "uninstall", "greeter", "-n", NS, "--kubeconfig", kubeconfig],
                capture_output=True, check=False, timeout=120,
            )  # fmt: skip
    core = kubernetes.client.CoreV1Api(kube_api)
    core.delete_namespace(NS)
    for _ in range(60):
        if NS not in {n.metadata.name for n in core.list_namespace().items}:
            break
        time.sleep(1)


def pull_request(bed, name: str, plain: dict | None = None, files: dict | None = None) -> Path:
    """A pull request's pillar checkout: the applied pillar's files, changed."""
    d = bed["tmp"].mktemp(name)
    for f in ("top.sls", "secrets.sls"):
        shutil.copy(bed["main"] / f, d / f)
    body = plain if plain is not None else bed["plain"]
    (d / "palplat.sls").write_text(yaml.safe_dump({"palplat": body}))
    for rel, text in (files or {}).items():
        (d / rel).write_text(text)
    return d


def plan(bed, name: str, source: Path):
    ret = (
        bed["master"]
        .salt_run_cli(timeout=900)
        .run("palplat.plan", f"pillarenv={name}", f"source={source}")
    )
    bed["outputs"].append(ret.stdout + ret.stderr)
    if os.environ.get("PALPLAT_ADVERSARIAL_DUMP"):  # to read what each plan said
        Path(os.environ["PALPLAT_ADVERSARIAL_DUMP"], f"{name}.txt").write_text(ret.stdout)
    return ret


def changed_items(data):
    return {
        (i["stage"], i["item"]): i for i in data["report"]["items"] if any(i["counts"].values())
    }


def test_an_unchanged_pull_request_plans_nothing(bed):
    ret = plan(bed, "pr-1", pull_request(bed, "pr1"))
    assert ret.returncode == 0, ret.stdout
    assert ret.data["report"]["summary"] == {"add": 0, "change": 0, "remove": 0, "orphaned": 0}


def test_a_pull_request_plans_exactly_its_change(bed):
    p = copy.deepcopy(bed["plain"])
    p["platform"]["releases"]["greeter"]["values"]["greeting"] = "bonjour"
    ret = plan(bed, "pr-2", pull_request(bed, "pr2", p))
    assert ret.returncode == 2, ret.stdout
    changed = changed_items(ret.data)
    assert set(changed) == {("platform", "palplat-platform-releases")}, changed
    objects = changed[("platform", "palplat-platform-releases")]["changes"]["greeter"]["objects"]
    assert objects == {f"ConfigMap/{NS}/greeter-config": {
        "data.greeting": {"old": "hello", "new": "bonjour"}}}  # fmt: skip


def test_a_targeted_minion_without_a_palplat_pillar_is_an_error(bed):
    src = pull_request(bed, "pr8", files={"top.sls": "base:\n  'nobody-*':\n    - palplat\n"})
    mid = bed["minion"].id
    ret = (
        bed["master"]
        .salt_run_cli(timeout=300)
        .run("palplat.plan", "pillarenv=pr-8", f"source={src}", f"tgt={mid}", "tgt_type=glob")
    )
    bed["outputs"].append(ret.stdout)
    assert ret.returncode == 1, ret.stdout
    assert f"{mid}: the pull request gives this minion no palplat pillar" in ret.stdout
    everyone = plan(bed, "pr-8", src)  # the default target: nobody to plan, said so
    assert everyone.returncode == 1 and "no minion gets a palplat pillar" in everyone.stdout


def test_jinja_and_py_in_a_pull_request_never_run(bed):
    marker = bed["marker"]
    jinja = (
        "{{ salt['cmd.run']('touch "
        + str(marker)
        + "') }}\n"
        + yaml.safe_dump({"palplat": bed["plain"]})
    )
    py = f"#!py\ndef run():\n    open({str(marker)!r}, 'w').write('x')\n    return {{}}\n"
    top = "base:\n  '*':\n    - palplat\n    - secrets\n    - extra\n"
    src = pull_request(bed, "pr3", files={"palplat.sls": jinja, "extra.sls": py, "top.sls": top})
    ret = plan(bed, "pr-3", src)
    assert ret.returncode == 1, ret.stdout
    errors = "\n".join(ret.data["report"]["errors"])
    assert "palplat.sls:1: Jinja markup refused" in errors
    assert "extra.sls: renderer 'py' refused" in errors
    for sls in (src / "palplat.sls", src / "extra.sls"):
        v = bed["master"].salt_run_cli(timeout=120).run("palplat.validate", f"sls={sls}")
        bed["outputs"].append(v.stdout)
        assert v.returncode == 1, v.stdout
    assert not marker.exists()


PLAIN_PLACES = [
    ("firewall", "table"),
    ("services", "defaults", "registry"),
    ("platform", "releases", "greeter", "values", "greeting"),
    ("k3s", "config", "node-label"),
    ("services", "defaults", "harbor", "url"),
]


def test_moved_ciphertexts_are_never_decrypted_nor_shown(bed):
    """Each ciphertext of the applied pillar moved into plain fields (one pull request):
    sealed on the master, refused by name on the minion, its value nowhere."""
    p = copy.deepcopy(bed["plain"])
    p["k3s"]["config"] = {}
    cts = list(bed["ct"].values())
    for i, place in enumerate(PLAIN_PLACES):
        node = p
        for part in place[:-1]:
            node = node.setdefault(part, {})
        node[place[-1]] = cts[i % len(cts)]  # the ciphertext itself, as YAML text
    ret = plan(bed, "pr-4", pull_request(bed, "pr4", p))
    assert ret.returncode == 1, ret.stdout
    errors = "\n".join(ret.data["report"]["errors"])
    for place in PLAIN_PLACES:
        assert ":".join(("palplat", *place)) + ": holds a GPG-encrypted value" in errors, errors


def test_changed_endpoints_receive_no_credential(bed, pki):
    """Harbor and Woodpecker moved to recording listeners (https, so the pillar is valid),
    a chart moved to an OCI registry there with the Harbor password's ciphertext as its
    registry password: the listeners see no credential."""
    api, registry = Listener(pki), Listener(pki)
    try:
        p = copy.deepcopy(bed["plain"])
        d = p["services"]["defaults"]
        d["harbor"] = {"url": api.url, "verify_tls": False}
        d["woodpecker"] = {"url": api.url, "verify_tls": False}
        src = pull_request(bed, "pr5", p)
        ret = plan(bed, "pr-5", src)
        assert ret.returncode in (0, 2), ret.stdout
        assert "not contacted in this plan" in ret.stdout
        assert api.seen == [] and api.credentials() == []

        p2 = copy.deepcopy(bed["plain"])
        rel = p2["platform"]["releases"]["greeter"]
        rel["chart"] = {"oci": f"oci://{registry.host}/charts/cm", "version": "0.1.0"}
        src = pull_request(bed, "pr6", p2)
        registries = {
            "palplat": {
                "k3s": {
                    "registries": {
                        "configs": {
                            registry.host: {
                                # the Harbor password's ciphertext, moved (never decrypted)
                                "auth": {"username": "admin", "password": bed["ct"]["harbor"]}
                            }
                        }
                    }
                }
            }
        }
        (src / "registries.sls").write_text(yaml.safe_dump(registries))
        (src / "top.sls").write_text((src / "top.sls").read_text() + "    - registries\n")
        ret = plan(bed, "pr-6", src)
        assert ret.returncode == 1, ret.stdout
        assert f"the registry {registry.host} not contacted in this plan" in ret.stdout
        assert registry.credentials() == [], registry.credentials()
    finally:
        api.close()
        registry.close()


def test_a_hostile_chart_prints_no_secret(bed):
    """A new release whose chart `lookup`s a cluster Secret, and the existing release
    moved to that chart (its secret_values unchanged, so they plan with the applied
    values): client-side render, placeholders instead of secret values."""
    p = copy.deepcopy(bed["plain"])
    rels = p["platform"]["releases"]
    rels["spy"] = {
        "namespace": NS,
        "chart": {"path": str(LOOKUP_CHART)},
        "wait": False,
        "values": {"secretNamespace": NS, "secretName": "victim"},
    }
    rels["greeter"]["chart"] = {"path": str(LOOKUP_CHART)}
    rels["greeter"]["values"] = {"secretNamespace": NS, "secretName": "victim"}
    ret = plan(bed, "pr-7", pull_request(bed, "pr7", p))
    assert ret.returncode == 2, ret.stdout
    assert "rendered client-side" in ret.stdout
    for leak in (VICTIM, _double_b64(RELEASE_PW), base64.b64encode(VICTIM.encode()).decode()):
        assert leak not in ret.stdout
    # the changed chart got a placeholder where its secret value goes
    assert _double_b64("palplat-plan-placeholder") in ret.stdout


def test_no_secret_anywhere(bed, event_listener):
    """Every known secret, searched in every output of the pull requests planned above."""
    master, minion = bed["master"], bed["minion"]
    cache = Path(master.config["cachedir"]) / "jobs"
    job_cache = "\n".join(f.read_bytes().decode("latin-1") for f in cache.rglob("*") if f.is_file())
    events = [
        {"tag": e.tag, "data": e.full_data}
        for e in event_listener.store
        if e.daemon_id in {master.id, minion.id}
    ]
    leaks = find_secrets(
        [*SECRETS, _double_b64(RELEASE_PW)],
        outputs="\n".join(bed["outputs"]),
        master_log=read(master.config["log_file"]),
        minion_log=read(minion.config["log_file"]),
        events=json.dumps(events, default=str),
        job_cache=job_cache,
        argv="\n".join(bed["argv"].seen),
    )
    assert not leaks, leaks
