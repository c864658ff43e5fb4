"""The palplat:host pillar: every bad input refused with its pillar path, cross checks
with the firewall, and a missing or null palplat pillar on a minion palplat acts on."""

import pytest

from palplat import config
from palplat.errors import PillarError

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd pal@laptop"
)
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHhChRO9zm3u3lkG/"
    "mKtxTI2BXrkNb9lCgF7IUbS+x1TwIoqXqC/kvheypf2dJERL1pWk+dS3U6xZkim5E3b6UU= ops"
)


def problems(palplat, **kw):
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": palplat}, **kw)
    return {p.path: p.message for p in exc.value.problems}


def host(**h):
    return {"host": h}


def test_defaults_are_valid_and_change_nothing_dangerous():
    cfg = config.load({"palplat": {}})
    h = cfg.host
    assert h.manage and h.k3s_prerequisites and h.swap == "off"
    assert h.ssh.manage is None and h.users == {} and not h.tailscale.enabled


def test_keys_users_and_groups_accepted():
    cfg = config.load(
        {
            "palplat": host(
                users={"pal": {"ssh_keys": [ED25519, ECDSA], "groups": ["adm"], "sudo": True}}
            )
        }
    )
    assert cfg.host.users["pal"].ssh_keys == [ED25519, ECDSA]


@pytest.mark.parametrize(
    "key, why",
    [
        ("not a key", "is not a key type"),
        ("ssh-ed25519", "is not an SSH public key"),
        ("ssh-ed25519 !!!notbase64!!! x", "base64"),
        ("ssh-rsa " + ED25519.split()[1], "is not a ssh-rsa key"),
        ("ssh-ed25519 " + ED25519.split()[1][:30], "base64"),
        ('from="10.0.0.1" ' + ED25519, "options before the key"),
        (ED25519 + "\nssh-ed25519 AAAA", "is not an SSH public key"),
    ],
)
def test_a_key_that_is_not_a_key(key, why):
    got = problems(host(users={"pal": {"ssh_keys": [ED25519, key]}}))
    assert why in got["palplat:host:users:pal:ssh_keys:1"]


@pytest.mark.parametrize("name", ["Pal", "1pal", "pal user", "pal;rm", "a" * 33, "root", "sshd"])
def test_a_user_name_that_is_not_valid(name):
    got = problems(host(users={name: {}}))
    assert list(got) == [f"palplat:host:users:{name}"]


@pytest.mark.parametrize("pkg", ["two words", "curl;id", "$(id)", "Curl", "-rf", "a|b", ""])
def test_a_package_name_that_is_not_a_package_name(pkg):
    got = problems(host(packages=["jq", pkg]))
    assert "is not a package name" in got["palplat:host:packages:1"]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"Debain": "nfs-common"}, "names the OS family 'Debain'"),
        ({"Debian": "two words"}, "Debian: is not a package name"),
        ({}, "is not a package"),
        (["nfs-common"], "is not a package"),
    ],
)
def test_a_package_per_os_family_that_is_wrong(entry, why):
    got = problems(host(packages=["jq", entry]))
    assert why in got["palplat:host:packages:1"]


def test_package_names_debian_and_arch():
    cfg = config.load(
        {"palplat": host(packages=["jq", "libstdc++6", "python3.11", "gtk2+", "ca-certificates"])}
    )
    assert len(cfg.host.packages) == 5


HAS_TZDB = bool(__import__("zoneinfo").available_timezones())
NEEDS_TZDB = pytest.mark.skipif(not HAS_TZDB, reason="no tz database on this machine")


@pytest.mark.parametrize(
    "tz",
    [
        pytest.param("Mars/Olympus_Mons", marks=NEEDS_TZDB),
        "Europe/Berlin; id",
        "../../etc/passwd",
        pytest.param("UTC+2", marks=NEEDS_TZDB),
    ],
)
def test_a_timezone_not_in_the_tz_database(tz):
    assert "tz database" in problems(host(timezone=tz))["palplat:host:timezone"]


def test_timezone_accepted():
    assert config.load({"palplat": host(timezone="America/Los_Angeles")}).host.timezone


@pytest.mark.parametrize(
    "name", ["net..ipv4", "ip_forward", "net.ipv4.ip forward", "/proc/sys/net", "net.ipv4.x;id"]
)
def test_a_sysctl_name_that_is_not_one(name):
    got = problems(host(sysctl={name: 1}))
    assert "is not a sysctl name" in got[f"palplat:host:sysctl:{name}"]


@pytest.mark.parametrize("value", [True, None, [1], "1\nkernel.x = 2", "a=b"])
def test_a_sysctl_value_that_is_not_one(value):
    assert "palplat:host:sysctl:vm.swappiness" in problems(host(sysctl={"vm.swappiness": value}))


def test_bad_values_elsewhere_in_host():
    got = problems(
        host(
            kernel_modules=["br_netfilter", "bad module"],
            journald={"system_max_use": "lots"},
            auto_updates={"reboot_time": "25:00"},
            time_sync={"servers": ["pool ntp org"]},
            users={"pal": {"shell": "bash", "uid": 0}},
            tailscale={"tags": ["k3s"]},
        )
    )
    assert set(got) == {
        "palplat:host:kernel_modules:1",
        "palplat:host:journald:system_max_use",
        "palplat:host:auto_updates:reboot_time",
        "palplat:host:time_sync:servers:0",
        "palplat:host:users:pal:shell",
        "palplat:host:users:pal:uid",
        "palplat:host:tailscale:tags:0",
    }


def test_ssh_port_and_the_firewall_management_port_agree():
    got = problems({"host": {"ssh": {"port": 2222}}, "firewall": {"management": {"ssh_port": 22}}})
    assert "locked out" in got["palplat:host:ssh:port"]
    ok = {"host": {"ssh": {"port": 2222}}, "firewall": {"management": {"ssh_port": 2222}}}
    config.load({"palplat": ok})
    # disabled firewall: nothing to agree with
    config.load({"palplat": {"host": {"ssh": {"port": 2222}}, "firewall": {"enabled": False}}})


def test_key_only_sshd_needs_an_account_with_a_key():
    got = problems(host(ssh={"manage": True}, users={"pal": {}}))
    assert "nobody could log in" in got["palplat:host:users"]


def test_tailscale_needs_a_pinned_version():
    got = problems(host(tailscale={"enabled": True, "auth_key": "tskey-auth-x"}))
    assert "palplat:host:tailscale:version" in got


def test_tailscale_auth_key_is_a_secret():
    cfg = config.load(
        {
            "palplat": host(
                tailscale={"enabled": True, "version": "1.76.6", "auth_key": "tskey-auth-123"}
            )
        }
    )
    assert str(cfg.host.tailscale.auth_key) == "<hidden>"
    assert "tskey-auth-123" not in cfg.model_dump_json()


@pytest.mark.parametrize("value", [{"key": "tskey-auth-456"}, ["tskey-auth-456"]])
def test_an_auth_key_one_level_too_deep_is_not_shown(value):
    """The pillar error shows what it found for other fields; for a secret it does not."""
    with pytest.raises(PillarError) as exc:
        config.load({"palplat": host(tailscale={"version": "1.76.6", "auth_key": value})})
    assert "palplat:host:tailscale:auth_key: expected a secret scalar" in str(exc.value)
    assert "tskey-auth-456" not in str(exc.value)


@pytest.mark.parametrize("pillar, what", [({}, "is missing"), ({"palplat": None}, "is null")])
def test_a_minion_without_a_palplat_pillar_is_refused_when_required(pillar, what):
    with pytest.raises(PillarError) as exc:
        config.load(pillar, required=True)
    (p,) = exc.value.problems
    assert p.path == "palplat" and what in p.message
    assert config.load(pillar).host.manage  # the library default (tools, tests) is unchanged


def test_loaderkit_env_requires_the_palplat_pillar():
    from palplat import loaderkit

    with pytest.raises(PillarError, match="palplat: is missing"):
        loaderkit.env({}, {}, {"other": 1}, {}).config()


def test_swap_off_read_as_false_by_yaml_means_off():
    from palplat import config

    cfg = config.load({"palplat": {"host": {"swap": False}}})
    assert cfg.host.swap == "off"
