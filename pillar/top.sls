# Example pillar top file: every palplat host gets the platform pillar and its secrets.
# Keep it plain YAML (no Jinja): a pull request's plan (salt-run palplat.plan
# pillarenv=pr-N, docs/security.md) reads the pull request's copy of this file, as YAML
# only, to decide which minions it plans; a minion it gives no palplat pillar is not
# planned, and one named with tgt= is an error.
base:
  '*':
    - palplat
    - palplat.secrets
