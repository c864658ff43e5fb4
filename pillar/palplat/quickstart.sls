# A first palplat pillar: one host, its firewall, k3s and helm, nothing on top yet. Copy
# it to the master's pillar_roots as palplat/init.sls (docs: Quickstart), replace what is
# marked CHANGE, and put the k3s token into palplat/secrets.sls, GPG-encrypted (its
# first line names palplat's renderer):
#
#   #!yaml|palplat
#   palplat:
#     k3s:
#       token: |
#         -----BEGIN PGP MESSAGE-----
#         ...
#
# Grow it from init.sls beside it (the whole platform: Helm releases and services).
palplat:
  host:
    # a name per OS family where they differ; the plan checks each exists on the host
    packages: [curl, jq]
    timezone: Etc/UTC
    # your account: key-only SSH (sshd then refuses passwords and root) and sudo
    users:
      CHANGE-operator:
        ssh_keys:
          - CHANGE-ssh-ed25519-public-key
        sudo: true

  firewall:
    # SSH (and Salt) stay reachable from these networks; palplat never applies a change
    # that would cut you off without a commit-confirmed rollback. Empty: from anywhere.
    management:
      ssh_port: 22
      allow_from: [CHANGE-your-network/24]
    # The k3s ports (API, kubelet, etcd, flannel) are open only to the cluster's nodes and,
    # for the API and the kubelet, this node's pods; etcd and VXLAN are never open to
    # everyone (docs/firewall.md). kubectl from your network: its own rule.
    allow:
      - {name: kubectl, proto: tcp, ports: [6443], from: [CHANGE-your-network/24]}
      - {name: web, proto: tcp, ports: [80, 443]}

  k3s:
    version: v1.33.5+k3s1          # pinned; sha256-verified against the release's checksums
    role: server
    cluster_init: true             # embedded etcd: more servers can join later
    # token: secrets.sls (GPG-encrypted)
    config:
      write-kubeconfig-mode: "0600"
      disable: [traefik]

  gpu:
    enabled: auto                  # acts only where an NVIDIA GPU is found

  platform:
    helm: {version: v3.22.0}       # k3s ships no helm: palplat installs this one
