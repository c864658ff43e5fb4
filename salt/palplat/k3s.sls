{#- k3s stage: the pinned binary, config.yaml + registries.yaml, the unit for the node's
    role, readiness, and the kubeconfig every Kubernetes/Helm state uses.
    palplat:k3s:mode: external skips installation and only checks the kubeconfig.
    Version changes of an installed k3s go through `salt-run palplat_k3s.upgrade`
    (palplat.k3s_upgrade): servers one at a time, agents cordoned and drained. -#}

palplat-k3s-valid:
  palplat_config.validated

palplat-k3s-installed:
  palplat_k3s.installed:
    - name: k3s
    - require:
      - palplat_config: palplat-k3s-valid

palplat-k3s-configured:
  palplat_k3s.configured:
    - name: k3s
    - require:
      - palplat_k3s: palplat-k3s-installed

palplat-k3s-running:
  palplat_k3s.running:
    - name: k3s
    - require:
      - palplat_k3s: palplat-k3s-configured

palplat-k3s-kubeconfig:
  palplat_k3s.kubeconfig:
    - name: k3s
    - require:
      - palplat_k3s: palplat-k3s-running
