# Example palplat pillar: the platform of shared/examples/seed-platform.sls.
# Secrets are not here: they live in secrets.sls (GPG-encrypted, rendered by Salt's gpg
# renderer) and Salt merges both files under the `palplat` key.
# Editors can validate this file against schema/palplat.schema.json (key: palplat).
palplat:
  host:
    packages: [curl, jq, git, htop, nfs-utils]
    timezone: America/Los_Angeles

  firewall:
    # Management access is never blocked by a palplat change; a change that would cut the
    # session applying it rolls back unless confirmed within confirm_seconds.
    management:
      ssh_port: 22
      allow_from: [100.64.0.0/10, 192.168.1.0/24]
    confirm_seconds: 120
    trusted_interfaces: [tailscale0, cni0, flannel.1]
    allow:
      - {name: k3s-api, proto: tcp, ports: [6443], from: [100.64.0.0/10]}
      - {name: kubelet, proto: tcp, ports: [10250], from: [100.64.0.0/10]}
      - {name: flannel-vxlan, proto: udp, ports: [8472], from: [192.168.1.0/24]}
      - {name: web, proto: tcp, ports: [80, 443]}
    default_policy: drop

  k3s:
    version: v1.33.5+k3s1
    config:
      disable: [traefik, servicelb]
      write-kubeconfig-mode: "0640"
      flannel-backend: vxlan
      kubelet-arg: ["max-pods=150"]
    registries:
      mirrors:
        harbor.tail0000.ts.net:
          endpoint: ["https://harbor.tail0000.ts.net"]
      configs:
        harbor.tail0000.ts.net:
          auth: {username: robot$k3s}

  gpu:
    enabled: auto            # auto: only where an NVIDIA device is present
    driver: nvidia-open
    container_toolkit: true
    device_plugin:
      chart: {repo: https://nvidia.github.io/k8s-device-plugin, name: nvidia-device-plugin, version: 0.20.0}
      time_slicing: {replicas: 4}

  platform:
    # k3s ships no helm: palplat installs this pinned, sha256-verified helm (palplat
    # addition; not in the seed platform).
    helm: {version: v3.22.0}
    releases:
      cnpg:
        namespace: cnpg-system
        chart: {repo: https://cloudnative-pg.github.io/charts, name: cloudnative-pg, version: 0.22.1}
      minio:
        namespace: minio
        chart: {repo: https://charts.min.io/, name: minio, version: 5.2.0}
        values: {mode: standalone, persistence: {size: 200Gi}}
      kube-prometheus-stack:
        namespace: monitoring
        chart: {repo: https://prometheus-community.github.io/helm-charts, name: kube-prometheus-stack, version: 65.1.0}
        values:
          prometheus: {prometheusSpec: {retention: 15d}}
          alertmanager:
            config:
              route: {receiver: telegram}
              receivers: [{name: telegram, telegram_configs: [{chat_id: 123456789}]}]
      loki:
        namespace: monitoring
        needs: [minio]
        chart: {repo: https://grafana.github.io/helm-charts, name: loki, version: 6.16.0}
        values: {loki: {limits_config: {retention_period: 168h}}}
      promtail:
        namespace: monitoring
        needs: [loki]
        chart: {repo: https://grafana.github.io/helm-charts, name: promtail, version: 6.16.6}
      blackbox-exporter:
        namespace: monitoring
        needs: [kube-prometheus-stack]
        chart: {repo: https://prometheus-community.github.io/helm-charts, name: prometheus-blackbox-exporter, version: 9.0.1}
      tailscale-operator:
        namespace: tailscale
        chart: {repo: https://pkgs.tailscale.com/helmcharts, name: tailscale-operator, version: 1.76.1}
      forgejo:
        namespace: forgejo
        needs: [cnpg]
        chart: {oci: oci://code.forgejo.org/forgejo-helm/forgejo, version: 10.0.0}
      woodpecker:
        namespace: woodpecker
        needs: [forgejo, cnpg]
        chart: {oci: oci://ghcr.io/woodpecker-ci/helm/woodpecker, version: 1.6.2}
      harbor:
        namespace: harbor
        chart: {repo: https://helm.goharbor.io, name: harbor, version: 1.15.1}
      keycloak:
        namespace: keycloak
        needs: [cnpg]
        chart: {repo: https://codecentric.github.io/helm-charts, name: keycloakx, version: 2.5.1}
      argocd:
        namespace: argocd
        chart: {repo: https://argoproj.github.io/argo-helm, name: argo-cd, version: 7.6.8}
      argocd-image-updater:
        namespace: argocd
        needs: [argocd, harbor]
        chart: {repo: https://argoproj.github.io/argo-helm, name: argocd-image-updater, version: 0.11.0}
      ollama:
        namespace: ollama
        needs: [nvidia-device-plugin]
        chart: {repo: https://otwld.github.io/ollama-helm/, name: ollama, version: 0.63.0}
        values: {ollama: {gpu: {enabled: true, number: 1}, models: {pull: [qwen3-embedding:4b]}}}

  services:
    defaults:
      registry: harbor.tail0000.ts.net
      forge: https://forgejo.tail0000.ts.net
      deployments_repo: https://forgejo.tail0000.ts.net/pal-e/pal-e-deployments.git
    pal-e-docs:
      repo: pal-e/pal-e-docs
      port: 8000
      funnel: true
      database: {instances: 1, size: 5Gi, backup: {schedule: "0 0 3 * * *", retention: 14d}}
      metrics: {path: /metrics}
    basketball-api:
      repo: pal-e/basketball-api
      port: 8080
      funnel: true
      database: {instances: 1, size: 2Gi}
    pal-e-app:
      repo: pal-e/pal-e-app
      port: 3000
      funnel: true
    westsidekingsandqueens:
      repo: pal-e/westside-app
      port: 3000
      funnel: true
    platform-validation:
      repo: pal-e/platform-validation
      port: 8080
      alerts:
        - {name: ValidationProbeFailing, expr: 'probe_success{job="platform-validation"} == 0', for: 5m, severity: critical}
    gcal-scheduler:
      repo: pal-e/gcal-scheduler
      port: 8080
      database: {instances: 1, size: 1Gi}
