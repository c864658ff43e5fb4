{#- Platform stage: the pinned helm (palplat:platform:helm), then every Helm release of
    palplat:platform:releases (plus the GPU device plugin) in `needs` order, with the
    objects palplat creates beside them: the CloudNativePG Clusters of releases with
    `database` (after CloudNativePG, before the releases that use them) and the Tailscale
    ingresses and blackbox Probes of releases with `expose` (after every release). One
    state, so a run plans everything once; a release whose fingerprint and live objects
    match costs no helm call. See docs/platform.md. -#}

palplat-platform-valid:
  palplat_config.validated

palplat-platform-helm:
  palplat_helm.installed:
    - require:
      - palplat_config: palplat-platform-valid

palplat-platform-releases:
  palplat_platform.converged:
    - require:
      - palplat_helm: palplat-platform-helm
