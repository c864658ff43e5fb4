{#- state.apply palplat: every minion-side stage in order (what palplat.full runs per minion). -#}
include:
  - palplat.host
  - palplat.firewall
  - palplat.k3s
  - palplat.gpu
  - palplat.platform
  - palplat.service
