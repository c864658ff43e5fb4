#!yaml|palplat
# Secrets of the example platform, one per line. palplat's renderer (the '#!yaml|palplat'
# line above: Salt's gpg renderer, plus a mark on each decrypted value) decrypts them on
# the master; palplat masks every one as <hidden> in returns, logs, events and plans, and
# refuses a decrypted value in a field that is not secret. Validation fails while any
# CHANGE-ME placeholder is left; numbers may stay in clear, strings may not.
#
# Replace each CHANGE-ME line with the block the command in its comment prints (it asks
# for the value, never takes it from argv; RECIPIENT is the Salt master's GPG key):
#   make encrypt RECIPIENT=<key> KEY=token INDENT=4
# prints "    token: |" and the indented PGP message: paste it over the line. A line with
# an anchor (&name) keeps it: ANCHOR=name prints "key: &name |".
palplat:
  k3s:
    token: CHANGE-ME-k3s-token                             # KEY=token INDENT=4
    registries:
      configs:
        harbor.tail0000.ts.net:
          auth:
            password: CHANGE-ME-harbor-robot-password      # KEY=password INDENT=12
  platform:
    releases:
      minio:
        secret_values:
          rootUser: &minio_user CHANGE-ME-minio-user        # KEY=rootUser INDENT=10 ANCHOR=minio_user
          rootPassword: &minio_password CHANGE-ME-minio-password  # KEY=rootPassword INDENT=10 ANCHOR=minio_password
        # the secret key of MinIO's backup user cnpg-backup (users: init.sls), the same
        # value as services:defaults:object_store:secret_key (a YAML alias)
        secrets:
          minio-backup-user:
            secretKey: &backup_key CHANGE-ME-minio-backup-key  # KEY=secretKey INDENT=12 ANCHOR=backup_key
      loki:
        # Loki reads and writes its MinIO buckets with MinIO's root credentials (the same
        # two values: YAML aliases, so each is encrypted once)
        secret_values: {loki: {storage: {s3: {accessKeyId: *minio_user, secretAccessKey: *minio_password}}}}
      kube-prometheus-stack:
        # Alertmanager reads the bot token from this Secret (bot_token_file: init.sls)
        secrets:
          alertmanager-telegram:
            bot_token: CHANGE-ME-telegram-bot-token        # KEY=bot_token INDENT=12
      tailscale-operator:
        secret_values:
          oauth:
            clientId: CHANGE-ME-ts-client-id               # KEY=clientId INDENT=12
            clientSecret: CHANGE-ME-ts-client-secret       # KEY=clientSecret INDENT=12
      woodpecker:
        # Woodpecker's Forgejo OAuth client is made by palplat (services:defaults:forge)
        secret_values:
          server:
            env:
              WOODPECKER_AGENT_SECRET: &agent_secret CHANGE-ME-agent-secret  # KEY=WOODPECKER_AGENT_SECRET INDENT=14 ANCHOR=agent_secret
          agent: {env: {WOODPECKER_AGENT_SECRET: *agent_secret}}
  # Admin passwords (Grafana, Forgejo, Harbor) and Argo CD's Forgejo token are made by
  # palplat (init.sls: generated, services:defaults:forge). Woodpecker's API token needs a
  # browser login: after the first run, make one (the run names the URL) and add
  #   services: {defaults: {woodpecker: {token: ...}}}      (KEY=token INDENT=8)
  services:
    defaults:
      object_store: {secret_key: *backup_key}
    basketball-api:
      secrets:
        KEYCLOAK_CLIENT_SECRET: CHANGE-ME-keycloak-client  # KEY=KEYCLOAK_CLIENT_SECRET INDENT=8
    westsidekingsandqueens:
      secrets:
        AUTH_SECRET: CHANGE-ME-auth-secret                 # KEY=AUTH_SECRET INDENT=8
    gcal-scheduler:
      secrets:
        GOOGLE_CLIENT_SECRET: CHANGE-ME-google-client      # KEY=GOOGLE_CLIENT_SECRET INDENT=8
