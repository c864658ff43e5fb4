{#- GPU stage (between k3s and platform): NVIDIA driver -> container toolkit -> k3s's
    nvidia runtime and the RuntimeClass -> node label -> device plugin release -> the
    node's nvidia.com/gpu allocatable. Each state requires the validation and the one
    before it, so the first failure (e.g. "reboot required") stops the chain for this node.
    palplat:gpu:enabled auto acts only on nodes where an NVIDIA device is found: on a node
    without one every state returns "nothing to do". See docs/gpu.md. -#}

palplat-gpu-valid:
  palplat_config.validated

palplat-gpu-driver:
  palplat_nvidia.driver:
    - name: nvidia-driver
    - require:
      - palplat_config: palplat-gpu-valid

palplat-gpu-toolkit:
  palplat_nvidia.toolkit:
    - name: nvidia-container-toolkit
    - require:
      - palplat_config: palplat-gpu-valid
      - palplat_nvidia: palplat-gpu-driver

palplat-gpu-runtime:
  palplat_nvidia.runtime:
    - name: k3s-nvidia-runtime
    - require:
      - palplat_config: palplat-gpu-valid
      - palplat_nvidia: palplat-gpu-toolkit

palplat-gpu-node-label:
  palplat_nvidia.labeled:
    - name: nvidia.com/gpu.present
    - require:
      - palplat_config: palplat-gpu-valid
      - palplat_nvidia: palplat-gpu-runtime

palplat-gpu-device-plugin:
  palplat_nvidia.device_plugin:
    - name: nvidia-device-plugin
    - require:
      - palplat_config: palplat-gpu-valid
      - palplat_nvidia: palplat-gpu-node-label

palplat-gpu-verified:
  palplat_nvidia.verified:
    - name: nvidia.com/gpu
    - require:
      - palplat_config: palplat-gpu-valid
      - palplat_nvidia: palplat-gpu-device-plugin
