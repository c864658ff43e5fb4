"""Execution module: DORA, the platform's delivery measured from its own records
(docs/dora.md). Runs on the minion that holds the cluster (the ledger lives there);
other minions answer ``{"skipped": ...}``.

The master calls these: ``palplat.full`` (``palplat_dora.record`` with the run's records),
``salt-run palplat.status`` and ``palplat.drift`` (``palplat_dora.observe``),
``salt-run palplat.dora`` (``palplat_dora.report``), ``salt-run palplat.dora_mark``.
"""

import time

from palplat import config, loaderkit
from palplat.dora import api, records
from palplat.dora.ledger import Spool

__virtualname__ = "palplat_dora"


def __virtual__():
    return loaderkit.needs_kubernetes(__virtualname__)


def _env():
    return loaderkit.env(__salt__, __opts__, __pillar__, __context__)


def _setup():
    """``(env, cfg, skipped)``: ``skipped`` says why this minion does nothing."""
    e = _env()
    cfg = e.config()
    if not config.holds_the_cluster(cfg):
        return e, cfg, {"skipped": config.CLUSTER_STAGE_ELSEWHERE}
    return e, cfg, None


def _spool():
    return Spool(api.spool_path(__opts__["cachedir"]))


@loaderkit.translate
def record(records=None):
    """
    Append records (from ``palplat.full``'s last state) to the ledger and rewrite the
    metrics file; while the cluster cannot be reached they wait in the minion's spool.

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.record records='[]'
    """
    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    if not cfg.dora.enabled:
        return {"skipped": "palplat:dora:enabled is false"}
    return api.append(cfg, lambda: e.kube(cfg=cfg), _spool(), records or [])


@loaderkit.translate
def observe():
    """
    Record what the services' Argo CD Applications (sync operation, history, health,
    images) and Woodpecker pipelines show now; the ledger keeps each fact once.

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.observe
    """
    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    if not cfg.dora.enabled:
        return {"skipped": "palplat:dora:enabled is false"}

    def woodpecker():
        from palplat.services.woodpecker import Woodpecker

        wp = cfg.services.defaults.woodpecker
        return Woodpecker.from_settings(wp) if wp is not None else None

    return api.observe(cfg, lambda: e.kube(cfg=cfg), _spool(), woodpecker)


@loaderkit.translate
def report(days=None, service=None):
    """
    The five DORA keys per platform component and per service over ``days`` (default
    ``palplat:dora:window_days``), with counts and bands, as data.

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.report days=90 service=pal-e-docs
    """
    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    return api.build_report(cfg, e.kube(cfg=cfg), days=days, service=service)


@loaderkit.translate
def mark(component, scope="platform", at=None, why=""):
    """
    Mark the last deployment of ``component`` (at or before ``at``, default now) failed:
    ``release/<key>``, ``firewall``, ... (scope ``platform``) or a service's name (scope
    ``service``). It counts when it falls within ``palplat:dora:failure_window``.

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.mark release/loki why='bad retention'
    """
    from palplat.errors import InputError

    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    if scope not in (records.PLATFORM, records.SERVICE):
        raise InputError(f"scope must be {records.PLATFORM} or {records.SERVICE}, not {scope!r}")
    if not component:
        raise InputError("give the component: release/<key>, firewall, k3s, ... or a service")
    when = records.ts(at) if at is not None else time.time()
    if when is None:
        raise InputError(f"at={at!r}: give seconds since the epoch or an RFC 3339 time")
    rec = records.mark(scope, str(component), when, why)
    out = api.append(cfg, lambda: e.kube(cfg=cfg), _spool(), [rec])
    out["mark"] = rec
    return out


@loaderkit.translate
def metrics():
    """
    Rewrite ``<palplat:dora:textfile_dir>/palplat_dora.prom`` from the ledger now.

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.metrics
    """
    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    return api.write_metrics(cfg, api.ledger_of(cfg, e.kube(cfg=cfg)))


@loaderkit.translate
def records_(kind=None, last=50):
    """
    The ledger's newest records (``kind``: run, apply, mark, argo, pipe).

    CLI Example:

    .. code-block:: bash

        salt host1 palplat_dora.records kind=apply last=20
    """
    e, cfg, skipped = _setup()
    if skipped:
        return skipped
    recs = api.ledger_of(cfg, e.kube(cfg=cfg)).read()
    if kind:
        recs = [r for r in recs if r.get("k") == kind]
    return recs[-int(last) :] if last else recs


__func_alias__ = {"records_": "records"}
