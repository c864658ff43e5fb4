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
        secret_values: {rootUser: CHANGE-ME-minio-user, rootPassword: CHANGE-ME-minio-password}
      kube-prometheus-stack:
        secret_values:
          alertmanager:
            config:
              receivers:
                - name: telegram
                  telegram_configs: [{bot_token: CHANGE-ME-telegram-bot-token}]
      tailscale-operator:
        secret_values: {oauth: {clientId: CHANGE-ME-ts-client-id, clientSecret: CHANGE-ME-ts-client-secret}}
      woodpecker:
        secret_values:
          server:
            env: {WOODPECKER_FORGEJO_SECRET: CHANGE-ME-forgejo-secret, WOODPECKER_AGENT_SECRET: CHANGE-ME-agent-secret}
      harbor:
        secret_values: {harborAdminPassword: CHANGE-ME-harbor-admin, secretKey: CHANGE-ME-harbor-key16}
  services:
    basketball-api:
      secrets: {KEYCLOAK_CLIENT_SECRET: CHANGE-ME-keycloak-client}
    westsidekingsandqueens:
      secrets: {AUTH_SECRET: CHANGE-ME-auth-secret}
    gcal-scheduler:
      secrets: {GOOGLE_CLIENT_SECRET: CHANGE-ME-google-client}
