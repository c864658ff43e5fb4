"""Field types and the base model shared by every part of the pillar model.

:mod:`palplat.model` (the whole pillar) and :mod:`palplat.services.pillar` (the
``services`` section) both build on these: strict models that forbid unknown keys, and
validated scalars (DNS labels, ports, CIDRs, quantities, durations, secret trees).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
)

from palplat import redact
from palplat.secret import secretize

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _dns_label(v: str) -> str:
    if len(v) > 63 or not DNS1123_LABEL.match(v):
        raise ValueError(
            "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'pal-e-docs')"
        )
    return v


def _cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(
                f"is not an IP network in CIDR form ({exc}); write e.g. 192.168.1.0/24"
            ) from None
        raise ValueError(f"has host bits set; did you mean {fixed}?") from None
    return str(net)


def _interface(v: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.:+-]{1,15}\*?$", v):
        raise ValueError("is not a network interface name (at most 15 characters, e.g. tailscale0)")
    return v


def _size(v: str) -> str:
    if not re.match(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$", v):
        raise ValueError("is not a Kubernetes quantity (e.g. 5Gi)")
    return v


def _duration(v: str) -> str:
    if not re.match(r"^([0-9]+(ms|s|m|h|d|w|y))+$", v):
        raise ValueError("is not a duration (e.g. 30s, 5m, 168h, 14d)")
    return v


def _secret_tree(v: Any, info: ValidationInfo) -> Any:
    if not isinstance(v, dict):
        raise ValueError("must be a mapping of values (they are all treated as secrets)")
    return secretize(v, info.context)


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Port = Annotated[int, Field(ge=1, le=65535)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Interface = Annotated[str, AfterValidator(_interface)]
Quantity = Annotated[str, AfterValidator(_size)]
Duration = Annotated[str, AfterValidator(_duration)]
SecretTree = Annotated[
    dict[str, Any],
    BeforeValidator(_secret_tree),
    PlainSerializer(lambda v: redact.mask(v)),
]


_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+@,=:-]*$")


def _safe_path(v: str) -> str:
    """An absolute path palplat writes into unit and config files (``ExecStart=``, an nft
    ``include "..."``, config.yaml): letters, digits and ``. _ / + @ , = : -`` only, no
    ``.``/``..`` component. A space, quote, ``%``, ``$`` or newline there would change the
    file's meaning (a newline injects a directive)."""
    parts = v.split("/")[1:]
    if not _SAFE_PATH.match(v) or any(p in (".", "..") for p in parts) or "//" in v:
        raise ValueError(
            "must be a normalized absolute path of letters, digits and . _ / + @ , = : - "
            "(it is written into unit and config files: no spaces, quotes, '%', '$', "
            "newlines or '..')"
        )
    return v


SafePath = Annotated[str, AfterValidator(_safe_path)]


class Model(BaseModel):
    # a string under a field is its description (the configuration reference, the schema)
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=False,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )
