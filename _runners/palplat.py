"""Runner: validate, plan and status of the platform, on the master.

    salt-run palplat.validate                 # every accepted minion's compiled pillar
    salt-run palplat.validate minion=host1
    salt-run palplat.validate sls=/srv/pillar/palplat/init.sls,/srv/pillar/palplat/secrets.sls
    salt-run palplat.plan [tgt=...]           # the pull-request plan (Markdown; --out=json)
    salt-run palplat.status                   # nodes, firewall, GPU, releases, services
    salt-run palplat.dora [days=30] [service=NAME]   # DORA keys (--out=json)
    salt-run palplat.dora_mark component=release/loki [why=...]

Exit codes: validate 0/1; plan 0 no changes, 2 changes, 1 errors; status 0 healthy,
2 degraded, 1 error.
"""

import logging

import salt.client
import salt.utils.minions

from palplat import config, loaderkit, pullrequest, redact, report, saltjobs
from palplat.report import collect

TARGET = "I@palplat:*"
log = logging.getLogger(__name__)


def _plaintext():
    return bool(__opts__.get(loaderkit.PLAINTEXT_OPTION, False))


def _accepted():
    import salt.key

    return salt.key.get_key(__opts__).list_status("acc").get("minions", [])


def _prepare(pillarenv, source, tgt, tgt_type):
    """A pull request's pillar for the minions ``tgt`` names (the default target: every
    accepted minion the pull request gives a palplat pillar), rendered as YAML only and
    sealed (``palplat.pullrequest``)."""
    named = tgt != TARGET
    minions = _expected(tgt, tgt_type) if named else _accepted()
    grains = {m: salt.utils.minions.get_minion_data(m, __opts__)[1] for m in minions}
    return pullrequest.prepare(
        __opts__, pillarenv, minions, grains, source=source, required=minions if named else ()
    )


def validate(minion=None, sls=None, pillarenv=None, source=None):
    """
    Validate the ``palplat`` pillar of minions (or of pillar files, or of a pull
    request's pillar) and report every problem with its pillar path. Exits non-zero when
    a problem is found.

    A pull request's files (``sls=`` or ``pillarenv=``) are read as YAML only and never
    decrypted: Jinja or another renderer in them is refused, not run.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.validate
        salt-run palplat.validate minion=host1
        salt-run palplat.validate sls=pillar/palplat/init.sls,pillar/palplat/secrets.sls
        salt-run palplat.validate pillarenv=pr-12 source=/path/to/checkout/pillar
    """
    loaderkit.env(__salt__, __opts__)
    targets = {}
    errors = []
    planning = bool(sls or pillarenv)
    if sls:
        files = [f.strip() for f in str(sls).split(",") if f.strip()]
        merged, errors = pullrequest.read_files(files)
        targets[", ".join(files)] = merged
    elif pillarenv:
        prep = _prepare(pillarenv, source, minion or TARGET, "list" if minion else "compound")
        errors = prep.errors
        targets = {m: {"palplat": t} for m, t in prep.trees.items()}
        if not targets and not errors:
            errors = ["no minion gets a palplat pillar from this pull request"]
    else:
        pillars = __salt__["pillar.show_pillar"](minion) if minion else None
        if minion:
            targets[minion] = pillars
        else:
            keys = _accepted()
            for mid in keys:
                targets[mid] = __salt__["pillar.show_pillar"](mid)
            if not keys:
                targets[__opts__["id"]] = __salt__["pillar.show_pillar"]()
    report = {}
    bad = bool(errors)
    if errors:
        report["files"] = errors
    for name, pillar in targets.items():
        if not planning and not minion and "palplat" not in (pillar or {}):
            # every accepted minion is looked at: one without the key is not palplat's
            report[name] = "no palplat pillar (palplat.full does not target it)"
            continue
        # a minion named on the command line (or a pillar file) must have the key: the
        # states on that minion refuse to run without it
        problems = [
            str(p)
            for p in config.problems_of(
                pillar, required=True, plaintext_secrets=_plaintext(), planning=planning
            )
        ]
        report[name] = problems or "valid"
        bad = bad or bool(problems)
    out = {"palplat pillar": redact.mask(report), "retcode": 1 if bad else 0}
    return out


def _cmd(tgt, tgt_type, timeout):
    """``cmd(fun, arg, kwarg) -> {minion: return}`` over Salt's LocalClient, as
    ``LocalClient.cmd`` does it (``timeout``: how long to wait before asking the minions
    whether they still run the job; a minion still running it is waited for), except that
    a return whose event this process missed (many minions returning at once) is read
    from the master's job cache within a second (``palplat.saltjobs``). A minion that
    does not answer is left out (the report says it did not answer)."""
    client = salt.client.get_local_client(mopts=__opts__)

    def cmd(fun, arg=(), kwarg=None):
        got = saltjobs.gather(client, tgt, fun, arg, tgt_type, kwarg, timeout)
        if got.from_cache:
            log.info("palplat: %s: returns read from the job cache: %s", fun, got.from_cache)
        return got.rets()

    return cmd


def _expected(tgt, tgt_type):
    return salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]


def _out(text, data, code, path=None):
    """People get ``text`` (through the ``palplat`` outputter), machines (``--out=json``
    or any other --out) the data; both exit with ``code``."""
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    if __opts__.get("output") not in (None, "", "palplat"):
        return {"retcode": code, **data}
    return {"outputter": "palplat", "data": {"retcode": code, "text": text}}


@loaderkit.translate
def plan(tgt=TARGET, tgt_type="compound", timeout=30, path=None, pillarenv=None, source=None):
    """
    The pull-request plan: ``palplat.full`` in test mode across the targeted minions
    (validation really runs), as Markdown for a pull-request comment (``--out=json`` for
    machines; ``path=`` also writes the Markdown to a file). Exit code 0: no changes,
    2: changes, 1: errors (invalid pillar, unreachable minion, failed render).

    ``pillarenv=pr-12`` plans a pull request's pillar: the ``.sls`` files staged in
    ``<palplat_pr_root>/pr-12`` (``source=`` copies them there first from the pull
    request's checkout), read as YAML only, its ciphertexts never decrypted (unchanged
    ones plan with the applied values, the others as changed); credentials go only where
    the applied pillar sends them. See docs/security.md.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.plan
        salt-run palplat.plan tgt=host1 tgt_type=glob path=/tmp/plan.md
        salt-run palplat.plan --out=json
        salt-run palplat.plan pillarenv=pr-12 source=/path/to/checkout/pillar
    """
    loaderkit.env(__salt__, __opts__)
    payload = None
    if pillarenv:
        prep = _prepare(pillarenv, source, tgt, tgt_type)
        expected = prep.minions
        if prep.errors or not expected:
            rep = report.Report(minions=expected, errors=list(prep.errors))
            if not expected and not prep.errors:
                rep.errors.append(f"no minion gets a palplat pillar from {pillarenv}")
            text = report.plan_markdown(rep)
            return _out(text, {"report": rep.as_dict(), "markdown": text}, rep.exit_code, path)
        payload = pullrequest.payload(prep.trees)
        tgt, tgt_type = expected, "list"
    else:
        expected = _expected(tgt, tgt_type)
    rep = collect.collect_plan(
        _cmd(tgt, tgt_type, int(timeout)),
        expected,
        k3s_plan=lambda: __salt__["palplat_k3s.plan"](tgt=tgt, tgt_type=tgt_type, plan=payload),
        plan=payload,
    )
    if not expected:
        rep.errors.append(f"no minion matches {tgt} ({tgt_type})")
    text = report.plan_markdown(rep)
    return _out(text, {"report": rep.as_dict(), "markdown": text}, rep.exit_code, path)


@loaderkit.translate
def drift(tgt=TARGET, tgt_type="compound", timeout=30):
    """
    Plan, and fire ``palplat/drift`` on the master's event bus with the summary when
    anything differs from the pillar (``palplat/drift/error`` when the plan failed). For a
    master schedule (``ci/master.d/palplat-drift.conf``); a reactor can notify from there.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.drift
    """
    loaderkit.env(__salt__, __opts__)
    rep = collect.collect_plan(
        _cmd(tgt, tgt_type, int(timeout)),
        _expected(tgt, tgt_type),
        k3s_plan=lambda: __salt__["palplat_k3s.plan"](tgt=tgt, tgt_type=tgt_type),
    )
    _dora_observe(tgt, tgt_type, timeout)
    data = rep.as_dict()
    summary = {
        "summary": data["summary"],
        "errors": data["errors"],
        "items": [
            {"minion": i["minion"], "stage": i["stage"], "item": i["item"], **i["counts"]}
            for i in data["items"]
        ],
    }
    if rep.exit_code == report.ERRORS:
        __salt__["event.send"]("palplat/drift/error", summary)
    elif rep.exit_code == report.CHANGES:
        __salt__["event.send"]("palplat/drift", summary)
    return {"retcode": rep.exit_code, **summary}


@loaderkit.translate
def status(tgt=TARGET, tgt_type="compound", timeout=30, markdown=False):
    """
    The platform's status: nodes (role, k3s version, Ready), firewall (applied, pending
    confirmation), GPUs, each release (chart, revision, status, drift) and each service.
    A table for people, JSON with ``--out=json``. Exit code 0 healthy, 2 degraded, 1 error.
    Every minion answers for its node; the cluster-wide rows (nodes, releases, services,
    GPU allocatable) come from the minion that holds the cluster alone.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.status
        salt-run palplat.status --out=json
    """
    loaderkit.env(__salt__, __opts__)
    st = collect.collect_status(
        _cmd(tgt, tgt_type, int(timeout)),
        _expected(tgt, tgt_type),
        cmd_on=lambda minions: _cmd(minions, "list", int(timeout)),
    )
    _dora_observe(tgt, tgt_type, timeout)
    text = report.render_status(st, markdown=bool(markdown))
    return _out(text, {"status": st.as_dict()}, st.exit_code)


# ------------------------------------------------------------------------------ DORA


def _dora_observe(tgt, tgt_type, timeout):
    """Every status and drift run records what the services' Argo CD Applications and
    Woodpecker pipelines show (Argo CD keeps 10 history entries, successes only: nothing
    is lost between runs). Never fails the caller."""
    try:
        _cmd(tgt, tgt_type, int(timeout))("palplat_dora.observe")
    except Exception:  # noqa: BLE001 - measuring must not break status or drift
        import logging

        logging.getLogger("palplat").debug("palplat_dora.observe failed", exc_info=True)


def _dora_answer(answers):
    """The answer of the minion that holds the ledger (others say skipped)."""
    errors = []
    for mid, ret in sorted((answers or {}).items()):
        if isinstance(ret, dict) and "skipped" not in ret:
            return mid, ret, errors
        if not isinstance(ret, dict):
            errors.append(f"{mid}: {redact.mask_text(str(ret))}")
    return None, None, errors


@loaderkit.translate
def dora(days=None, service=None, tgt=TARGET, tgt_type="compound", timeout=60, markdown=False):
    """
    DORA keys from palplat's own records: deployment frequency, change lead time, change
    fail rate, failed deployment recovery time and deployment rework rate, per platform
    component and per service over ``days`` (default ``palplat:dora:window_days``), each
    with the count behind it and its band (docs/dora.md). ``--out=json`` for machines.
    Exit code 0, 1 on error.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.dora
        salt-run palplat.dora days=90 service=pal-e-docs --out=json
    """
    from palplat.dora import report as dora_report

    loaderkit.env(__salt__, __opts__)
    kwarg = {"days": days, "service": service}
    cmd = _cmd(tgt, tgt_type, int(timeout))
    cmd("palplat_dora.observe")
    mid, rep, errors = _dora_answer(cmd("palplat_dora.report", kwarg=kwarg))
    if rep is None:
        text = "palplat DORA: no minion holds the ledger\n" + "\n".join(errors) + "\n"
        return _out(text, {"errors": errors}, 1)
    text = dora_report.render(rep, markdown=bool(markdown))
    return _out(text, {"dora": rep, "minion": mid}, 0)


@loaderkit.translate
def dora_mark(component, scope="platform", at=None, why="", tgt=TARGET, tgt_type="compound"):
    """
    Mark the last deployment of ``component`` failed (it counts when it is within
    ``palplat:dora:failure_window`` of that deployment): a platform component
    (``release/<key>``, ``firewall``, ``k3s``, ``host``, ``onboarding/<service>``) or,
    with ``scope=service``, a service.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.dora_mark component=release/loki why='dashboards empty'
        salt-run palplat.dora_mark component=pal-e-docs scope=service
    """
    loaderkit.env(__salt__, __opts__)
    kwarg = {"component": component, "scope": scope, "at": at, "why": why}
    mid, ret, errors = _dora_answer(_cmd(tgt, tgt_type, 60)("palplat_dora.mark", kwarg=kwarg))
    if ret is None:
        return {"retcode": 1, "errors": errors or ["no minion holds the ledger"]}
    return {"retcode": 0, "minion": mid, **ret}


def state_tree():
    """Where palplat's state tree is, and which palplat this master runs.

    With the wheel installed (``salt-pip install palplat-<version>-py3-none-any.whl``),
    ``palplat/full.sls`` and the stage SLS files are inside the package: add the printed
    ``file_roots`` entry to the master's configuration (README: Installing). From a
    checkout (file_roots + ``saltutil.sync_all``) the entry is that checkout's ``salt/``.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.state_tree
    """
    import palplat
    from palplat import loader

    tree = loader.state_tree()
    out = {"version": palplat.__version__, "file_roots": tree}
    if tree is None:
        out["comment"] = (
            "palplat runs from a checkout (synced extension modules): put the checkout's "
            "salt/ directory on file_roots"
        )
    return out
