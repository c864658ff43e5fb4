{#- Platform stage: the pinned helm (palplat:platform:helm), then every Helm release of
    palplat:platform:releases (plus the GPU device plugin) in `needs` order. One state, so
    a run lists releases once; a release whose fingerprint and live objects match costs
    no helm call. -#}

palplat-platform-valid:
  palplat_config.validated

palplat-platform-helm:
  palplat_helm.installed:
    - require:
      - palplat_config: palplat-platform-valid

palplat-platform-releases:
  palplat_helm.platform:
    - require:
      - palplat_helm: palplat-platform-helm
