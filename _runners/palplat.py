"""Runner: validate, plan and status of the platform, on the master.

    salt-run palplat.validate                 # every accepted minion's compiled pillar
    salt-run palplat.validate minion=host1
    salt-run palplat.validate sls=/srv/pillar/palplat/init.sls,/srv/pillar/palplat/secrets.sls
    salt-run palplat.plan [tgt=...]           # the pull-request plan (Markdown; --out=json)
    salt-run palplat.status                   # nodes, firewall, GPU, releases, services

Exit codes: validate 0/1; plan 0 no changes, 2 changes, 1 errors; status 0 healthy,
2 degraded, 1 error.
"""

import salt.client
import salt.exceptions
import salt.loader
import salt.template
import salt.utils.minions

from palplat import config, loaderkit, redact, report
from palplat.report import collect

TARGET = "I@palplat:*"


def _render_file(path):
    """Render a pillar file through Salt's renderer pipeline (including ``gpg``)."""
    utils = salt.loader.utils(__opts__)
    funcs = salt.loader.minion_mods(__opts__, utils=utils)
    renderers = salt.loader.render(__opts__, funcs)
    return (
        salt.template.compile_template(
            path,
            renderers,
            __opts__.get("renderer", "jinja|yaml"),
            __opts__.get("renderer_blacklist", []),
            __opts__.get("renderer_whitelist", []),
        )
        or {}
    )


def validate(minion=None, sls=None):
    """
    Validate the ``palplat`` pillar of minions (or of one pillar file) and report every
    problem with its pillar path. Exits non-zero when a problem is found.

    CLI Example:

    .. code-block:: bash

        salt-run palplat.validate
        salt-run palplat.validate minion=host1
        salt-run palplat.validate sls=pillar/palplat/init.sls,pillar/palplat/secrets.sls
    """
    loaderkit.env(__salt__, __opts__)
    targets = {}
    if sls:
        # several files (comma-separated) are merged as Salt merges pillar files
        import salt.utils.dictupdate

        files = [f.strip() for f in str(sls).split(",") if f.strip()]
        merged = {}
        for path in files:
            merged = salt.utils.dictupdate.merge(merged, _render_file(path), strategy="smart")
        targets[", ".join(files)] = merged
    else:
        pillars = __salt__["pillar.show_pillar"](minion) if minion else None
        if minion:
            targets[minion] = pillars
        else:
            import salt.key

            keys = salt.key.get_key(__opts__).list_status("acc").get("minions", [])
            for mid in keys:
                targets[mid] = __salt__["pillar.show_pillar"](mid)
            if not keys:
                targets[__opts__["id"]] = __salt__["pillar.show_pillar"]()
    report = {}
    bad = False
    for name, pillar in targets.items():
        if not sls and not minion and "palplat" not in (pillar or {}):
            # every accepted minion is looked at: one without the key is not palplat's
            report[name] = "no palplat pillar (palplat.full does not target it)"
            continue
        # a minion named on the command line (or a pillar file) must have the key: the
        # states on that minion refuse to run without it
        problems = [str(p) for p in config.problems_of(pillar, required=True)]
        report[name] = problems or "valid"
        bad = bad or bool(problems)
    out = {"palplat pillar": redact.mask(report), "retcode": 1 if bad else 0}
    return out


def _cmd(tgt, tgt_type, timeout):
    """``cmd(fun, arg, kwarg) -> {minion: return}`` over Salt's LocalClient, as
    ``LocalClient.cmd`` does it (``timeout``: how long to wait before asking the minions
    whether they still run the job; a minion still running it is waited for), plus one
    thing: a minion whose return event this process missed (the return reached the
    master's job cache, the event did not reach us: seen with two minions returning at
    once) is read from the job cache, at the cost of ``timeout`` plus Salt's
    ``gather_job_timeout``. A minion in neither is left out (the report says it did not
    answer)."""
    client = salt.client.get_local_client(mopts=__opts__)

    def cmd(fun, arg=(), kwarg=None):
        pub = client.run_job(
            tgt, fun, list(arg), tgt_type, timeout=timeout, kwarg=kwarg, listen=True
        )
        if not pub:
            return {}
        out = {}
        for got in client.get_cli_event_returns(pub["jid"], pub["minions"], timeout, tgt, tgt_type):
            for mid, data in (got or {}).items():
                if not data.get("failed"):
                    out[mid] = data.get("ret", {})
        if set(pub["minions"]) - set(out):
            try:
                cached = client.get_cache_returns(pub["jid"])
            except salt.exceptions.SaltClientError:
                cached = {}
            for mid, data in cached.items():
                out.setdefault(mid, data.get("ret"))
        return out

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
def plan(tgt=TARGET, tgt_type="compound", timeout=30, path=None, pillarenv=None):
    """
    The pull-request plan: ``palplat.full`` in test mode across the targeted minions
    (validation really runs), as Markdown for a pull-request comment (``--out=json`` for
    machines; ``path=`` also writes the Markdown to a file; ``pillarenv=`` plans the
    pillar of that environment, e.g. a pull request's checked out where ``pillar_roots``
    maps ``__env__``). Exit code 0: no changes, 2: changes, 1: errors (invalid pillar,
    unreachable minion, failed render).

    CLI Example:

    .. code-block:: bash

        salt-run palplat.plan
        salt-run palplat.plan tgt=host1 tgt_type=glob path=/tmp/plan.md
        salt-run palplat.plan --out=json
        salt-run palplat.plan pillarenv=pr-12
    """
    loaderkit.env(__salt__, __opts__)
    expected = _expected(tgt, tgt_type)
    rep = collect.collect_plan(
        _cmd(tgt, tgt_type, int(timeout)),
        expected,
        k3s_plan=lambda: __salt__["palplat_k3s.plan"](tgt=tgt, tgt_type=tgt_type),
        pillarenv=pillarenv,
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

    CLI Example:

    .. code-block:: bash

        salt-run palplat.status
        salt-run palplat.status --out=json
    """
    loaderkit.env(__salt__, __opts__)
    st = collect.collect_status(_cmd(tgt, tgt_type, int(timeout)), _expected(tgt, tgt_type))
    text = report.render_status(st, markdown=bool(markdown))
    return _out(text, {"status": st.as_dict()}, st.exit_code)
