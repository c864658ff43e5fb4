"""loaderkit's error translation keeps what Salt reads (signature, module) and masks."""

import inspect
import uuid

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError
from salt.utils.args import get_function_argspec

from palplat import loaderkit
from palplat.errors import InputError, PalplatError, PillarError, PillarProblem
from palplat.secret import Secret


def test_translate_keeps_the_signature_salt_reads():
    @loaderkit.translate
    def fn(a, b=2, *, c=None):
        """doc"""
        return a + b

    spec = get_function_argspec(fn)
    assert spec.args == ["a", "b", "c"] and spec.defaults == (2, None)
    assert fn.__doc__ == "doc" and fn.__module__ == __name__ and inspect.isfunction(fn)
    assert fn(1) == 3


def test_translate_raises_salt_exceptions_masked():
    s = Secret("tr-" + uuid.uuid4().hex)

    @loaderkit.translate
    def bad_input():
        raise InputError(f"wrong {s.reveal()}")

    @loaderkit.translate
    def bad_run():
        raise PalplatError(f"failed with {s.reveal()}")

    with pytest.raises(SaltInvocationError) as e1:
        bad_input()
    with pytest.raises(CommandExecutionError) as e2:
        bad_run()
    assert s.reveal() not in str(e1.value) + str(e2.value)


def test_state_decorator_returns_a_failed_state_with_the_name():
    @loaderkit.state
    def managed(name="default-name", other=1):
        raise PillarError([PillarProblem("palplat:firewall:rules", "fix it")])

    ret = managed()
    assert ret["name"] == "default-name" and ret["result"] is False
    assert "palplat:firewall:rules: fix it" in ret["comment"]
    assert managed("given")["name"] == "given"
    assert get_function_argspec(managed).args == ["name", "other"]


def test_state_decorator_keeps_changes_an_error_carries():
    class Partial(PalplatError):
        changes = {"ConfigMap/a/b": {"old": None, "new": "created"}}

    @loaderkit.state
    def present(name):
        raise Partial("the third object failed")

    ret = present("x")
    assert ret["result"] is False and ret["changes"] == Partial.changes
    assert "made before this error" in ret["comment"]


def test_an_unexpected_exception_is_a_masked_one_line_state_error():
    s = Secret("unexpected-" + uuid.uuid4().hex)

    @loaderkit.state
    def st(name):
        raise KeyError(f"bug near {s.reveal()}\nsecond line")

    ret = st("x")
    assert ret["result"] is False and ret["name"] == "x"
    assert ret["comment"].startswith("KeyError: ") and "<hidden>" in ret["comment"]
    assert s.reveal() not in ret["comment"] and "second line" not in ret["comment"]


def test_translate_masks_an_unexpected_exception():
    from salt.exceptions import CommandExecutionError

    s = Secret("unexpected-fn-" + uuid.uuid4().hex)

    @loaderkit.translate
    def fn():
        raise ValueError(f"cannot parse {s.reveal()}")

    with pytest.raises(CommandExecutionError) as exc:
        fn()
    assert "ValueError: cannot parse <hidden>" in str(exc.value)
    assert s.reveal() not in str(exc.value)


def test_is_test():
    assert loaderkit.is_test({"test": True}) and not loaderkit.is_test({"test": False})
    assert not loaderkit.is_test({}) and not loaderkit.is_test(None)


def test_manifests_from_yaml_and_objects():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}}
    assert loaderkit.manifests_from(cm) == [cm]
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n---\n"
    assert loaderkit.manifests_from(manifests=text) == [cm]
    assert loaderkit.manifests_from(manifests=cm) == [cm]
    with pytest.raises(InputError, match="not valid YAML"):
        loaderkit.manifests_from(manifests="a: [")
    with pytest.raises(InputError, match="give manifest"):
        loaderkit.manifests_from()
    with pytest.raises(InputError, match="one object"):
        loaderkit.manifests_from("- a\n- b\n")
