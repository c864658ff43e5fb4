"""The host stage: operator accounts and keys, sshd, kernel prerequisites for k3s, swap,
time, journald, automatic security updates and Tailscale, through Salt's own states with
palplat's pillar checks, ordering and verification (docs/host.md).

Import the module you need (this package imports nothing itself, so that the pillar model
can use :mod:`.pillar` without a cycle):

- :mod:`.pillar`: the ``host`` pillar section; :mod:`.checks`: its cross checks;
  :mod:`.facts`: checks against the host itself (kernel parameters, tz database).
- :mod:`.settings`: what host.sls renders (packages, accounts, file texts).
- :mod:`.kernel`: kernel modules available now, swap off.
- :mod:`.verify`: what the running system reports after the states ran.
- :mod:`.tailscale`: tailscaled installed from a pinned archive, joined with a key file.
"""
