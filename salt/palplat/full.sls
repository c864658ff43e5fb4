{#- salt-run state.orchestrate palplat.full
    Bare host to running platform, and every later change. Stages run in order and stop
    at the first failure (failhard): host -> firewall -> k3s -> gpu -> platform -> services.
    Targets: minions whose pillar has a palplat key; override with
      salt-run state.orchestrate palplat.full pillar='{"palplat_target": "host1"}'
    Plan (pull-request review): add test=True. -#}
{%- set tgt = salt['pillar.get']('palplat_target', 'I@palplat:*') %}
{%- set tgt_type = salt['pillar.get']('palplat_target_type', 'compound') %}

palplat-validate:
  salt.function:
    - name: palplat_config.validate
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - failhard: True

{#- A k3s version change on nodes that already run k3s goes through palplat_k3s.upgrade
    (servers one at a time, agents drained); the k3s stage never changes an installed
    version itself. Asked at render time, so the stage (and the plan) only shows up when
    an upgrade is due. #}
{%- set k3s_plan = salt['saltutil.runner']('palplat_k3s.plan', tgt=tgt, tgt_type=tgt_type) %}
{%- set k3s_upgrade = k3s_plan.get('steps') or k3s_plan.get('result') is sameas false %}
{%- set stages = ['host', 'firewall'] + (['k3s-upgrade'] if k3s_upgrade else [])
                 + ['k3s', 'gpu', 'platform', 'service'] %}
{%- for stage in stages %}

palplat-{{ stage }}:
{%- if stage == 'k3s-upgrade' %}
  salt.runner:
    - name: palplat_k3s.upgrade
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
{%- else %}
  salt.state:
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - sls: palplat.{{ stage }}
{%- endif %}
    - failhard: True
    - require:
{%- set prev = 'validate' if loop.first else stages[loop.index0 - 1] %}
      - salt: palplat-{{ 'firewall-confirm' if prev == 'firewall' else prev }}
{%- if stage == 'firewall' %}

{#- The master still commands the minion after the firewall change: keep it (cancel the
    commit-confirmed rollback) before the long stages, so a platform install that takes
    longer than firewall:confirm_seconds cannot roll the firewall back mid-run. #}
palplat-firewall-confirm:
  salt.function:
    - name: palplat_nftables.confirm
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - failhard: True
    - require:
      - salt: palplat-firewall
{%- endif %}
{%- endfor %}

