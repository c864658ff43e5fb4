{#- GPU stage: NVIDIA driver, container toolkit and device plugin.
    The device plugin release is converged by the platform stage (release
    "nvidia-device-plugin", see palplat.config.releases); host driver management lands
    with its own issue. -#}

palplat-gpu-valid:
  palplat_config.validated
