"""The one YAML reader for manifests and chart output.

PyYAML's safe loader implements YAML 1.1, whose ``tag:yaml.org,2002:value`` type turns an
unquoted ``=`` into a constructor error (kube-prometheus-stack's CRDs hold ``- =`` in an
enum). Kubernetes reads YAML 1.2, where ``=`` is a plain string: so does this loader.
The C loader is used where PyYAML has it.
"""

from __future__ import annotations

from typing import Any

import yaml

from palplat.errors import InputError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader that reads the YAML 1.1 ``value`` type (``=``) as a string."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)


Loader.add_constructor("tag:yaml.org,2002:value", _plain)


def load(text: str, what: str = "YAML") -> Any:
    """One document; ``InputError`` naming ``what`` when it is not valid YAML."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise InputError(f"{what} is not valid YAML: {exc}") from None


def load_all(text: str, what: str = "YAML") -> list[Any]:
    """Every non-empty document of a multi-document stream."""
    try:
        return [d for d in yaml.load_all(text, Loader=Loader) if d]  # noqa: S506
    except yaml.YAMLError as exc:
        raise InputError(f"{what} is not valid YAML: {exc}") from None
