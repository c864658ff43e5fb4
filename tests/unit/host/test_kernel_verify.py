"""Kernel modules (also built in), swap off, and the verification of the host stage,
against fake roots and recorded argv."""

import os

import pytest

from palplat import config, proc
from palplat.errors import PalplatError
from palplat.host import kernel, settings, verify

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd pal@laptop"


class Runner:
    def __init__(self, answers=None):
        self.argv = []
        self.answers = answers or {}

    def __call__(self, argv, check=True, timeout=None, **kw):
        self.argv.append(list(argv))
        out, rc = self.answers.get(argv[0], ("", 0))
        if callable(out):
            out = out(argv)
        return proc.Result(list(argv), rc, out, "")


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_modules_available_loaded_builtin_or_by_feature(tmp_path):
    write(tmp_path, "proc/modules", "nf_tables 348160 0 - Live 0x0\n")
    (tmp_path / "sys/module/veth").mkdir(parents=True)
    write(
        tmp_path,
        f"lib/modules/{os.uname().release}/modules.builtin",
        "kernel/net/ipv4/ip_tunnel.ko\n",
    )
    write(tmp_path, "proc/sys/net/bridge/bridge-nf-call-iptables", "0\n")
    write(tmp_path, "proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n")
    for m in ("nf_tables", "veth", "ip_tunnel", "br_netfilter", "overlay"):
        assert kernel.module_available(m, tmp_path), m
    assert kernel.missing_modules(["overlay", "wireguard"], tmp_path) == ["wireguard"]


def test_load_modules_modprobes_only_the_missing_and_verifies(tmp_path):
    write(tmp_path, "proc/filesystems", "nodev\toverlay\n")

    def modprobe(argv):
        (tmp_path / "sys/module" / argv[1]).mkdir(parents=True)
        return ""

    run = Runner({"modprobe": (modprobe, 0)})
    assert kernel.load_modules(["overlay", "wireguard"], tmp_path, run) == ["wireguard"]
    assert run.argv == [["modprobe", "wireguard"]]
    with pytest.raises(PalplatError, match="still not available"):
        kernel.load_modules(["nosuch"], tmp_path, Runner())

    # modprobe's own error and the pillar path, not a bare CommandError
    def failing(argv, check=True, timeout=None, **kw):
        assert check is False
        return proc.Result(list(argv), 1, "", "modprobe: FATAL: Module nosuch not found")

    with pytest.raises(PalplatError) as exc:
        kernel.load_modules(["nosuch"], tmp_path, failing)
    assert "Module nosuch not found" in str(exc.value)
    assert "palplat:host:kernel_modules" in str(exc.value)


def test_swap_plan_and_off(tmp_path):
    write(tmp_path, "proc/swaps", "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n")
    fstab = "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n"
    write(tmp_path, "etc/fstab", fstab)
    plan = kernel.swap_plan(tmp_path)
    assert plan["active"] == {"old": ["/swapfile"], "new": []}
    assert plan["fstab"]["old"] == ["/swapfile none swap sw 0 0"]

    def swapoff(argv):
        write(tmp_path, "proc/swaps", "Filename Type Size Used Priority\n")
        return ""

    run = Runner({"swapoff": (swapoff, 0)})
    changes = kernel.swap_off(tmp_path, run)
    assert changes == plan and run.argv == [["swapoff", "/swapfile"]]
    text = (tmp_path / "etc/fstab").read_text()
    assert "#palplat-swap-off# /swapfile none swap sw 0 0\n" in text
    assert text.startswith("UUID=1 / ext4 defaults 0 1\n") and "# /old none swap" in text
    assert kernel.swap_plan(tmp_path) == {}


def test_swap_still_on_is_an_error(tmp_path):
    write(tmp_path, "proc/swaps", "Filename Type Size Used Priority\n/dev/sda2 partition 1 0 -2\n")
    write(tmp_path, "etc/fstab", "")
    with pytest.raises(PalplatError, match="swap is still on"):
        kernel.swap_off(tmp_path, Runner())


# ------------------------------------------------------------------------- verify

SSHD_T = """port 22
permitrootlogin no
passwordauthentication no
kbdinteractiveauthentication no
pubkeyauthentication yes
authenticationmethods publickey
usepam yes
"""


def test_sshd_effective_config():
    expected = {"port": "22", "passwordauthentication": "no", "permitrootlogin": "no"}
    assert verify.sshd(expected, Runner({"sshd": (SSHD_T, 0)})) is None
    bad = verify.sshd(expected, Runner({"sshd": (SSHD_T.replace("port 22", "port 2222"), 0)}))
    assert "'port': '2222'" in bad
    assert "sshd -T failed" in verify.sshd(expected, Runner({"sshd": ("", 255)}))


def test_sysctl_values_and_timezone(tmp_path):
    write(tmp_path, "proc/sys/net/ipv4/ip_forward", "1\n")
    write(tmp_path, "proc/sys/net/ipv4/tcp_rmem", "4096\t131072\t6291456\n")
    assert (
        verify.sysctl(
            {"net.ipv4.ip_forward": 1, "net.ipv4.tcp_rmem": "4096 131072 6291456"}, tmp_path
        )
        is None
    )
    assert "ip_forward" in verify.sysctl({"net.ipv4.ip_forward": 0}, tmp_path)
    assert "unreadable" in verify.sysctl({"net.nope": 0}, tmp_path)
    (tmp_path / "etc").mkdir(exist_ok=True)
    os.symlink("/usr/share/zoneinfo/Europe/Berlin", tmp_path / "etc/localtime")
    assert verify.timezone("Europe/Berlin", tmp_path) is None
    assert "not Etc/UTC" in verify.timezone("Etc/UTC", tmp_path)


def test_service_checks_skip_what_systemd_skips_in_a_container(tmp_path):
    run = Runner({"systemctl": ("inactive\n", 3)})
    assert "inactive" in verify.service_active("systemd-timesyncd", run, tmp_path)
    write(tmp_path, "run/systemd/container", "systemd-nspawn\n")
    assert verify.service_active("systemd-timesyncd", run, tmp_path) is None


def test_checks_follow_the_settings():
    c = config.load(
        {"palplat": {"host": {"users": {"pal": {"ssh_keys": [KEY]}}, "timezone": "Etc/UTC"}}}
    )
    names = set(verify.checks(settings.settings(c)))
    assert names == {
        "users",
        "sshd",
        "modules",
        "sysctl",
        "swap",
        "timezone",
        "time_sync",
        "auto_updates",
    }
    bare = config.load(
        {
            "palplat": {
                "host": {
                    "k3s_prerequisites": False,
                    "swap": "keep",
                    "time_sync": {"enabled": False},
                    "auto_updates": {"enabled": False},
                }
            }
        }
    )
    assert set(verify.checks(settings.settings(bare))) == set()


def test_auto_updates_from_apt_config():
    ok = 'APT::Periodic "";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    assert verify.auto_updates(Runner({"apt-config": (ok, 0)})) is None
    assert "Unattended-Upgrade" in verify.auto_updates(Runner({"apt-config": ("", 0)}))
