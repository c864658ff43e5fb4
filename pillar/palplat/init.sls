# Example palplat pillar: one GPU host running a small team's platform (~15 Helm releases,
# six services). For a first host, start from quickstart.sls beside this file.
#
# Before you use it:
#   - tail0000.ts.net is a placeholder for your tailnet's DNS name (Tailscale admin
#     console: DNS); it is written out wherever a URL needs it. Replace all of them:
#       sed -i 's/tail0000\.ts\.net/<your-tailnet>.ts.net/g' init.sls secrets.sls
#   - the SSH key, networks (192.168.1.0/24) and the Telegram chat id are examples too.
#   - secrets.sls holds what only you can give (GPG-encrypted: make encrypt). Admin
#     passwords, Woodpecker's Forgejo login and Argo CD's Forgejo token are not there:
#     palplat makes them on the first run and keeps them in cluster Secrets (`generated`,
#     services:defaults:forge). The one thing it cannot make, Woodpecker's API token
#     (it needs a browser login), the first run asks for by name, URL and next step.
# Salt merges both files under the `palplat` key. Editors can validate this file against
# schema/palplat.schema.json (key: palplat).
palplat:
  host:
    # a name per OS family where they differ (the plan checks each against the package index)
    packages: [curl, jq, git, htop, {Debian: nfs-common, RedHat: nfs-utils, Arch: nfs-utils}]
    timezone: America/Los_Angeles
    # The host stage (docs/host.md; palplat additions, not in the seed platform): operator
    # accounts that log in with keys only; sshd then takes no password and no root login,
    # on firewall:management:ssh_port. k3s's kernel modules and sysctls, swap off, time sync,
    # journald limits and unattended security updates are on by default.
    users:
      pal:
        ssh_keys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII9tKpvm7L3if9tl6l4f16S3E0VMyCmL/yVTNj+p52wd pal@laptop
        sudo: true
    journald: {system_max_use: 2G}
    # tailscaled on the host (tailscale0 is the tailnet the firewall trusts and the
    # 100.64.0.0/10 of management:allow_from). It joins with an auth key, which only you
    # can make (Tailscale admin console: Settings, Keys): put it in
    # /etc/palplat/tailscale-auth.key (0600) or host:tailscale:auth_key (secrets.sls),
    # then set enabled: true.
    tailscale:
      enabled: false
      version: 1.76.6
      tags: [tag:k3s]

  firewall:
    # Management access is never blocked by a palplat change; a change that narrows it
    # rolls back unless confirmed within confirm_seconds, and palplat.full confirms only
    # after a NEW SSH connection from outside the host succeeds (docs/firewall.md).
    management:
      ssh_port: 22
      allow_from: [100.64.0.0/10, 192.168.1.0/24]
    confirm_seconds: 120
    # Only tailscale0 is trusted (the k3s profile adds it). The seed platform also trusted
    # cni0 and flannel.1, which let every pod reach sshd and etcd: here pods reach the
    # host only where a rule lets them. The k3s profile opens the API (6443), the kubelet
    # (10250), etcd (2379-2380) and flannel VXLAN (udp 8472) only to the cluster's nodes
    # (@cluster: cluster_nodes below) and, for the API and the kubelet, to this node's pods
    # (@pods: k3s's cluster-cidr); the seed's k3s-api, kubelet and flannel-vxlan rules are
    # that profile. etcd and VXLAN open to everyone would be refused (docs/firewall.md).
    trusted_interfaces: [tailscale0]
    cluster_nodes: [192.168.1.0/24]     # where the k3s servers and agents live
    allow:
      # kube-prometheus-stack's node exporter (host network, port 9100), scraped by the
      # Prometheus pod
      - {name: node-exporter, proto: tcp, ports: [9100], from: ["@pods"]}
      - {name: web, proto: tcp, ports: [80, 443]}
    default_policy: drop

  k3s:
    version: v1.33.5+k3s1
    config:
      disable: [traefik, servicelb]
      # Secrets encrypted at rest in the datastore (k3s's AES-CBC key under the server's
      # data dir): palplat's decrypted pillar values end up in Kubernetes Secrets
      secrets-encryption: true
      write-kubeconfig-mode: "0600"   # the admin kubeconfig: root only (the seed had 0640)
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
    # auto: the GPU stage acts only on nodes where an NVIDIA device is found (per node):
    # driver and toolkit packages, k3s's nvidia runtime, the node label
    # nvidia.com/gpu.present=true, the device plugin, and a check that the node offers
    # devices x replicas nvidia.com/gpu. A new or changed driver stops the stage with
    # "reboot required" until you reboot: palplat never reboots. See docs/gpu.md.
    enabled: auto
    driver: nvidia-open      # the open kernel module (Turing and newer); nvidia: proprietary
    container_toolkit: true
    device_plugin:
      chart: {repo: https://nvidia.github.io/k8s-device-plugin, name: nvidia-device-plugin, version: 0.20.0}
      time_slicing: {replicas: 4}

  platform:
    # k3s ships no helm: palplat installs this pinned, sha256-verified helm (palplat
    # addition; not in the seed platform).
    helm: {version: v3.22.0}
    # The example's wiring (see docs/platform.md, which lists every difference from the
    # seed platform): Loki stores in MinIO buckets the MinIO release creates; Forgejo,
    # Woodpecker and Keycloak use CloudNativePG clusters palplat creates (`database`,
    # credentials from the Secret CNPG makes: <key>-db-app); the web UIs are on the
    # tailnet through Tailscale Funnel ingresses palplat creates (`expose`), each probed
    # by the blackbox exporter; Grafana reads Loki; Prometheus picks up every
    # ServiceMonitor, PodMonitor, PrometheusRule and Probe (services' included).
    releases:
      cnpg:
        namespace: cnpg-system
        chart: {repo: https://cloudnative-pg.github.io/charts, name: cloudnative-pg, version: 0.22.1}
      minio:
        namespace: minio
        chart: {repo: https://charts.min.io/, name: minio, version: 5.2.0}
        values:
          mode: standalone
          persistence: {size: 200Gi}
          # made by the chart's post-install job: Loki's buckets and the one the
          # services' database backups go to (services:defaults:object_store)
          buckets:
            - {name: loki-chunks, policy: none, purge: false}
            - {name: loki-ruler, policy: none, purge: false}
            - {name: cnpg-backups, policy: none, purge: false}
          # the database backups write with a user of their own, limited to their bucket
          # by the policy below; its secret key is read from the Secret palplat makes
          # (secrets: secrets.sls), not written inline into the chart's ConfigMap. This
          # list also replaces the chart's default "console" user and its well-known
          # password.
          users:
            - {accessKey: cnpg-backup, existingSecret: minio-backup-user, existingSecretKey: secretKey, policy: cnpg-backups}
          policies:
            - name: cnpg-backups
              statements:
                - resources: ["arn:aws:s3:::cnpg-backups/*"]
                  actions: ["s3:AbortMultipartUpload", "s3:GetObject", "s3:DeleteObject", "s3:PutObject", "s3:ListMultipartUploadParts"]
                - resources: ["arn:aws:s3:::cnpg-backups"]
                  actions: ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
          resources: {requests: {memory: 1Gi}}    # the chart asks for 16Gi
          environment: {MINIO_BROWSER_REDIRECT_URL: "https://minio.tail0000.ts.net"}
        # the object store's admin console: on the tailnet only, never on the internet
        # through Funnel (the seed platform had funnel: true)
        expose: {service: minio-console, port: 9001, url: "https://minio.tail0000.ts.net", funnel: false}
      kube-prometheus-stack:
        namespace: monitoring
        chart: {repo: https://prometheus-community.github.io/helm-charts, name: kube-prometheus-stack, version: 65.1.0}
        values:
          prometheus:
            prometheusSpec:
              retention: 15d
              # every monitor, rule and probe in the cluster, not only this release's
              serviceMonitorSelectorNilUsesHelmValues: false
              podMonitorSelectorNilUsesHelmValues: false
              ruleSelectorNilUsesHelmValues: false
              probeSelectorNilUsesHelmValues: false
          alertmanager:
            config:
              route: {receiver: telegram}
              receivers:
                # the bot token is a file from the Secret palplat makes (secrets.sls), not a
                # value: the receivers list stays in plain values, nothing secret in it
                - name: telegram
                  telegram_configs:
                    - {chat_id: 123456789, bot_token_file: /etc/alertmanager/secrets/alertmanager-telegram/bot_token}
            alertmanagerSpec:
              secrets: [alertmanager-telegram]   # mounted at /etc/alertmanager/secrets/<name>/
          grafana:
            admin: {existingSecret: grafana-admin}   # generated below: user admin, a random password
            grafana.ini: {server: {root_url: "https://grafana.tail0000.ts.net"}}
          # palplat's DORA metrics (docs/dora.md): the node exporter reads the textfile
          # directory palplat writes on the host (its root is mounted at /host/root); the
          # chart's two default arguments are kept (a list replaces the chart's)
          prometheus-node-exporter:
            extraArgs:
              - --collector.filesystem.mount-points-exclude=^/(dev|proc|sys|var/lib/docker/.+|var/lib/kubelet/.+)($|/)
              - --collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$
              - --collector.textfile.directory=/host/root/var/lib/prometheus/node-exporter
            additionalDataSources:
              - {name: Loki, type: loki, access: proxy, url: "http://loki-gateway.monitoring.svc.cluster.local"}
        # palplat makes these once and keeps them (kubectl -n monitoring get secret grafana-admin)
        generated:
          grafana-admin: {admin-user: admin, admin-password: {random: 32}}
        expose: {service: kube-prometheus-stack-grafana, port: 80, url: "https://grafana.tail0000.ts.net", funnel: true}
      loki:
        namespace: monitoring
        needs: [minio]
        chart: {repo: https://grafana.github.io/helm-charts, name: loki, version: 6.16.0}
        values:
          loki:
            limits_config: {retention_period: 168h}
            auth_enabled: false                     # one tenant
            commonConfig: {replication_factor: 1}
            compactor: {retention_enabled: true, delete_request_store: s3}   # applies retention_period
            schemaConfig:
              configs:
                - {from: "2024-04-01", store: tsdb, object_store: s3, schema: v13, index: {prefix: loki_index_, period: 24h}}
            storage:
              type: s3
              bucketNames: {chunks: loki-chunks, ruler: loki-ruler}
              s3: {endpoint: "http://minio.minio.svc.cluster.local:9000", s3ForcePathStyle: true, insecure: true}
              # accessKeyId/secretAccessKey: secrets.sls (MinIO's root credentials)
            configStorageType: Secret               # the config holds the S3 keys
          deploymentMode: SingleBinary              # one host: no read/write/backend split
          singleBinary: {replicas: 1}
          read: {replicas: 0}
          write: {replicas: 0}
          backend: {replicas: 0}
          chunksCache: {enabled: false}
          resultsCache: {enabled: false}
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
        # nightly to MinIO (services:defaults:object_store), kept 30 days
        database: {instances: 1, size: 10Gi, backup: {schedule: "0 30 2 * * *", retention: 30d}}
        # Forgejo's admin: palplat signs in as it to make Woodpecker's OAuth application and
        # Argo CD's token (services:defaults:forge)
        generated:
          forgejo-admin: {username: forgejo-admin, password: {random: 32}}
        values:
          postgresql-ha: {enabled: false}           # the CNPG cluster instead
          redis-cluster: {enabled: false}
          gitea:
            admin: {existingSecret: forgejo-admin, email: "forgejo-admin@tail0000.ts.net"}
            config:
              server: {DOMAIN: forgejo.tail0000.ts.net, ROOT_URL: "https://forgejo.tail0000.ts.net/"}
              database: {DB_TYPE: postgres, HOST: "forgejo-db-rw:5432", NAME: app, SSL_MODE: require}
              cache: {ADAPTER: memory}
              session: {PROVIDER: db}
              queue: {TYPE: level}
            additionalConfigFromEnvs:
              - {name: FORGEJO__DATABASE__USER, valueFrom: {secretKeyRef: {name: forgejo-db-app, key: username}}}
              - {name: FORGEJO__DATABASE__PASSWD, valueFrom: {secretKeyRef: {name: forgejo-db-app, key: password}}}
        expose: {service: forgejo-http, port: 3000, url: "https://forgejo.tail0000.ts.net", funnel: true}
      woodpecker:
        namespace: woodpecker
        needs: [forgejo, cnpg]
        chart: {oci: oci://ghcr.io/woodpecker-ci/helm/woodpecker, version: 1.6.2}
        database: {instances: 1, size: 5Gi}
        values:
          server:
            env:
              WOODPECKER_HOST: "https://woodpecker.tail0000.ts.net"
              WOODPECKER_FORGEJO: "true"
              WOODPECKER_FORGEJO_URL: "https://forgejo.tail0000.ts.net"
              WOODPECKER_ADMIN: forgejo-admin             # Forgejo's admin (generated above)
              WOODPECKER_DATABASE_DRIVER: postgres
              # the connection URI from the Secret CNPG makes, mounted below
              WOODPECKER_DATABASE_DATASOURCE_FILE: /etc/woodpecker/database/uri
            # the chart's own Secret, and the OAuth client palplat makes in Forgejo
            # (WOODPECKER_FORGEJO_CLIENT, WOODPECKER_FORGEJO_SECRET)
            extraSecretNamesForEnvFrom: [woodpecker-secret, palplat-forgejo-oauth]
            extraVolumes: [{name: database, secret: {secretName: woodpecker-db-app}}]
            extraVolumeMounts: [{name: database, mountPath: /etc/woodpecker/database, readOnly: true}]
        expose: {service: woodpecker-server, port: 80, url: "https://woodpecker.tail0000.ts.net", funnel: true}
      harbor:
        namespace: harbor
        chart: {repo: https://helm.goharbor.io, name: harbor, version: 1.15.1}
        # the admin password and the encryption key, made once (the services stage signs in
        # to Harbor with the admin password from there)
        generated:
          harbor-admin: {HARBOR_ADMIN_PASSWORD: {random: 32}}
          harbor-secret-key: {secretKey: {random: 16}}
        values:
          expose: {type: clusterIP, tls: {enabled: false}}    # TLS ends at the Tailscale ingress
          externalURL: "https://harbor.tail0000.ts.net"
          existingSecretAdminPassword: harbor-admin
          existingSecretSecretKey: harbor-secret-key
        expose: {service: harbor, port: 80, url: "https://harbor.tail0000.ts.net", funnel: true}
      keycloak:
        namespace: keycloak
        needs: [cnpg]
        chart: {repo: https://codecentric.github.io/helm-charts, name: keycloakx, version: 2.5.1}
        # nightly to MinIO (services:defaults:object_store), kept 30 days
        database: {instances: 1, size: 2Gi, backup: {schedule: "0 30 2 * * *", retention: 30d}}
        values:
          command: [/opt/keycloak/bin/kc.sh, start, --http-port=8080, --hostname-strict=false]
          database: {vendor: postgres, hostname: keycloak-db-rw, port: 5432, database: app, existingSecret: keycloak-db-app, existingSecretKey: password}
          extraEnv: |
            - name: KC_DB_USERNAME
              valueFrom: {secretKeyRef: {name: keycloak-db-app, key: username}}
            - name: KC_HOSTNAME
              value: https://keycloak.tail0000.ts.net
        expose: {service: keycloak-keycloakx-http, port: 80, url: "https://keycloak.tail0000.ts.net", funnel: true}
      argocd:
        namespace: argocd
        chart: {repo: https://argoproj.github.io/argo-helm, name: argo-cd, version: 7.6.8}
        # the services' GitOps repository credential is a repository Secret the services
        # stage makes (a read-only Forgejo token palplat makes: services:defaults:forge),
        # not chart values: one credential, one owner
      argocd-image-updater:
        namespace: argocd
        needs: [argocd, harbor]
        chart: {repo: https://argoproj.github.io/argo-helm, name: argocd-image-updater, version: 0.11.0}
        values:
          config:
            registries:     # credentials per Application (the services' pull-secret annotation)
              - {name: Harbor, prefix: harbor.tail0000.ts.net, api_url: "https://harbor.tail0000.ts.net", ping: true, default: true}
      ollama:
        namespace: ollama
        needs: [nvidia-device-plugin]
        chart: {repo: https://otwld.github.io/ollama-helm/, name: ollama, version: 0.63.0}
        # GPU workloads: the nvidia runtime class and the GPU node label (set by the GPU stage)
        values:
          ollama: {gpu: {enabled: true, number: 1}, models: [qwen3-embedding:4b]}   # 0.63.0: a list
          runtimeClassName: nvidia
          nodeSelector: {nvidia.com/gpu.present: "true"}

  # One entry per service; `salt-call state.apply palplat.service` gives each a namespace
  # (quota, limits, default-deny NetworkPolicies), a Harbor project with a push and a pull
  # robot, its repository activated in Woodpecker with the registry secrets, an Argo CD
  # Application (automated sync, image updater), a Tailscale Funnel ingress (funnel),
  # a ServiceMonitor (metrics), alerts, a blackbox probe (funnel), an optional CloudNativePG
  # database with backups, and its `secrets` as one Secret. See docs/services.md.
  services:
    defaults:
      registry: harbor.tail0000.ts.net
      # Forgejo (release forgejo): in the platform stage palplat signs in as its admin and
      # makes Woodpecker's OAuth application and Argo CD's read-only token for
      # deployments_repo, kept in cluster Secrets (docs: the first run)
      forge: {url: https://forgejo.tail0000.ts.net}
      deployments_repo: https://forgejo.tail0000.ts.net/pal-e/pal-e-deployments.git
      overlay: "overlays/{service}"                      # kustomize overlay per service
      tailnet_domain: tail0000.ts.net                    # funnel host: <name>.<tailnet_domain>
      # admin password: the one palplat generated for the harbor release (harbor-admin)
      harbor: {url: https://harbor.tail0000.ts.net, username: admin}
      # token: only you can make it (a browser login); until it is in secrets.sls the
      # services' CI waits for you and the run says where to make it
      woodpecker: {url: https://woodpecker.tail0000.ts.net}
      # MinIO's backup user (its release's users; secret key: secrets.sls)
      object_store: {endpoint: "http://minio.minio.svc:9000", bucket: cnpg-backups, release: minio, access_key: cnpg-backup}
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
