"""The ``palplat:gpu`` pillar section (docs/gpu.md); re-exported by :mod:`palplat.model`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator

from palplat.chartref import Chart
from palplat.fields import DnsLabel, Model


def _gpu_enabled(v: Any) -> Any:
    if v == "auto" or isinstance(v, bool):
        return v
    raise ValueError("must be auto, true or false")


class TimeSlicing(Model):
    """GPU time-slicing."""

    replicas: Annotated[int, Field(ge=1, le=64)]
    """Pods that may share one GPU (nvidia.com/gpu = devices x replicas)."""


class DevicePlugin(Model):
    """NVIDIA's device plugin release (the GPU stage installs it on GPU nodes)."""

    chart: Chart = Chart(
        repo="https://nvidia.github.io/k8s-device-plugin",
        name="nvidia-device-plugin",
        version="0.17.1",
    )
    namespace: DnsLabel = "nvidia-device-plugin"
    """Namespace of the device plugin release."""
    time_slicing: TimeSlicing | None = None
    """Share each GPU between pods (off by default)."""
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Chart values merged over palplat's (runtimeClassName nvidia, a node "
        "selector on nvidia.com/gpu.present=true, the time-slicing config).",
    )


class ToolkitRepo(Model):
    """NVIDIA's container-toolkit apt repository (Debian and Ubuntu)."""

    url: str = Field(
        "https://nvidia.github.io/libnvidia-container/stable/deb/{arch}",
        description="Repository base ({arch}: the Debian architecture, e.g. amd64).",
    )
    key_url: str = Field(
        "https://nvidia.github.io/libnvidia-container/gpgkey",
        description="Signing key (http(s), file:// or salt://); installed only when its "
        "fingerprint is key_fingerprint.",
    )
    key_fingerprint: Annotated[str, Field(pattern=r"^[0-9A-F]{40}$")] = Field(
        "C95B321B61E88C1809C4F759DDCAE044F796ECB0",
        description="Pinned fingerprint of the repository's signing key (primary key).",
    )
    keyring: str = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
    """Where the signing key is installed."""
    file: str = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
    """The apt sources file palplat writes."""


class Gpu(Model):
    """The GPU stage: driver, container toolkit, k3s's nvidia runtime, device plugin; per node. See
    docs/gpu.md.
    """

    enabled: Annotated[
        Any,
        PlainValidator(_gpu_enabled, json_schema_input_type=Literal["auto"] | bool),
        Field(
            description="auto: only on nodes where an NVIDIA display device is found (per "
            "node). true: fail on a node without one. false: the GPU stage does nothing."
        ),
    ] = "auto"
    driver: Literal["nvidia-open", "nvidia"] = Field(
        "nvidia-open", description="Kernel module flavour: open (Turing and newer) or proprietary."
    )
    driver_branch: Annotated[str, Field(pattern=r"^[0-9]{3}(-server)?$")] = Field(
        "580", description="Ubuntu's driver branch (nvidia-driver-<branch>[-open])."
    )
    driver_managed: Literal["auto", "palplat", "external"] = Field(
        "auto",
        description="palplat: install the distribution's driver packages. external: the "
        "driver comes from elsewhere (NVIDIA's installer, the CUDA repository, the image); "
        "only checked. auto: palplat's where its package is installed or no driver is "
        "loaded; a loaded, healthy driver of the wanted branch from elsewhere is left alone.",
    )
    debian_non_free: bool = Field(
        True,
        description="Debian: add the contrib, non-free and non-free-firmware components "
        "(the driver packages live there) in a sources file of their own.",
    )
    debian_mirror: str = "http://deb.debian.org/debian"
    """Debian mirror of the non-free components (the driver packages)."""
    container_toolkit: bool = Field(
        True, description="Install nvidia-container-toolkit (false: it is provided otherwise)."
    )
    toolkit_repo: ToolkitRepo = ToolkitRepo()
    toolkit_from: str | None = Field(
        None,
        description="A directory on the node holding nvidia-container-runtime, nvidia-ctk "
        "and nvidia-cdi-hook (air-gapped hosts, the GPU proof kit): installed from there into "
        "toolkit_dir with a CDI-mode runtime config, instead of the package.",
    )
    toolkit_dir: Annotated[str, Field(pattern=r"^/[^\n\r]*$")] = Field(
        "/usr/local/nvidia/toolkit",
        description="Where toolkit_from installs the binaries: k3s looks there first (as "
        "the GPU Operator installs it), then on its PATH (e.g. /usr/local/bin, for a host "
        "whose /usr/local/nvidia is read-only).",
    )
    default_runtime: bool = Field(
        False,
        description="Make nvidia k3s's default runtime on GPU nodes (default-runtime: nvidia in "
        "a k3s config drop-in); pods then need no runtimeClassName.",
    )
    verify_timeout: Annotated[int, Field(ge=10, le=3600)] = Field(
        300, description="Seconds to wait for each GPU node's nvidia.com/gpu allocatable."
    )
    device_plugin: DevicePlugin = DevicePlugin()
    root: str = Field(
        "/",
        description="Filesystem root the GPU stage reads (sysfs, procfs, modules) and writes "
        "(keyring, k3s drop-in) under; tests point it at a tmp dir.",
    )
