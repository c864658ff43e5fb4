{#- Host stage: packages and timezone from palplat:host, through Salt's own states.
    palplat:host:manage: false (the sandbox) leaves the machine alone. -#}
{%- set host = salt['pillar.get']('palplat:host', {}) %}

palplat-host-valid:
  palplat_config.validated

{%- if host.get('manage', True) %}
{%- if host.get('packages') %}

palplat-host-packages:
  pkg.installed:
    - pkgs: {{ host['packages'] | json }}
    - require:
      - palplat_config: palplat-host-valid
{%- endif %}
{%- if host.get('timezone') %}

palplat-host-timezone:
  timezone.system:
    - name: {{ host['timezone'] | json }}
    - require:
      - palplat_config: palplat-host-valid
{%- endif %}
{%- endif %}
