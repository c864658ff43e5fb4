# Example pillar top file: every palplat host gets the platform pillar and its secrets.
base:
  '*':
    - palplat
    - palplat.secrets
