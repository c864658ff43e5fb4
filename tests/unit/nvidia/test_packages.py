"""The per-OS package plan (Salt pkgrepo/pkg state calls) and the pinned signing key."""

from __future__ import annotations

import pytest

from palplat.errors import InputError
from palplat.model import Gpu
from palplat.nvidia import keyring, packages

ARCH = {"os_family": "Arch", "os": "Arch", "osarch": "x86_64", "osrelease": "rolling"}
DEBIAN = {
    "os_family": "Debian",
    "os": "Debian",
    "osmajorrelease": 12,
    "osrelease": "12",
    "oscodename": "bookworm",
    "osarch": "amd64",
}
UBUNTU = {
    "os_family": "Debian",
    "os": "Ubuntu",
    "osmajorrelease": 24,
    "osrelease": "24.04",
    "oscodename": "noble",
    "osarch": "amd64",
}
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"


def gpu(**kw):
    return Gpu.model_validate(kw)


def steps(plan):
    return [(s.id, s.state) for s in plan.driver + plan.toolkit]


def pkgs(plan, step_id):
    return next(s.kwargs["pkgs"] for s in plan.driver + plan.toolkit if s.id == step_id)


@pytest.mark.parametrize("driver, first", [("nvidia-open", "nvidia-open"), ("nvidia", "nvidia")])
def test_arch(driver, first):
    p = packages.plan(gpu(driver=driver), ARCH)
    assert p.os == "arch"
    assert steps(p) == [
        ("nvidia-driver", "pkg.installed"),
        ("nvidia-container-toolkit", "pkg.installed"),
    ]
    assert pkgs(p, "nvidia-driver") == [first, "nvidia-utils"]
    assert pkgs(p, "nvidia-container-toolkit") == ["nvidia-container-toolkit"]


def test_debian12_open():
    p = packages.plan(gpu(), DEBIAN)
    assert p.os == "debian12"
    assert steps(p) == [
        ("debian-non-free", "pkgrepo.managed"),
        ("nvidia-driver", "pkg.installed"),
        ("nvidia-container-toolkit-key", "keyring"),
        ("nvidia-container-toolkit-repo", "pkgrepo.managed"),
        ("nvidia-container-toolkit", "pkg.installed"),
    ]
    nonfree = p.driver[0].kwargs
    assert nonfree == {
        "name": "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm contrib non-free non-free-firmware",
        "file": "/etc/apt/sources.list.d/palplat-debian-non-free.list",
        "aptkey": False,
    }
    assert pkgs(p, "nvidia-driver") == [
        "linux-headers-amd64",
        "nvidia-open-kernel-dkms",
        "nvidia-driver",
        "nvidia-smi",
        "firmware-misc-nonfree",
    ]
    key, repo = p.toolkit[0].kwargs, p.toolkit[1].kwargs
    assert key == {
        "path": KEYRING,
        "url": "https://nvidia.github.io/libnvidia-container/gpgkey",
        "fingerprint": "C95B321B61E88C1809C4F759DDCAE044F796ECB0",
    }
    assert repo == {
        "name": f"deb [signed-by={KEYRING}] "
        "https://nvidia.github.io/libnvidia-container/stable/deb/amd64 /",
        "file": "/etc/apt/sources.list.d/nvidia-container-toolkit.list",
        "aptkey": False,
    }


def test_debian12_proprietary_without_non_free_and_toolkit():
    p = packages.plan(gpu(driver="nvidia", debian_non_free=False, container_toolkit=False), DEBIAN)
    assert steps(p) == [("nvidia-driver", "pkg.installed")]
    assert "nvidia-kernel-dkms" in pkgs(p, "nvidia-driver")


@pytest.mark.parametrize(
    "kw, want",
    [
        ({}, ["nvidia-driver-580-open", "nvidia-utils-580"]),
        ({"driver": "nvidia"}, ["nvidia-driver-580", "nvidia-utils-580"]),
        (
            {"driver_branch": "570-server"},
            ["nvidia-driver-570-server-open", "nvidia-utils-570-server"],
        ),
    ],
)
def test_ubuntu2404(kw, want):
    p = packages.plan(gpu(**kw), UBUNTU)
    assert p.os == "ubuntu2404"
    assert steps(p)[0] == ("nvidia-driver", "pkg.installed")  # no extra repo: restricted
    assert pkgs(p, "nvidia-driver") == want
    assert [s.id for s in p.toolkit] == [
        "nvidia-container-toolkit-key",
        "nvidia-container-toolkit-repo",
        "nvidia-container-toolkit",
    ]


def test_arm64_repository():
    p = packages.plan(gpu(), {**UBUNTU, "osarch": "arm64"})
    assert "/stable/deb/arm64 /" in p.toolkit[1].kwargs["name"]


@pytest.mark.parametrize(
    "grains",
    [
        {"os_family": "RedHat", "os": "Rocky", "osrelease": "9.4", "osmajorrelease": 9},
        {**DEBIAN, "osmajorrelease": 11, "osrelease": "11"},
        {**UBUNTU, "osrelease": "22.04"},
    ],
)
def test_unsupported_os(grains):
    with pytest.raises(InputError, match="Arch Linux, Debian 12 and Ubuntu 24.04") as exc:
        packages.plan(gpu(), grains)
    assert grains["osrelease"] in str(exc.value)
    # the way out that works: the driver state plans packages whatever container_toolkit is
    assert "palplat:gpu:enabled: false" in str(exc.value)
    with pytest.raises(InputError):
        packages.plan(gpu(container_toolkit=False), grains)


def test_plan_as_dict_is_plain_data():
    d = packages.plan(gpu(), DEBIAN).as_dict()
    assert d["os"] == "debian12" and d["toolkit"][1]["state"] == "pkgrepo.managed"


# ------------------------------------------------------------------------- keyring


@pytest.fixture(scope="module")
def real_key(tmp_path_factory):
    """An armored public key made by gpg, and the fingerprint gpg reports for it."""
    gnupg = pytest.importorskip("gnupg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    g = gnupg.GPG(gnupghome=str(home))
    key = g.gen_key(
        g.gen_key_input(
            name_real="palplat key test",
            name_email="key@palplat.invalid",
            key_type="RSA",
            key_length=2048,
            subkey_type="RSA",
            subkey_length=2048,
            no_protection=True,
        )
    )
    if not key.fingerprint:
        pytest.skip(f"gpg could not make a key: {key.stderr}")
    return g.export_keys(key.fingerprint), key.fingerprint


def test_fingerprint_matches_gpg(real_key):
    armored, fpr = real_key
    assert keyring.primary_fingerprints(armored.encode()) == [fpr]
    binary = keyring.dearmor(armored.encode())
    assert binary[0] & 0x80 and keyring.primary_fingerprints(binary) == [fpr]
    # the subkey is not a primary key
    assert [t for t, _ in keyring.packets(binary)].count(keyring.PUBLIC_SUBKEY) == 1


def test_keyring_plan_apply_idempotent(tmp_path, real_key):
    armored, fpr = real_key
    src = tmp_path / "gpgkey"
    src.write_text(armored)
    dest = tmp_path / "usr/share/keyrings/nvidia.gpg"
    p = keyring.plan(dest, f"file://{src}", fpr)
    assert p.changed and p.changes["keyring"]["old"] is None and not dest.exists()
    assert keyring.apply(p) == p.changes
    assert dest.read_bytes() == keyring.dearmor(armored.encode())
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    again = keyring.plan(dest, "file:///nonexistent", fpr)  # no fetch when it matches
    assert not again.changed and again.changes == {} and keyring.apply(again) == {}


def test_keyring_refuses_a_key_that_is_not_the_pinned_one(tmp_path, real_key):
    armored, fpr = real_key
    src = tmp_path / "gpgkey"
    src.write_text(armored)
    dest = tmp_path / "nvidia.gpg"
    pinned = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
    with pytest.raises(keyring.KeyError_, match=f"has fingerprint {fpr}, not the pinned {pinned}"):
        keyring.plan(dest, str(src), pinned)
    assert not dest.exists()
    # a keyring on disk with another key is replaced by the pinned one
    dest.write_bytes(b"garbage")
    p = keyring.plan(dest, str(src), fpr)
    assert p.changes["keyring"]["old"] == "unreadable"


def test_old_format_packets():
    body = bytes([4]) + b"\x00" * 20
    old = bytes([0x80 | (6 << 2) | 0, len(body)]) + body
    new = bytes([0xC0 | 6, len(body)]) + body
    assert keyring.packets(old) == keyring.packets(new) == [(6, body)]
    with pytest.raises(keyring.KeyError_):
        keyring.dearmor(b"not a key")
