"""``palplat.nft`` is a package whose ``__init__`` re-exports what callers (the loader
modules, tests, benchmarks) used from the single module it was."""

from pathlib import Path

from palplat import nft

# Every public name of the single-module palplat.nft (palplat 0.1), and what came since.
PUBLIC = """
    CHAIN FAMILY FULL INCLUDE_COMMENT MAX NFT_TIMEOUT PERSIST_HEADER SERVICE SHOW Interval
    Intervals Nft NftRejected NftSet Paths Plan Rule Table addr_elements apply confirm covers
    desired diff last_outcome lockout_problems management_ports merge narrows net_interval
    parse pending persist_plan persist_write plan port_intervals profile_rules reach
    removal_script render rollback_now rooted schedule service_enable service_enabled
    split_cidrs summary systemd_running
    NotInstalled installed
""".split()


def test_the_package_reexports_the_names_of_the_single_module():
    missing = [n for n in PUBLIC if not hasattr(nft, n)]
    assert missing == []
    assert set(PUBLIC) <= set(nft.__all__)
    assert sorted(nft.__all__) == sorted(set(PUBLIC) | {"probe_info"})


def test_no_submodule_is_named_like_a_reexported_name():
    # ``import palplat.nft.plan as m`` would give the function plan, not a module nft/plan.py.
    clash = [p.stem for p in Path(nft.__file__).parent.glob("*.py") if p.stem in PUBLIC]
    assert clash == []
