{#- Firewall stage: palplat's nftables table from palplat:firewall (+ the k3s role's ports).
    One nft transaction replaces only palplat's table; changes that narrow access to the
    management ports roll back unless confirmed (palplat_nftables.confirm, which
    palplat.full runs right after this stage). palplat:firewall:enabled: false leaves
    nftables alone. -#}

palplat-firewall-valid:
  palplat_config.validated

palplat-firewall-nftables:
  palplat_nftables.managed:
    - name: palplat
    - require:
      - palplat_config: palplat-firewall-valid
