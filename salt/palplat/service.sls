{#- Service onboarding: salt-call state.apply palplat.service
    One palplat:services entry gives a namespace, registry project, CI repo, GitOps app,
    metrics, alerts, TLS ingress and optionally a database. The onboarding states land
    with their own issue; until then this stage validates the services pillar. -#}

palplat-service-valid:
  palplat_config.validated
