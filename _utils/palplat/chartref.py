"""Where a chart comes from (``Chart``: a helm repository, an OCI reference or a local
path) and the chart URL check; re-exported by :mod:`palplat.model`."""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from palplat.fields import Model
from palplat.secret import CREDENTIAL_ERROR


def _chart_url(v: str) -> str:
    """A chart repository URL (http/https) or an OCI reference (oci://registry[/path])."""
    u = urllib.parse.urlsplit(v)
    if u.scheme not in ("http", "https", "oci") or not u.hostname:
        raise ValueError(
            "must be a chart repository URL (http:// or https://) or an OCI registry "
            "prefix (oci://registry[/path])"
        )
    if u.username or u.password:
        raise PydanticCustomError(
            CREDENTIAL_ERROR,
            "must not hold credentials (they would reach helm's argv, the logs and the "
            "plan): set registry credentials under palplat:k3s:registries:configs:<host>:"
            "auth (GPG pillar), and remove the user:password@ part",
        )
    if u.query or u.fragment:
        raise ValueError("must not have a query or fragment")
    return v


ChartUrl = Annotated[str, AfterValidator(_chart_url)]


class Chart(Model):
    """Where a chart comes from: a helm repository, an OCI reference or a local path."""

    repo: Annotated[ChartUrl, Field(pattern=r"^https?://")] | None = Field(
        None, description="Helm repository URL (with `name`); never with credentials."
    )
    name: str | None = Field(None, description="Chart name in `repo`.")
    oci: Annotated[ChartUrl, Field(pattern=r"^oci://.+")] | None = Field(
        None, description="OCI reference; registry credentials: k3s:registries:configs."
    )
    path: str | None = Field(None, description="Local chart directory or archive.")
    version: str | None = Field(None, description="Chart version; required for repo and oci.")
