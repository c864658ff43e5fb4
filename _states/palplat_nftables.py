"""State module: ``palplat_nftables.managed`` converges palplat's nftables table.

Reads ``palplat:firewall`` (and the k3s role for the port profile). One ``nft -f``
transaction replaces only palplat's table; a change that narrows access to the
management ports is applied commit-confirmed. See docs/firewall.md.
"""

from palplat import loaderkit, nft


@loaderkit.state
def managed(name="palplat"):
    """Make the live palplat table equal to the one rendered from the pillar.

    Test mode runs the same plan (including ``nft -c``) and returns the same changes: the
    rules added, removed and changed by name, set element changes, whether the change
    would be commit-confirmed, and the boot-time files.
    """
    e = loaderkit.env(__salt__, __opts__, __pillar__, __context__)
    cfg = e.config()
    if not cfg.firewall.enabled:
        return loaderkit.state_ret(
            name, {}, True, "palplat:firewall:enabled is false: nftables is left alone"
        )
    if e.test and not nft.installed():
        # a host without nftables: the firewall stage installs it first (host.sls's
        # package list, palplat-firewall-package); the plan is against an empty ruleset
        plan = nft.plan(cfg, nft=nft.NotInstalled(cfg.firewall.netns))
        return loaderkit.state_ret(
            name,
            plan.changes,
            None,
            f"{plan.comment(test=True)}; nft is not installed yet: the nftables package is "
            "installed first, and the table is checked with nft -c then",
        )
    plan = nft.plan(cfg)
    if not plan.changed:
        return loaderkit.state_ret(name, {}, True, plan.comment(test=False))
    if e.test:
        return loaderkit.state_ret(name, plan.changes, None, plan.comment(test=True))
    nft.apply(plan, progress=e.progress("firewall"))
    return loaderkit.state_ret(name, plan.changes, True, plan.comment(test=False))
