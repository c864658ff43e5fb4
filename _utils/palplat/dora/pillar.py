"""The ``palplat:dora`` pillar section: where the ledger lives, the windows the keys use,
where the metrics file goes. Every field has a default: DORA is on unless disabled."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from palplat.fields import DnsLabel, Model


class Dora(Model):
    """Delivery measurement (docs/dora.md)."""

    enabled: bool = Field(
        True,
        description="Record every real run in the ledger and write the metrics file "
        "(false: nothing is recorded; palplat.dora reports what was recorded before).",
    )
    namespace: DnsLabel = Field(
        "kube-system",
        description="Namespace of the ledger's ConfigMaps (palplat-dora-ledger-NNNN).",
    )
    textfile_dir: str = Field(
        "/var/lib/prometheus/node-exporter",
        description="node_exporter's textfile collector directory on the node that holds "
        "the cluster (Debian's default); palplat writes palplat_dora.prom there. Empty: "
        "no metrics file.",
    )
    window_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        30, description="Default window of salt-run palplat.dora and of the recording rules."
    )
    failure_window: Annotated[int, Field(ge=60, le=30 * 86400)] = Field(
        3600,
        description="Seconds after a deployment within which a revert, a rollback, a mark "
        "(salt-run palplat.dora_mark) or a Degraded/Missing Application makes it failed.",
    )
    healthy_within: Annotated[int, Field(ge=0, le=86400)] = Field(
        300,
        description="Seconds a service's Application may take to become Healthy after a "
        "successful sync; Degraded or Missing for longer is a failure.",
    )
    max_records: Annotated[int, Field(ge=1000, le=1_000_000)] = Field(
        100_000, description="The ledger's bound: older chunks are dropped beyond it."
    )
    year: Literal[2023, 2024] = Field(
        2024, description="Which State of DevOps report's bands grade the keys."
    )
