#!yaml|gpg
# Secrets of the example platform. Replace every CHANGE-ME value with the output of
#   make encrypt RECIPIENT=<the Salt master's GPG key>
# (a "-----BEGIN PGP MESSAGE-----" block). Salt's gpg renderer decrypts them on the
# master; palplat masks every one of them as <hidden> in returns, logs, events and plans.
palplat:
  k3s:
    token: CHANGE-ME-k3s-token
    registries:
      configs:
        harbor.tail0000.ts.net:
          auth: {password: CHANGE-ME-harbor-robot-password}
  platform:
    releases:
      minio:
        secret_values: {rootUser: &minio_user CHANGE-ME-minio-user, rootPassword: &minio_password CHANGE-ME-minio-password}
        # the secret key of MinIO's backup user cnpg-backup (users: init.sls), the same
        # value as services:defaults:object_store:secret_key (a YAML alias)
        secrets: {minio-backup-user: {secretKey: &backup_key CHANGE-ME-minio-backup-key}}
      loki:
        # Loki reads and writes its MinIO buckets with MinIO's root credentials (the same
        # two values: YAML aliases, so each is encrypted once)
        secret_values: {loki: {storage: {s3: {accessKeyId: *minio_user, secretAccessKey: *minio_password}}}}
      kube-prometheus-stack:
        secret_values:
          alertmanager:
            config:
              receivers:    # helm replaces lists: the receiver here repeats chat_id
                - name: telegram
                  telegram_configs: [{chat_id: 123456789, bot_token: CHANGE-ME-telegram-bot-token}]
          grafana: {adminPassword: CHANGE-ME-grafana-admin}
      tailscale-operator:
        secret_values: {oauth: {clientId: CHANGE-ME-ts-client-id, clientSecret: CHANGE-ME-ts-client-secret}}
      forgejo:
        secret_values: {gitea: {admin: {password: CHANGE-ME-forgejo-admin}}}
      woodpecker:
        secret_values:
          server:
            env:
              WOODPECKER_FORGEJO_CLIENT: CHANGE-ME-forgejo-client
              WOODPECKER_FORGEJO_SECRET: CHANGE-ME-forgejo-secret
              WOODPECKER_AGENT_SECRET: &agent_secret CHANGE-ME-agent-secret
          agent: {env: {WOODPECKER_AGENT_SECRET: *agent_secret}}
      harbor:
        secret_values: {harborAdminPassword: CHANGE-ME-harbor-admin, secretKey: CHANGE-ME-harbor-key16}
  services:
    defaults:
      harbor: {password: CHANGE-ME-harbor-admin}
      woodpecker: {token: CHANGE-ME-woodpecker-token}
      deployments_credentials: {password: CHANGE-ME-forgejo-argocd-token}
      object_store: {secret_key: *backup_key}
    basketball-api:
      secrets: {KEYCLOAK_CLIENT_SECRET: CHANGE-ME-keycloak-client}
    westsidekingsandqueens:
      secrets: {AUTH_SECRET: CHANGE-ME-auth-secret}
    gcal-scheduler:
      secrets: {GOOGLE_CLIENT_SECRET: CHANGE-ME-google-client}
