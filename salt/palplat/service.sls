{#- Service onboarding: salt-call state.apply palplat.service
    Every palplat:services entry (merged with services:defaults) gets its namespace
    (quota, limits, default-deny NetworkPolicies), Harbor project and robots, Woodpecker
    activation and pipeline secrets, Argo CD Application, Tailscale Funnel ingress,
    monitoring, optional CloudNativePG database with backups, and its secrets.
    absent: true offboards (data stays unless delete_data: true); entries removed from
    the pillar are reported as orphaned and left alone. See docs/services.md. -#}

palplat-service-valid:
  palplat_config.validated

palplat-services:
  palplat_service.onboarded:
    - require:
      - palplat_config: palplat-service-valid
