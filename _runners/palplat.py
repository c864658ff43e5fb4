"""Runner: validate the ``palplat`` pillar on the master (for pull-request CI).

    salt-run palplat.validate                 # every accepted minion's compiled pillar
    salt-run palplat.validate minion=host1
    salt-run palplat.validate sls=/srv/pillar/palplat/init.sls,/srv/pillar/palplat/secrets.sls

Prints every problem and exits non-zero when there is one.
"""

import salt.loader
import salt.template

from palplat import config, loaderkit, redact


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
        problems = [str(p) for p in config.problems_of(pillar)]
        report[name] = problems or "valid"
        bad = bad or bool(problems)
    out = {"palplat pillar": redact.mask(report), "retcode": 1 if bad else 0}
    return out
