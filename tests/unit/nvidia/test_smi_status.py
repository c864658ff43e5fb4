"""``nvidia-smi -q -x`` parsing (the reference host's real output and a two-GPU one of
our own), running it, and the operator's status table."""

from __future__ import annotations

import re

import pytest

from palplat import nvidia
from palplat.errors import PalplatError
from palplat.nvidia import smi, stage
from tests.unit.nvidia import trees

TWO_GPUS = """<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
  <driver_version>570.86.15</driver_version>
  <cuda_version>12.8</cuda_version>
  <attached_gpus>2</attached_gpus>
  <gpu id="00000000:3B:00.0">
    <product_name>NVIDIA L4</product_name>
    <uuid>GPU-aaaa</uuid>
    <fb_memory_usage><total>23034 MiB</total></fb_memory_usage>
    <mig_mode><current_mig>N/A</current_mig></mig_mode>
  </gpu>
  <gpu id="00000000:5E:00.0">
    <product_name>NVIDIA L4</product_name>
    <uuid>GPU-bbbb</uuid>
    <fb_memory_usage><total>23034 MiB</total></fb_memory_usage>
  </gpu>
</nvidia_smi_log>
"""


def test_reference_xml():
    ref = trees.need_reference()
    got = smi.parse((ref / "nvidia-smi-q.xml").read_text())
    assert (got["driver_version"], got["cuda_version"], got["attached_gpus"]) == (
        trees.REF_VERSION,
        "13.0",
        "1",
    )
    [g] = got["gpus"]
    assert g["bus_id"] == trees.REF_BUS  # nvidia-smi's 8-digit domain normalized
    assert (g["model"], g["uuid"], g["memory_mib"], g["memory"]) == (
        trees.REF_MODEL,
        trees.REF_UUID,
        81559,
        "81559 MiB",
    )
    assert (g["architecture"], g["persistence_mode"], g["mig_mode"]) == (
        "Hopper",
        "Enabled",
        "Disabled",
    )


def test_reference_xml_agrees_with_the_text_output():
    ref = trees.need_reference()
    [g] = smi.parse((ref / "nvidia-smi-q.xml").read_text())["gpus"]
    text = (ref / "nvidia-smi-q.txt").read_text()
    assert re.search(rf"Product Name\s+: {re.escape(g['model'])}", text)
    assert re.search(r"FB Memory Usage\s+Total\s+: 81559 MiB", text)
    assert re.search(rf"GPU UUID\s+: {g['uuid']}", text)
    assert re.search(rf"Driver Version\s+: {trees.REF_VERSION}", text)


def test_two_gpus_and_na_values():
    got = smi.parse(TWO_GPUS)
    assert [g["bus_id"] for g in got["gpus"]] == ["0000:3b:00.0", "0000:5e:00.0"]
    assert got["gpus"][0]["mig_mode"] is None  # N/A
    assert got["gpus"][1]["memory"] == "23034 MiB"


def test_not_xml():
    with pytest.raises(PalplatError, match="not XML"):
        smi.parse("NVIDIA-SMI has failed because it couldn't communicate with the driver")


def _fake_smi(root, body):
    path = root / "usr/local/nvidia/bin/nvidia-smi"
    path.parent.mkdir(parents=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_read_runs_the_binary_found_under_root(tmp_path):
    xml = tmp_path / "out.xml"
    xml.write_text(TWO_GPUS)
    exe = _fake_smi(tmp_path, f'#!/bin/sh\n[ "$1 $2" = "-q -x" ] || exit 9\ncat {xml}\n')
    assert smi.find_smi(str(tmp_path)) == str(exe)
    assert smi.read(str(tmp_path))["driver_version"] == "570.86.15"


def test_read_without_the_binary_and_with_a_failing_one(tmp_path):
    assert smi.read(str(tmp_path)) is None
    _fake_smi(
        tmp_path,
        "#!/bin/sh\necho 'Failed to initialize NVML: Driver/library version "
        "mismatch' >&2\nexit 18\n",
    )
    got = smi.read(str(tmp_path))
    assert got["gpus"] == [] and "version mismatch" in got["error"]


def test_status_table_on_the_reference_host():
    ref = trees.need_reference()
    det = nvidia.detect(str(ref / "root"))
    parsed = smi.parse((ref / "nvidia-smi-q.xml").read_text())
    rows = stage.status_rows(det, parsed, node_allocatable=4)
    assert rows == [
        {
            "bus_id": trees.REF_BUS,
            "model": trees.REF_MODEL,
            "uuid": trees.REF_UUID,
            "memory": "81559 MiB",
            "driver": trees.REF_VERSION,
            "kernel_driver": "nvidia",
            "allocatable": 4,
        }
    ]
    table = stage.render_table(rows).splitlines()
    assert table[0].split() == ["BUS", "ID", "MODEL", "MEMORY", "DRIVER", "ALLOCATABLE"]
    assert table[1].split() == [
        trees.REF_BUS,
        "NVIDIA",
        "H100",
        "80GB",
        "HBM3",
        "81559",
        "MiB",
        trees.REF_VERSION,
        "4",
    ]


def test_status_without_smi_and_cluster(tmp_path):
    root = trees.tiny_tree(tmp_path, gpus=2)
    rows = stage.status_rows(nvidia.detect(str(root)), None, node_allocatable=8)
    assert [(r["model"], r["memory"], r["allocatable"]) for r in rows] == [
        (trees.REF_MODEL, None, 4),
        (trees.REF_MODEL, None, 4),
    ]
    assert [r["allocatable"] for r in stage.status_rows(nvidia.detect(str(root)), None, 3)] == [
        3,
        3,
    ]
    assert "-" in stage.render_table(stage.status_rows(nvidia.detect(str(root)), None, None))
