"""palplat.host.packages: the plan says when a package is unknown to this host's package
index (Salt's pkg.installed says "would be installed" for any name in test mode). The
index answers are apt-cache, dnf/rpm and pacman output as those tools print it."""

from __future__ import annotations

import pytest

from palplat import config
from palplat.errors import CommandError
from palplat.host import facts, packages
from palplat.proc import Result

APT_POLICY = """\
jq:
  Installed: (none)
  Candidate: 1.6-2.1
  Version table:
     1.6-2.1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
openssh-server:
  Installed: 1:9.2p1-2+deb12u3
  Candidate: 1:9.2p1-2+deb12u3
  Version table:
 *** 1:9.2p1-2+deb12u3 500
        100 /var/lib/dpkg/status
nftables:
  Installed: (none)
  Candidate: 1.0.6-2+deb12u2
mail-transport-agent:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


class Runner:
    def __init__(self, out: dict[str, str], missing: tuple[str, ...] = ()):
        self.out, self.missing, self.argv = out, missing, []

    def __call__(self, argv, check=True, timeout=None, **kw):
        self.argv.append(list(argv))
        if argv[0] in self.missing:
            raise CommandError(argv, 127, f"{argv[0]}: program not found on PATH")
        return Result(list(argv), 0, self.out.get(argv[0], ""), "")


@pytest.fixture
def apt_root(tmp_path):
    lists = tmp_path / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("")
    return tmp_path


def test_apt_names_what_the_index_does_not_know(apt_root):
    run = Runner({"apt-cache": APT_POLICY})
    names = ["jq", "openssh-server", "nftables", "nfs-utils", "mail-transport-agent"]
    got = packages.unknown(names, "Debian", run, str(apt_root))
    # nfs-utils: apt-cache prints nothing; a virtual package has no candidate
    assert got == ["mail-transport-agent", "nfs-utils"]
    assert run.argv == [["apt-cache", "policy", *sorted(names)]]


def test_an_index_never_fetched_or_a_family_without_a_query_is_not_asked(tmp_path):
    run = Runner({})
    assert packages.unknown(["jq"], "Debian", run, str(tmp_path)) is None
    assert packages.unknown(["jq"], "Gentoo", run) is None
    assert packages.unknown(["jq"], "Arch", Runner({}, missing=("pacman",))) is None
    assert run.argv == []


def test_pacman():
    run = Runner({"pacman": "Name            : jq\nVersion         : 1.7.1-2\n"})
    assert packages.unknown(["jq", "nfs-common"], "Arch", run) == ["nfs-common"]


def pillar(**host):
    # no time sync, no security updates: their packages are not asked about
    quiet = {"time_sync": {"enabled": False}, "auto_updates": {"enabled": False}}
    return config.load({"palplat": {"host": {**quiet, **host}, "firewall": {"enabled": True}}})


def test_the_plan_problem_names_the_pillar_path_and_the_debian_name(apt_root):
    cfg = pillar(packages=["jq", "nfs-utils", {"Debian": "nfs-client", "RedHat": "nfs-utils"}])
    run = Runner({"apt-cache": APT_POLICY})
    got = {p.path: p.message for p in facts.package_problems(cfg, "Debian", run, apt_root)}
    assert set(got) == {"palplat:host:packages:1", "palplat:host:packages:2:Debian"}
    msg = got["palplat:host:packages:1"]
    assert "nfs-utils is not in apt's package index on this host (Debian)" in msg
    assert "Debian calls it nfs-common" in msg
    # nftables (the firewall stage) was asked about too, and is known
    assert "nftables" in run.argv[0]


def test_a_package_the_stage_adds_is_reported_under_host(apt_root):
    cfg = pillar(packages=["jq"])
    run = Runner({"apt-cache": "jq:\n  Installed: (none)\n  Candidate: 1.6\n"})
    got = facts.package_problems(cfg, "Debian", run, apt_root)
    assert [p.path for p in got] == ["palplat:host"]
    assert "needs the package nftables" in got[0].message
