{#- salt-run state.orchestrate palplat.full
    Bare host to running platform, and every later change. Stages run in order and stop
    at the first failure (each requires the one before): host -> firewall -> k3s -> gpu ->
    platform -> services. Last, palplat-dora records what the run did (docs/dora.md),
    whatever it was: so no stage is failhard, the requisites stop the run instead.
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

{#- A k3s version change on nodes that already run k3s goes through palplat_k3s.upgrade
    (servers one at a time, agents drained); the k3s stage never changes an installed
    version itself. Asked at render time, so the stage (and the plan) only shows up when
    an upgrade is due. #}
{%- set k3s_plan = salt['saltutil.runner']('palplat_k3s.plan', tgt=tgt, tgt_type=tgt_type) %}
{%- set k3s_upgrade = k3s_plan.get('steps') or k3s_plan.get('result') is sameas false %}
{#- Several nodes: the k3s stage runs in waves, so that each node joins a cluster that
    runs: the minion that holds the cluster (the first server), then each further server
    alone (etcd adds one member at a time), then every agent at once. Each wave is a
    stage of its own (palplat-k3s, palplat-k3s-server-<minion>, palplat-k3s-agents); the
    others run on every targeted minion at once. #}
{%- set waves = k3s_plan.get('waves') or {} %}
{%- set targets = {} %}
{%- set k3s_stages = [] %}
{%- if waves.get('servers') or waves.get('agents') %}
{%-   if waves.get('first') %}
{%-     do k3s_stages.append('k3s') %}
{%-     do targets.update({'k3s': waves['first']}) %}
{%-   endif %}
{%-   for m in waves.get('servers') or [] %}
{%-     do k3s_stages.append('k3s-server-' ~ m) %}
{%-     do targets.update({'k3s-server-' ~ m: [m]}) %}
{%-   endfor %}
{%-   if waves.get('agents') %}
{%-     do k3s_stages.append('k3s-agents') %}
{%-     do targets.update({'k3s-agents': waves['agents']}) %}
{%-   endif %}
{%- else %}
{%-   do k3s_stages.append('k3s') %}
{%- endif %}
{%- set stages = ['host', 'firewall'] + (['k3s-upgrade'] if k3s_upgrade else [])
                 + k3s_stages + ['gpu', 'platform', 'service'] %}
{%- for stage in stages %}

{%- if stage == 'firewall' %}

{#- Before the firewall changes anything: probe each node's SSH port from outside (the
    master, or firewall:confirm:probe_from) and keep the result on the master. #}
palplat-firewall-baseline:
  salt.runner:
    - name: palplat_nftables.baseline
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - require:
      - salt: palplat-{{ stages[loop.index0 - 1] }}
{%- endif %}

palplat-{{ stage }}:
{%- if stage == 'k3s-upgrade' %}
  salt.runner:
    - name: palplat_k3s.upgrade
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
{%- elif stage in targets %}
  salt.state:
    - tgt: '{{ targets[stage] | join(',') }}'
    - tgt_type: list
    - sls: palplat.k3s
{%- else %}
  salt.state:
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - sls: palplat.{{ stage }}
{%- endif %}
    - require:
{%- set prev = 'validate' if loop.first else stages[loop.index0 - 1] %}
{%- if stage == 'firewall' %}
      - salt: palplat-firewall-baseline
{%- else %}
      - salt: palplat-{{ 'firewall-confirm' if prev == 'firewall' else prev }}
{%- endif %}
{%- if stage == 'firewall' %}

{#- A change that narrows access to the management ports is kept (its commit-confirmed
    rollback cancelled, before the long stages can outlast firewall:confirm_seconds) only
    when a NEW connection to the node's live SSH port from outside the node succeeds and
    every one that worked in the baseline still does. The minion's own link to the master
    is established and proves nothing. Without that proof this step fails, the rollback
    stays armed, and the comment says how to confirm by hand (docs/firewall.md). #}
palplat-firewall-confirm:
  salt.runner:
    - name: palplat_nftables.confirm
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
    - require:
      - salt: palplat-firewall
{%- endif %}
{%- endfor %}

{#- DORA: this run's outcome per component into the ledger (revision and commits from CI:
    pillar palplat_dora: palplat-ci apply --dora); nothing in test mode. #}
palplat-dora:
  palplat_dora.recorded:
    - tgt: '{{ tgt }}'
    - tgt_type: {{ tgt_type }}
