{#- Firewall stage: palplat's nftables table from palplat:firewall (+ the k3s role's ports).
    One nft transaction replaces only palplat's table; changes that narrow access to the
    management ports roll back unless confirmed: palplat.full confirms only after a NEW
    SSH connection from outside the node succeeds (runner palplat_nftables.confirm);
    otherwise confirm by hand (palplat_nftables.confirm) after opening one yourself.
    palplat:firewall:enabled: false leaves nftables alone. See docs/firewall.md. -#}

{%- set host = salt['palplat_host.settings']() %}

palplat-firewall-valid:
  palplat_config.validated
{%- if host.valid and host.manage and host.firewall_packages %}

{#- nft comes with the nftables package: installed first (palplat:host:manage: false, as
    in the sandbox, leaves the host's packages alone) #}
palplat-firewall-package:
  pkg.installed:
    - pkgs: {{ host.firewall_packages | json }}
    - require:
      - palplat_config: palplat-firewall-valid
{%- endif %}

palplat-firewall-nftables:
  palplat_nftables.managed:
    - name: palplat
    - require:
      - palplat_config: palplat-firewall-valid
{%- if host.valid and host.manage and host.firewall_packages %}
      - pkg: palplat-firewall-package
{%- endif %}
