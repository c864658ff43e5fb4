{#- salt-run state.orchestrate palplat.k3s_upgrade
    Quorum-safe k3s version change: servers one at a time (each Ready again before the
    next), then agents cordoned, drained, upgraded and uncordoned. Nodes already at
    palplat:k3s:version are left alone, so this is a no-op when nothing changed.
    Plan only: add test=True (prints the order, changes nothing). -#}
{%- set tgt = salt['pillar.get']('palplat_target', 'I@palplat:*') %}
{%- set tgt_type = salt['pillar.get']('palplat_target_type', 'compound') %}

palplat-k3s-upgrade:
  salt.runner:
    - name: palplat_k3s.upgrade
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - failhard: True
