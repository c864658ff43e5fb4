"""What host.sls renders: packages, accounts, file texts, per OS family; and the host
checks that run on the minion (kernel parameters, tz database) against a fake root."""

import pytest

from palplat import config
from palplat.host import facts, settings

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd pal@laptop"


def cfg(**palplat):
    return config.load({"palplat": palplat})


def test_defaults_k3s_prerequisites_and_no_sshd_without_an_account():
    s = settings.settings(cfg())
    assert s["modules"]["names"] == ["br_netfilter", "overlay"]
    assert s["sysctl"]["values"] == settings.K3S_SYSCTL
    assert s["sshd"] is None and "sshd" in s["skipped"]
    assert s["packages"] == ["systemd-timesyncd", "unattended-upgrades"]
    assert s["swap"] == "off"


def test_sysctl_and_modules_merge_over_the_prerequisites():
    s = settings.settings(
        cfg(
            host={
                "kernel_modules": ["overlay", "wireguard"],
                "sysctl": {"net.ipv4.ip_forward": 0, "vm.max_map_count": 262144},
            }
        )
    )
    assert s["modules"]["names"] == ["br_netfilter", "overlay", "wireguard"]
    assert s["sysctl"]["values"]["net.ipv4.ip_forward"] == 0
    assert s["sysctl"]["values"]["vm.max_map_count"] == 262144
    assert s["modules"]["file"]["text"].endswith("br_netfilter\noverlay\nwireguard\n")
    off = settings.settings(cfg(host={"k3s_prerequisites": False}))
    assert off["modules"] is None and off["sysctl"] is None


def test_sshd_follows_the_firewall_port_and_is_key_only():
    s = settings.settings(
        cfg(
            host={"users": {"pal": {"ssh_keys": [KEY], "sudo": True}}},
            firewall={"management": {"ssh_port": 2202}},
        )
    )
    text = s["sshd"]["file"]["text"]
    assert (
        "Port 2202\n" in text
        and "PasswordAuthentication no\n" in text
        and "PermitRootLogin no\n" in text
    )
    assert s["sshd"]["expected"]["port"] == "2202"
    assert s["sshd"]["file"]["path"] == "/etc/ssh/sshd_config.d/00-palplat.conf"
    assert s["sshd"]["service"] == "ssh"
    assert s["users"]["pal"]["sudoers"]["text"] == "pal ALL=(ALL) NOPASSWD:ALL\n"
    assert s["users"]["pal"]["sudoers"]["mode"] == "0440"
    assert "sudo" in s["packages"]


def test_sshd_left_alone_when_not_managed():
    s = settings.settings(
        cfg(host={"users": {"pal": {"ssh_keys": [KEY]}}, "ssh": {"manage": False}})
    )
    assert s["sshd"] is None


def test_arch_has_no_unattended_upgrades_and_its_own_ssh_unit():
    s = settings.settings(cfg(host={"users": {"pal": {"ssh_keys": [KEY]}}}), "Arch")
    assert s["auto_updates"] is None and "Arch" in s["skipped"]["auto_updates"]
    assert s["sshd"]["service"] == "sshd"
    # timesyncd is part of Arch's systemd; its OpenSSH package is called openssh
    assert s["packages"] == ["openssh"] and s["reload_modules"] is True


def test_packages_per_os_family_and_what_the_stages_rely_on():
    nfs = {"Debian": "nfs-common", "RedHat": "nfs-utils", "Arch": "nfs-utils"}
    pillar = {"packages": ["curl", nfs, {"Arch": "htop"}], "users": {"pal": {"ssh_keys": [KEY]}}}
    deb = settings.settings(cfg(host=pillar), "Debian")
    assert deb["packages"][:3] == ["curl", "nfs-common", "openssh-server"]
    assert "1 entry of host:packages" in deb["skipped"]["packages"]
    assert deb["firewall_packages"] == ["nftables"]
    rh = settings.settings(cfg(host=pillar), "RedHat")
    assert rh["packages"][:3] == ["curl", "nfs-utils", "openssh-server"]
    arch = settings.settings(cfg(host=pillar), "Arch")
    assert arch["packages"] == ["curl", "nfs-utils", "htop", "openssh"]
    # no accounts with keys: no OpenSSH server forced on the host; no firewall: no nftables
    bare = settings.settings(cfg(host={"packages": ["jq"]}, firewall={"enabled": False}))
    assert "openssh-server" not in bare["packages"] and bare["reload_modules"] is False
    assert bare["firewall_packages"] == []


def test_file_texts():
    s = settings.settings(
        cfg(
            host={
                "time_sync": {"servers": ["0.pool.ntp.org", "1.pool.ntp.org"]},
                "journald": {"system_max_use": "2G", "max_retention": "2week"},
                "auto_updates": {"reboot": True, "reboot_time": "03:30"},
            }
        )
    )
    assert "NTP=0.pool.ntp.org 1.pool.ntp.org\n" in s["time_sync"]["file"]["text"]
    assert "SystemMaxUse=2G\nMaxRetentionSec=2week\n" in s["journald"]["text"]
    unattended = s["auto_updates"]["files"][1]["text"]
    assert 'Automatic-Reboot "true";' in unattended and '"03:30"' in unattended
    assert s["auto_updates"]["files"][0]["text"].startswith("// Managed by palplat")


def test_no_secret_in_settings():
    c = cfg(
        host={
            "tailscale": {
                "enabled": True,
                "version": "1.76.6",
                "auth_key": "tskey-auth-s3cr3t",
                "tags": ["tag:k3s"],
            }
        }
    )
    s = settings.settings(c)
    assert "tskey-auth-s3cr3t" not in repr(s)
    assert s["tailscale"]["tags"] == ["tag:k3s"]


# ------------------------------------------------------------------------ host facts


def fake_root(tmp_path, sysctls=(), zones=()):
    for name in sysctls:
        p = facts.sysctl_path(name, tmp_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("0\n")
    for z in zones:
        p = tmp_path / "usr/share/zoneinfo" / z
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("TZif")
    return tmp_path


def test_sysctl_path():
    assert (
        str(facts.sysctl_path("net.ipv4.conf.eth0/100.rp_filter"))
        == "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
    )


def test_a_sysctl_that_does_not_exist_on_this_host(tmp_path):
    root = fake_root(
        tmp_path, ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"], ["Europe/Berlin"]
    )
    c = cfg(host={"sysctl": {"net.ipv4.no_such": 1}, "timezone": "Europe/Berlin"})
    got = {p.path: p.message for p in facts.problems(c, root)}
    # the bridge sysctls come with br_netfilter, which the stage loads first
    assert list(got) == ["palplat:host:sysctl:net.ipv4.no_such"]
    assert "no such kernel parameter" in got["palplat:host:sysctl:net.ipv4.no_such"]


def test_bridge_sysctls_without_the_module_are_refused(tmp_path):
    root = fake_root(tmp_path, ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"])
    c = cfg(host={"k3s_prerequisites": False, "sysctl": {"net.bridge.bridge-nf-call-iptables": 1}})
    (p,) = facts.problems(c, root)
    assert "br_netfilter" in p.message


def test_a_timezone_missing_from_this_hosts_tz_database(tmp_path):
    root = fake_root(tmp_path, list(settings.K3S_SYSCTL))
    (p,) = facts.problems(cfg(host={"timezone": "Europe/Berlin"}), root)
    assert p.path == "palplat:host:timezone"


def test_no_checks_when_the_host_is_not_managed(tmp_path):
    assert facts.problems(cfg(host={"manage": False, "sysctl": {"a.b": 1}}), tmp_path) == []


@pytest.mark.parametrize("family", ["Debian", "Arch"])
def test_settings_are_plain_data(family):
    import json

    json.dumps(settings.settings(cfg(host={"users": {"pal": {"ssh_keys": [KEY]}}}), family))


def test_a_missing_prerequisite_sysctl_names_the_prerequisites(tmp_path):
    root = fake_root(tmp_path, ["net.ipv4.ip_forward"])  # no IPv6 on this kernel
    (p,) = facts.problems(cfg(), root)
    assert (
        p.path == "palplat:host:k3s_prerequisites" and "net.ipv6.conf.all.forwarding" in p.message
    )


def test_a_kernel_module_this_kernel_does_not_have(tmp_path):
    """A misspelt module is refused before host.sls writes modules-load.d; a kernel with no
    module tree (a container) cannot tell, so nothing is reported there."""
    import os
    import shutil

    root = fake_root(tmp_path, list(settings.K3S_SYSCTL))
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/filesystems").write_text("nodev\toverlay\n")
    c = cfg(host={"kernel_modules": ["wireguard", "wireguardd", "fs-overlay"]})
    assert facts.problems(c, root) == []  # no /lib/modules/<release>: unknown
    base = root / "lib/modules" / os.uname().release
    base.mkdir(parents=True)
    (base / "modules.dep").write_text(
        "kernel/net/bridge/br_netfilter.ko.zst: kernel/net/bridge/bridge.ko.zst\n"
        "kernel/drivers/net/wireguard/wireguard.ko.zst:\n"
    )
    (base / "modules.alias").write_text("alias fs-overlay overlay\n")
    (p,) = facts.problems(c, root)
    assert p.path == "palplat:host:kernel_modules:1" and "no such kernel module" in p.message
    assert "modinfo" in p.message
    (base / "modules.dep").write_text("kernel/drivers/net/wireguard/wireguard.ko:\n")
    shutil.rmtree(root / "proc/sys/net/bridge")  # br_netfilter is not loaded either
    paths = [p.path for p in facts.problems(c, root)]
    assert paths == ["palplat:host:k3s_prerequisites", "palplat:host:kernel_modules:1"]
