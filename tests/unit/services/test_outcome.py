"""What a run reports (per service and part) and how a stored robot Secret is read back."""

from __future__ import annotations

import base64
import json

from palplat.services import registry
from palplat.services.bundle import ROBOT_ID_ANNOTATION
from palplat.services.outcome import Outcome, ServiceResult


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_left_names_service_and_part_in_converge_order():
    a = ServiceResult("a")
    a.fail("ci", "Woodpecker answered 401")
    a.fail("registry", "cannot reach Harbor")
    a.fail("registry", "cannot reach Harbor")  # once
    b = ServiceResult("b", changes={"Namespace/b": {}})
    shared = ServiceResult("(shared)")
    out = Outcome({"a": a, "b": b}, shared, orphans={"old": ["Namespace/old"]})
    assert out.left() == [
        "palplat:services:a registry: cannot reach Harbor",
        "palplat:services:a ci: Woodpecker answered 401",
    ]
    assert not out.ok
    text = "\n".join(out.comment(test=True))
    assert "would change 1 service(s): b" in text
    assert "orphaned: 'old' is no longer in palplat:services" in text
    assert "left to do" in text and "  - palplat:services:a ci:" in text
    assert out.changes() == {"b": {"Namespace/b": {}}}
    assert out.summary() == {"add": [], "change": ["b"], "remove": [], "orphaned": ["old"]}
    assert out.status() == [
        {"service": "a", "state": "failed: ci, registry", "healthy": False},
        {"service": "b", "state": "1 pending change(s)", "healthy": False},
        {"service": "old", "state": "orphaned (left alone)", "healthy": True},
    ]
    new = ServiceResult("n", changes={"Namespace/n": {".": {"old": None, "new": {}}}})
    gone = ServiceResult("g", changes={"Ingress/g/g": {}}, absent=True)
    summary = Outcome({"n": new, "g": gone}, shared).summary()
    assert summary["add"] == ["n"] and summary["remove"] == ["g"]


def test_stored_robot_is_read_back_from_either_secret():
    push = {
        "metadata": {"annotations": {ROBOT_ID_ANNOTATION: "12"}},
        "data": {"username": b64("robot$x+palplat-push"), "password": b64("pw-123456")},
    }
    robot = registry.stored_robot(push, "harbor.test")
    assert (robot.name, robot.secret.reveal(), robot.id) == (
        "robot$x+palplat-push",
        "pw-123456",
        12,
    )
    doc = {"auths": {"harbor.test": {"username": "robot$x+palplat-pull", "password": "pw-9"}}}
    pull = {
        "metadata": {"annotations": {ROBOT_ID_ANNOTATION: "13"}},
        "data": {".dockerconfigjson": b64(json.dumps(doc))},
    }
    assert registry.stored_robot(pull, "harbor.test").id == 13
    # unusable: another registry, no id, garbage -> refreshed by the next run
    assert registry.stored_robot(pull, "other.test") is None
    del push["metadata"]["annotations"]
    assert registry.stored_robot(push, "harbor.test") is None
    assert registry.stored_robot({"data": {".dockerconfigjson": "!!"}}, "harbor.test") is None
