"""The Harbor and Woodpecker clients against their contract fakes (loopback HTTP, every
request and response checked against the vendor documents with bravado-core)."""

from __future__ import annotations

import pytest
import requests

from palplat import redact
from palplat.secret import Secret
from palplat.services.harbor import Harbor
from palplat.services.http import ApiError, Unavailable
from palplat.services.pillar import HarborApi, WoodpeckerApi
from palplat.services.woodpecker import Woodpecker
from tests.support.fakes import contract

ok, why = contract.available()
pytestmark = pytest.mark.skipif(not ok, reason=why)


@pytest.fixture(scope="module")
def fakes():
    from tests.support.fakes.harbor import HarborFake
    from tests.support.fakes.woodpecker import WoodpeckerFake

    h = HarborFake(password="pw-Harbor-1").start()
    w = WoodpeckerFake(token="tok-Wood-2").start()
    yield h, w
    h.stop()
    w.stop()


@pytest.fixture
def harbor(fakes):
    h, _ = fakes
    h.violations.clear()
    client = Harbor.from_settings(HarborApi(url=h.url, password=Secret("pw-Harbor-1")))
    yield client
    client.close()
    assert h.violations == []


@pytest.fixture
def wp(fakes):
    _, w = fakes
    w.violations.clear()
    client = Woodpecker.from_settings(WoodpeckerApi(url=w.url, token=Secret("tok-Wood-2")))
    yield client
    client.close()
    assert w.violations == []


def test_harbor_projects_and_robots(harbor, fakes):
    fake = fakes[0]
    harbor.create_project("unit-a")
    harbor.create_project("unit-a")  # 409: already there, fine
    assert harbor.project("unit-a")["name"] == "unit-a"
    assert harbor.project("unit-nope") is None
    rid, name, secret = harbor.create_robot("unit-a", "palplat-push", ["push"], "palplat: t")
    assert name == "robot$unit-a+palplat-push"
    assert isinstance(secret, Secret) and redact.mask(secret.reveal()) == "<hidden>"
    assert fake.robot_secrets[rid] == secret.reveal()
    listed = [r for r in harbor.robots() if r["id"] == rid]
    assert listed and "secret" not in listed[0]
    new = harbor.refresh_robot(rid)
    assert new.reveal() != secret.reveal() and fake.robot_secrets[rid] == new.reveal()
    harbor.delete_robot(rid)
    assert harbor.robot(rid) is None


def test_harbor_listings_are_paged(harbor, fakes):
    for i in range(120):
        fakes[0].projects[f"bulk-{i}"] = {
            "project_id": 10_000 + i,
            "name": f"bulk-{i}",
            "metadata": {"public": "false"},
        }
    harbor.api.reset_stats()
    names = harbor.projects()
    assert sum(1 for n in names if n.startswith("bulk-")) == 120
    assert harbor.api.stats["requests"] == 2  # 100 a page


def test_harbor_project_with_images_and_delete(harbor, fakes):
    harbor.create_project("unit-b")
    fakes[0].add_repository("unit-b", "app/web")
    assert [r["name"] for r in harbor.repositories("unit-b")] == ["unit-b/app/web"]
    with pytest.raises(ApiError) as exc:
        harbor.delete_project("unit-b")
    assert exc.value.status == 412
    harbor.delete_repository("unit-b", "app/web")  # '/' encoded twice, as Harbor wants
    harbor.delete_project("unit-b")
    assert harbor.project("unit-b") is None


def test_harbor_errors_name_the_fix_not_the_secret(fakes):
    h, _ = fakes
    bad = Harbor.from_settings(HarborApi(url=h.url, password=Secret("wrong-pw-9876")))
    with pytest.raises(ApiError) as exc:
        bad.projects()
    assert exc.value.status == 401
    assert "palplat:services:defaults:harbor" in str(exc.value)
    assert "wrong-pw-9876" not in str(exc.value)
    h.fail("GET", r"/projects$", 500, times=1)
    good = Harbor.from_settings(HarborApi(url=h.url, password=Secret("pw-Harbor-1")))
    with pytest.raises(ApiError, match="answered 500.*re-run when it is healthy"):
        good.projects()
    with h.down(), pytest.raises(Unavailable, match="cannot reach Harbor"):
        good.projects()
    assert good.projects() is not None  # back


def test_woodpecker_repos_and_secrets(wp, fakes):
    fake = fakes[1]
    fake.add_forge_repo("unit/app")
    repo = wp.repos()["unit/app"]
    assert repo["active"] is False and repo["id"] == 0
    active = wp.activate(repo["forge_remote_id"])
    assert active["active"] is True
    rid = active["id"]
    wp.set_secret(rid, "registry_password", "robot-value-5678", exists=False)
    wp.set_secret(rid, "registry_password", "robot-value-9999", exists=True)
    listed = wp.secrets(rid)
    assert set(listed) == {"registry_password"} and "value" not in listed["registry_password"]
    assert fake.secrets[rid]["registry_password"]["value"] == "robot-value-9999"
    wp.delete_secret(rid, "registry_password")
    wp.deactivate(rid)
    assert wp.repo(rid)["active"] is False


def test_woodpecker_secrets_are_paged(wp, fakes):
    fake = fakes[1]
    fake.add_forge_repo("unit/paged")
    rid = wp.activate(wp.repos()["unit/paged"]["forge_remote_id"])["id"]
    for i in range(60):
        wp.set_secret(rid, f"s{i:02d}", "v", exists=False)
    wp.api.reset_stats()
    assert len(wp.secrets(rid)) == 60
    assert wp.api.stats["requests"] == 2  # 50 a page
    wp.deactivate(rid)


def test_woodpecker_bad_token(fakes):
    _, w = fakes
    bad = Woodpecker.from_settings(WoodpeckerApi(url=w.url, token=Secret("bad-token-4321")))
    with pytest.raises(ApiError) as exc:
        bad.repos()
    assert exc.value.status == 401
    assert "palplat:services:defaults:woodpecker" in str(exc.value)
    assert "bad-token-4321" not in str(exc.value)


def test_fakes_refuse_what_the_documents_do_not_allow(fakes):
    """The contract check is real: a request the vendor document does not allow is
    refused and recorded (and the fixtures fail a test on any recorded violation)."""
    h, w = fakes
    auth = ("admin", "pw-Harbor-1")
    r = requests.post(f"{h.url}/api/v2.0/robots", json={"name": 5}, auth=auth, timeout=5)
    assert r.status_code == 400 and "contract violation" in r.text
    r = requests.get(f"{h.url}/api/v2.0/projects", params={"pagesize": 1}, auth=auth, timeout=5)
    assert r.status_code == 400
    r = requests.get(f"{h.url}/api/v2.0/nothing-here", auth=auth, timeout=5)
    assert r.status_code == 400
    r = requests.get(f"{w.url}/api/user/repos", timeout=5)  # no Authorization header
    assert r.status_code == 400
    r = requests.post(
        f"{w.url}/api/repos/1/secrets",
        json={"name": "a", "value": "b", "events": ["bogus"]},
        headers={"Authorization": "Bearer tok-Wood-2"},
        timeout=5,
    )
    assert r.status_code == 400
    assert len(h.violations) == 3 and len(w.violations) == 2
    assert any("pagesize" in v for v in h.violations)
    assert any("bogus" in v for v in w.violations)
    h.violations.clear()
    w.violations.clear()
