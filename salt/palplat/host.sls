{#- Host stage: what k3s and remote access need, from palplat:host, through Salt's own states
    (pkg, timezone, user, ssh_auth, file, sysctl, service) and palplat_host where Salt has
    none (host checks, kernel modules, swap, Tailscale, verification). Order:
      valid -> checked (this host: sysctls exist, tz database) -> packages -> timezone
      -> accounts, keys, sudo -> sshd (key-only, no root, the firewall's SSH port)
      -> kernel modules -> sysctls -> swap off -> time sync -> journald -> security updates
      -> Tailscale -> verified (sshd -T, keys, modules, sysctls, swap, ... as running now)
    palplat_host.settings computes everything below from the validated pillar (docs/host.md).
    palplat:host:manage: false (the sandbox) leaves the machine alone. -#}
{%- set s = salt['palplat_host.settings']() %}
{%- set done = [] %}
{#- Salt's ssh_auth needs its ssh module, which loads only once the ssh client is there:
    on a host without OpenSSH the packages state installs it (and reloads the modules), so
    the plan (test=True, nothing installed) shows the keys as a pending change instead #}
{%- set keys_planned = opts.get('test') and 'ssh.auth_keys' not in salt %}

palplat-host-valid:
  palplat_config.validated

palplat-host-checked:
  palplat_host.checked:
    - require:
      - palplat_config: palplat-host-valid
{%- if s.valid and s.manage %}
{%- if s.packages %}

palplat-host-packages:
  pkg.installed:
    - pkgs: {{ s.packages | json }}
{%- if s.reload_modules %}
    - reload_modules: True
{%- endif %}
    - require:
      - palplat_host: palplat-host-checked
{%- do done.append({'pkg': 'palplat-host-packages'}) %}
{%- endif %}
{%- if s.timezone %}

palplat-host-timezone:
  timezone.system:
    - name: {{ s.timezone | json }}
    - require:
      - palplat_host: palplat-host-checked
{%- do done.append({'timezone': 'palplat-host-timezone'}) %}
{%- endif %}
{%- for name, u in s.users | dictsort %}

palplat-host-user-{{ name }}:
  user.present:
    - name: {{ name }}
    - shell: {{ u.shell | json }}
    - fullname: {{ u.fullname | json }}
    - createhome: True
    - password: '*'
{%- if u.uid %}
    - uid: {{ u.uid }}
{%- endif %}
{%- if u.groups %}
    - groups: {{ u.groups | json }}
{%- endif %}
    - require:
      - palplat_host: palplat-host-checked
{%- if s.packages %}
      - pkg: palplat-host-packages
{%- endif %}

{%- if keys_planned %}

palplat-host-keys-{{ name }}:
  palplat_host.keys_planned:
    - user: {{ name }}
    - ssh_keys: {{ u.ssh_keys | json }}
    - require:
      - user: palplat-host-user-{{ name }}
{%- set keys_mod = 'palplat_host' %}
{%- else %}

palplat-host-keys-{{ name }}:
  ssh_auth.manage:
    - user: {{ name }}
    - ssh_keys: {{ u.ssh_keys | json }}
    - require:
      - user: palplat-host-user-{{ name }}
{%- set keys_mod = 'ssh_auth' %}
{%- endif %}
{%- do done.append({keys_mod: 'palplat-host-keys-' ~ name}) %}
{%- if u.sudoers %}

palplat-host-sudo-{{ name }}:
  file.managed:
    - name: {{ u.sudoers.path }}
    - contents: {{ u.sudoers.text | json }}
    - mode: '{{ u.sudoers.mode }}'
    - user: root
    - group: root
    - check_cmd: visudo -cf
    - require:
      - user: palplat-host-user-{{ name }}
{%- do done.append({'file': 'palplat-host-sudo-' ~ name}) %}
{%- endif %}
{%- endfor %}
{%- if s.sshd %}

{#- after the keys: password logins go only once a key is in place #}
palplat-host-sshd-config:
  file.managed:
    - name: {{ s.sshd.file.path }}
    - contents: {{ s.sshd.file.text | json }}
    - mode: '{{ s.sshd.file.mode }}'
    - makedirs: True
    - check_cmd: sshd -t -f
    - require:
      - palplat_host: palplat-host-checked
{%- for name in s.users | sort %}
      - {{ 'palplat_host' if keys_planned else 'ssh_auth' }}: palplat-host-keys-{{ name }}
{%- endfor %}

palplat-host-sshd:
  service.running:
    - name: {{ s.sshd.service }}
    - enable: True
    - reload: True
    - watch:
      - file: palplat-host-sshd-config
{%- do done.append({'service': 'palplat-host-sshd'}) %}
{%- endif %}
{%- if s.modules %}

palplat-host-modules-boot:
  file.managed:
    - name: {{ s.modules.file.path }}
    - contents: {{ s.modules.file.text | json }}
    - mode: '{{ s.modules.file.mode }}'
    - makedirs: True
    - require:
      - palplat_host: palplat-host-checked

palplat-host-modules:
  palplat_host.modules_loaded:
    - require:
      - file: palplat-host-modules-boot
{%- do done.append({'palplat_host': 'palplat-host-modules'}) %}
{%- endif %}
{%- if s.sysctl %}
{%- for key, value in s.sysctl['values'] | dictsort %}

palplat-host-sysctl-{{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value | json }}
    - config: {{ s.sysctl.config }}
    - require:
      - palplat_host: palplat-host-checked
{%- if s.modules %}
      - palplat_host: palplat-host-modules
{%- endif %}
{%- do done.append({'sysctl': 'palplat-host-sysctl-' ~ key}) %}
{%- endfor %}
{%- endif %}
{%- if s.swap == 'off' %}

palplat-host-swap:
  palplat_host.swap_off:
    - require:
      - palplat_host: palplat-host-checked
{%- do done.append({'palplat_host': 'palplat-host-swap'}) %}
{%- endif %}
{%- if s.time_sync %}

palplat-host-timesyncd-config:
  file.managed:
    - name: {{ s.time_sync.file.path }}
    - contents: {{ s.time_sync.file.text | json }}
    - mode: '{{ s.time_sync.file.mode }}'
    - makedirs: True
    - require:
      - palplat_host: palplat-host-checked
{%- if s.packages %}
      - pkg: palplat-host-packages
{%- endif %}

palplat-host-timesyncd-enabled:
  service.enabled:
    - name: {{ s.time_sync.service }}
    - require:
      - file: palplat-host-timesyncd-config

{#- systemd does not start timesyncd in a container (ConditionVirtualization=!container):
    the container keeps its host's clock #}
palplat-host-timesyncd:
  service.running:
    - name: {{ s.time_sync.service }}
    - unless: systemd-detect-virt --container --quiet
    - watch:
      - file: palplat-host-timesyncd-config
    - require:
      - service: palplat-host-timesyncd-enabled
{%- do done.append({'service': 'palplat-host-timesyncd'}) %}
{%- endif %}

palplat-host-journald-config:
  file.managed:
    - name: {{ s.journald.path }}
    - contents: {{ s.journald.text | json }}
    - mode: '{{ s.journald.mode }}'
    - makedirs: True
    - require:
      - palplat_host: palplat-host-checked

palplat-host-journald:
  service.running:
    - name: systemd-journald
    - watch:
      - file: palplat-host-journald-config
{%- do done.append({'service': 'palplat-host-journald'}) %}
{%- if s.auto_updates %}
{%- for f in s.auto_updates.files %}

palplat-host-updates-{{ loop.index }}:
  file.managed:
    - name: {{ f.path }}
    - contents: {{ f.text | json }}
    - mode: '{{ f.mode }}'
    - require:
      - pkg: palplat-host-packages
{%- do done.append({'file': 'palplat-host-updates-' ~ loop.index}) %}
{%- endfor %}
{%- for timer in s.auto_updates.timers %}

palplat-host-updates-{{ timer }}:
  service.running:
    - name: {{ timer }}
    - enable: True
    - require:
      - pkg: palplat-host-packages
{%- do done.append({'service': 'palplat-host-updates-' ~ timer}) %}
{%- endfor %}
{%- endif %}
{%- if s.tailscale %}

palplat-host-tailscale-installed:
  palplat_host.tailscale_installed:
    - require:
      - palplat_host: palplat-host-checked

palplat-host-tailscaled:
  service.running:
    - name: {{ s.tailscale.service }}
    - enable: True
    - watch:
      - palplat_host: palplat-host-tailscale-installed

palplat-host-tailscale:
  palplat_host.tailscale_joined:
    - require:
      - service: palplat-host-tailscaled
{%- do done.append({'palplat_host': 'palplat-host-tailscale'}) %}
{%- endif %}

palplat-host-verified:
  palplat_host.verified:
    - require:
      - palplat_host: palplat-host-checked
{%- for req in done %}
      - {{ req | json }}
{%- endfor %}
{%- endif %}
