"""Detection on what a real H100 host showed, on trees derived from it, and on trees the
tests write from scratch."""

from __future__ import annotations

import pytest

from palplat import nvidia
from palplat.errors import PalplatError
from palplat.model import PalplatPillar
from palplat.nvidia import hardware, module
from tests.unit.nvidia import trees


def cfg(root, enabled="auto", **gpu):
    return PalplatPillar.model_validate({"gpu": {"enabled": enabled, "root": str(root), **gpu}})


# ------------------------------------------------------------------- the real host


def test_reference_h100_host():
    ref = trees.need_reference() / "root"
    det = nvidia.detect(str(ref))
    assert det.present
    assert [(d.bus_id, d.device_id, d.pci_class, d.driver) for d in det.devices] == [
        (trees.REF_BUS, "0x2330", "0x030200", "nvidia")
    ]
    # 6 other PCI devices (host bridge, virtio) are not GPUs
    assert len(list((ref / "sys/bus/pci/devices").iterdir())) == 7
    assert det.loaded.loaded and det.loaded.version == trees.REF_VERSION
    assert det.loaded.flavor == "open"
    # the captured tree has no sys/module: the version comes from the NVRM line
    assert det.loaded.source == "/proc/driver/nvidia/version"
    [g] = det.gpus
    assert (g.bus_id, g.model, g.uuid, g.minor, g.excluded) == (
        trees.REF_BUS,
        trees.REF_MODEL,
        trees.REF_UUID,
        0,
        False,
    )
    # no lib/modules and no osrelease in the capture: nothing to compare, no reboot
    assert det.installed is None and not det.reboot_required
    g = nvidia.gate(cfg(ref))
    assert g.active and trees.REF_BUS in g.reason


def test_reference_facts_agree_with_detection():
    ref = trees.need_reference()
    facts = (ref / "facts.txt").read_text()
    det = nvidia.detect(str(ref / "root"))
    assert "0000:00:06.0 vendor=0x10de device=0x2330 class=0x030200 driver=nvidia" in facts
    assert f"## /sys/module/nvidia/version\n{det.loaded.version}" in facts
    assert "Open Kernel Module" in facts and det.loaded.flavor == "open"


def test_reference_without_a_gpu(tmp_path):
    root = trees.copy_reference(tmp_path / "root")
    trees.remove_device(root, trees.REF_BUS)
    trees.unload(root)
    det = nvidia.detect(str(root))
    assert not det.present and det.gpus == [] and not det.loaded.loaded
    g = nvidia.gate(cfg(root))
    assert not g.active and "nothing to do" in g.reason
    with pytest.raises(PalplatError, match="enabled is true but no NVIDIA display device"):
        nvidia.gate(cfg(root, enabled=True))
    off = nvidia.gate(cfg(root, enabled=False))
    assert not off.active and off.detection is None


def test_reference_with_two_gpus(tmp_path):
    root = trees.copy_reference(tmp_path / "root")
    trees.pci_device(root, "0000:00:07.0", link=False)
    trees.gpu_info(root, "0000:00:07.0", uuid="GPU-second", minor=1)
    det = nvidia.detect(str(root))
    assert [d.bus_id for d in det.devices] == [trees.REF_BUS, "0000:00:07.0"]
    assert [g.uuid for g in det.gpus] == [trees.REF_UUID, "GPU-second"]
    c = cfg(root, device_plugin={"time_slicing": {"replicas": 4}})
    assert nvidia.verify.expected(c, det) == 8


def test_reference_with_a_non_nvidia_display_device(tmp_path):
    root = trees.copy_reference(tmp_path / "root")
    trees.remove_device(root, trees.REF_BUS)
    trees.unload(root)
    # a virtio GPU (VGA class, another vendor) and an NVIDIA HDMI audio function
    trees.pci_device(root, "0000:00:08.0", vendor="0x1af4", device="0x1050", cls="0x030000")
    trees.pci_device(root, "0000:00:09.0", device="0x22ba", cls="0x040300", driver=None)
    det = nvidia.detect(str(root))
    assert not det.present
    assert not nvidia.gate(cfg(root)).active


def test_reference_driver_installed_but_not_loaded(tmp_path):
    root = trees.copy_reference(tmp_path / "root")
    trees.unload(root)
    trees.installed(root, trees.REF_VERSION)
    det = nvidia.detect(str(root))
    assert det.present and not det.loaded.loaded
    assert det.installed.version == trees.REF_VERSION and det.installed.flavor == "open"
    assert det.installed.path == f"/lib/modules/{trees.KERNEL}/updates/dkms/nvidia.ko"
    assert not det.reboot_required  # nothing loaded to differ from; the link check says so
    links = nvidia.verify.host_links(cfg(root), det)
    assert [(lk.name, lk.ok) for lk in links[:2]] == [("driver", True), ("module loaded", False)]
    assert "installed but not loaded" in links[1].detail


def test_reference_installed_and_loaded_versions_differ(tmp_path):
    root = trees.copy_reference(tmp_path / "root")
    trees.installed(root, "580.200.01")
    det = nvidia.detect(str(root))
    assert det.loaded.version == trees.REF_VERSION
    assert det.installed.version == "580.200.01"
    assert det.reboot_required
    assert det.as_dict()["module"]["reboot_required"] is True
    link = nvidia.verify.host_links(cfg(root), det)[1]
    assert not link.ok
    assert link.detail == (
        "reboot required: the installed nvidia module is 580.200.01, the loaded one is 580.159.04"
    )


# ------------------------------------------------------------- trees of our own


def test_tiny_tree(tmp_path):
    root = trees.tiny_tree(tmp_path, gpus=2)
    det = nvidia.detect(str(root))
    assert [d.bus_id for d in det.devices] == ["0000:00:06.0", "0000:00:07.0"]
    assert all(d.driver == "nvidia" for d in det.devices)  # bound through a symlink
    assert det.loaded.source == "/sys/module/nvidia/version"
    assert det.kernel == trees.KERNEL
    assert det.installed.version == det.loaded.version and not det.reboot_required


def test_sys_module_version_wins_over_the_nvrm_line(tmp_path):
    trees.pci_device(tmp_path, "0000:01:00.0", cls="0x030000")
    trees.loaded(tmp_path, "550.1.2", sys_module=False)
    (tmp_path / "sys/module/nvidia").mkdir(parents=True)
    (tmp_path / "sys/module/nvidia/version").write_text("550.9.9\n")
    lm = hardware.loaded_module(str(tmp_path))
    assert (lm.version, lm.flavor, lm.source) == ("550.9.9", "open", "/sys/module/nvidia/version")


def test_proprietary_module(tmp_path):
    trees.loaded(tmp_path, "535.104.05", flavor="proprietary", sys_module=False)
    lm = hardware.loaded_module(str(tmp_path))
    assert (lm.loaded, lm.version, lm.flavor) == (True, "535.104.05", "proprietary")
    trees.installed(tmp_path, "535.104.05", flavor="proprietary")
    assert nvidia.installed_module(str(tmp_path), trees.KERNEL).flavor == "proprietary"


def test_nothing_at_all(tmp_path):
    det = nvidia.detect(str(tmp_path))
    assert not det.present and not det.loaded.loaded and det.installed is None
    assert det.kernel is None  # a tmp root without procfs does not fall back to uname


@pytest.mark.parametrize("compress", [None, "xz", "gz"])
def test_installed_module_compressed(tmp_path, compress):
    rel = "kernel/nvidia-570-open/nvidia.ko"
    trees.installed(tmp_path, "570.86.15", compress=compress, rel=rel)
    inst = nvidia.installed_module(str(tmp_path), trees.KERNEL)
    assert inst.version == "570.86.15"
    assert inst.path.startswith(f"/lib/modules/{trees.KERNEL}/kernel/nvidia-570-open/nvidia.ko")


def test_installed_module_prefers_updates_like_depmod(tmp_path):
    trees.installed(tmp_path, "535.1.1", rel="kernel/drivers/video/nvidia.ko", modules_dep=False)
    trees.installed(tmp_path, "580.2.2", rel="updates/dkms/nvidia.ko", modules_dep=False)
    assert nvidia.installed_module(str(tmp_path), trees.KERNEL).version == "580.2.2"


def test_installed_module_follows_modules_dep(tmp_path):
    trees.installed(tmp_path, "580.2.2", rel="updates/dkms/nvidia.ko", modules_dep=False)
    trees.installed(tmp_path, "575.3.3", rel="extra/nvidia.ko", modules_dep=True)
    assert nvidia.installed_module(str(tmp_path), trees.KERNEL).version == "575.3.3"


def test_installed_module_under_usr_lib(tmp_path):
    """Arch keeps modules in /usr/lib/modules."""
    trees.kernel(tmp_path, "6.12.1-arch1-1")
    data = trees.module_bytes("580.82.07")
    path = tmp_path / "usr/lib/modules/6.12.1-arch1-1/extramodules/nvidia.ko.xz"
    path.parent.mkdir(parents=True)
    import lzma

    path.write_bytes(lzma.compress(data))
    inst = nvidia.installed_module(str(tmp_path), "6.12.1-arch1-1")
    assert inst.version == "580.82.07"
    assert inst.path == "/usr/lib/modules/6.12.1-arch1-1/extramodules/nvidia.ko.xz"


def test_modinfo_ignores_srcversion():
    import re

    data = trees.module_bytes("580.159.04")
    assert re.search(rb"srcversion=", data)
    assert module._VERSION.search(data).group(1) == b"580.159.04"


@pytest.mark.parametrize(
    "raw, want",
    [
        ("00000000:00:06.0", "0000:00:06.0"),
        ("0000:3B:00.0", "0000:3b:00.0"),
        ("00000001:81:00.1", "0001:81:00.1"),
        ("weird", "weird"),
    ],
)
def test_bus_id(raw, want):
    assert nvidia.bus_id(raw) == want
