#!/usr/bin/env bash
# Provision a Debian 12 (or Arch) machine to run palplat the way a user does, and run it.
# One script for both real paths, so that what the machine tests prove is what
# `vagrant up` runs:
#
#   Vagrantfile:           tools/provision.sh system salt configure pillar run
#   tools/build-machine:   tools/provision.sh system salt configure   (in the image's chroot)
#   tests (in the machine):  tools/provision.sh wheel, then run (pillar written by the test)
#
# Phases (in this order; give any subset):
#   packages   print the OS packages the machine needs, one a line (build-machine passes
#              them to debootstrap)
#   system     install the missing ones (apt-get / pacman)
#   salt       Salt from PyPI and palplat's Python dependencies, in a virtualenv at
#              $PALPLAT_SALT_VENV; offline from $PALPLAT_WHEELS when that is set
#   configure  Salt master + minion on this machine (systemd units for the venv's daemons),
#              file_roots at the checkout $PALPLAT_SRC, pillar_roots at $PALPLAT_PILLAR,
#              gpg_keydir /etc/salt/gpgkeys (the gpg renderer)
#   wheel      palplat as users install it (docs/installation.md): the wheel
#              $PALPLAT_WHEEL into Salt's Python (its dependencies came with `salt`), and
#              file_roots at the state tree inside it (what `salt-run palplat.state_tree`
#              prints) instead of the checkout
#   pillar     a small pillar in $PALPLAT_PILLAR unless one is there (random k3s token)
#   run        start Salt, sync, then as a user would:
#                salt-run palplat.validate
#                salt-run state.orchestrate palplat.full test=True   (the plan)
#                salt-run state.orchestrate palplat.full             (apply + confirm)
#                salt-run state.orchestrate palplat.full             (must change nothing)
#              Each run's JSON goes to $PALPLAT_LOG/<step>.json; a failed state, or a
#              change in the last run, exits non-zero.
#
# Environment:
#   PALPLAT_SRC          the checkout (default /vagrant)
#   PALPLAT_PILLAR       pillar_roots directory (default /srv/palplat-pillar)
#   PALPLAT_SALT_VENV    Salt's virtualenv (default /opt/palplat/salt)
#   PALPLAT_SALT_SPEC    pip requirement for Salt (default "salt>=3007,<3008")
#   PALPLAT_WHEELS       a directory of wheels: install offline (--no-index) from it
#   PALPLAT_WHEEL        palplat's wheel (make dist) for the wheel phase
#   PALPLAT_MINION_ID    the minion id (default: the host name)
#   PALPLAT_LOG          where `run` writes its JSON (default /var/log/palplat)
#   PALPLAT_K3S_VERSION  k3s version of the default pillar (default v1.33.5+k3s1)
set -euo pipefail

SRC=${PALPLAT_SRC:-/vagrant}
PILLAR_DIR=${PALPLAT_PILLAR:-/srv/palplat-pillar}
VENV=${PALPLAT_SALT_VENV:-/opt/palplat/salt}
SALT_SPEC=${PALPLAT_SALT_SPEC:-salt>=3007,<3008}
LOGDIR=${PALPLAT_LOG:-/var/log/palplat}
K3S_VERSION=${PALPLAT_K3S_VERSION:-v1.33.5+k3s1}
HERE=$(cd "$(dirname "$0")" && pwd)

say() { printf '[provision] %s\n' "$*" >&2; }

os_family() {
  if command -v apt-get >/dev/null 2>&1; then echo debian
  elif command -v pacman >/dev/null 2>&1; then echo arch
  else echo unknown; fi
}

# What palplat and Salt need from the OS. The host stage installs the rest itself
# (palplat:host:packages, systemd-timesyncd, unattended-upgrades, sudo).
DEBIAN_PACKAGES=(
  systemd systemd-sysv dbus libpam-systemd   # systemd as PID 1, timedatectl, logind
  python3 python3-venv                       # Salt's virtualenv
  nftables iproute2 kmod procps              # firewall, sysctl, modules
  netbase                                    # /etc/protocols: nft resolves ipv6-icmp there
  openssh-server ca-certificates curl        # remote access, downloads
  tzdata passwd login                        # timezone.system, user.present
  gnupg                                      # the master's gpg renderer (encrypted pillar)
)
ARCH_PACKAGES=(python python-pip nftables iproute2 kmod procps-ng openssh ca-certificates curl tzdata gnupg)

phase_packages() {
  case $(os_family) in
    arch) printf '%s\n' "${ARCH_PACKAGES[@]}" ;;
    *) printf '%s\n' "${DEBIAN_PACKAGES[@]}" ;;
  esac
}

phase_system() {
  case $(os_family) in
    debian)
      local missing=() p
      for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
      done
      if [ ${#missing[@]} -gt 0 ]; then
        say "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
      fi ;;
    arch) pacman -Sy --noconfirm --needed "${ARCH_PACKAGES[@]}" >/dev/null ;;
    *) say "unknown OS family: install ${DEBIAN_PACKAGES[*]} yourself" ;;
  esac
}

phase_salt() {
  local py=python3
  command -v python3 >/dev/null || py=python
  if [ ! -x "$VENV/bin/python" ]; then
    say "virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$py" -m venv "$VENV"
  fi
  local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  if [ -n "${PALPLAT_WHEELS:-}" ]; then
    pip+=(--no-index --find-links "$PALPLAT_WHEELS")
  fi
  # palplat's own dependencies come from its pyproject (tools/pydeps), Salt from SALT_SPEC
  mapfile -t deps < <("$VENV/bin/python" "$HERE/pydeps" | grep -v '^salt')
  say "pip install $SALT_SPEC ${deps[*]}"
  "${pip[@]}" "$SALT_SPEC" "${deps[@]}"
  local b
  for b in salt salt-call salt-key salt-master salt-minion salt-run; do
    ln -sfn "$VENV/bin/$b" "/usr/local/bin/$b"
  done
}

unit() { # name KillMode
  # as Salt's own packages: the minion's unit kills only the daemon, so that a state run
  # that restarts the minion is not killed with it
  cat > "/etc/systemd/system/$1.service" <<EOF
# Written by palplat's tools/provision.sh: Salt from PyPI in $VENV.
[Unit]
Description=The Salt ${1#salt-} ($VENV)
After=network.target

[Service]
Type=simple
ExecStart=$VENV/bin/$1
KillMode=$2
TimeoutStopSec=15
Restart=on-failure
LimitNOFILE=100000

[Install]
WantedBy=multi-user.target
EOF
}

phase_configure() {
  local id=${PALPLAT_MINION_ID:-$(hostname)}
  install -d -m 0755 /etc/salt/master.d /etc/salt/minion.d
  install -d -m 0700 "$PILLAR_DIR"
  cat > /etc/salt/master.d/palplat.conf <<EOF
# palplat from a checkout (file_roots + saltutil.sync_all), see README.md
file_roots:
  base:
    - $SRC/salt
    - $SRC
pillar_roots:
  base:
    - $PILLAR_DIR
gpg_keydir: /etc/salt/gpgkeys
auto_accept: true
EOF
  cat > /etc/salt/minion.d/palplat.conf <<EOF
master: 127.0.0.1
# this dev machine's pillar holds its k3s token in plain YAML (no GPG key here);
# production keeps secrets GPG-encrypted (#!yaml|palplat) and leaves this unset
palplat_plaintext_secrets: true
EOF
  # the id is the machine's own (a cloned image keeps its name out of the config)
  [ -n "${PALPLAT_MINION_ID:-}" ] && printf 'id: %s\n' "$id" > /etc/salt/minion.d/id.conf
  unit salt-master control-group
  unit salt-minion process
  systemctl enable salt-master.service salt-minion.service >/dev/null 2>&1
  # daemons already running (a box made from the test image boots them) take the new config
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl try-restart salt-master.service salt-minion.service >/dev/null 2>&1 || true
}

phase_pillar() {
  [ -f "$PILLAR_DIR/palplat.sls" ] && return 0
  local token tailscale=""
  token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  if [ -n "${PALPLAT_TAILSCALE_VERSION:-}" ]; then
    # the auth key stays in its 0600 file (put it there first); never in the pillar
    tailscale="
    tailscale:
      enabled: true
      version: \"$PALPLAT_TAILSCALE_VERSION\"
      auth_key_file: /etc/palplat/tailscale-auth.key
      tags: [${PALPLAT_TAILSCALE_TAGS:-tag:palplat}]"
  fi
  install -d -m 0700 "$PILLAR_DIR"
  (
    umask 077
    # plain YAML: a dev machine has no GPG key; production keeps the token in secrets.sls
    cat > "$PILLAR_DIR/palplat.sls" <<EOF
palplat:
  host:
    packages: [curl, jq]
    timezone: Etc/UTC$tailscale
  firewall:
    management:
      allow_from: []      # SSH and Salt from anywhere; narrow it to your networks
  k3s:
    version: "$K3S_VERSION"
    role: server
    cluster_init: true
    token: "$token"
    config:
      write-kubeconfig-mode: "0600"
      disable: [traefik]
  gpu:
    enabled: false
  platform:
    helm: {version: v3.22.0}
EOF
    printf "base:\n  '*':\n    - palplat\n" > "$PILLAR_DIR/top.sls"
  )
}

phase_wheel() {
  [ -n "${PALPLAT_WHEEL:-}" ] || { say "wheel: set PALPLAT_WHEEL to palplat's wheel (make dist)"; return 2; }
  say "pip install $PALPLAT_WHEEL (into Salt's Python)"
  # its dependencies are palplat's (tools/pydeps), installed with Salt by the salt phase
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps \
    --force-reinstall "$PALPLAT_WHEEL"
  local tree
  tree=$("$VENV/bin/python" -c 'from palplat.loader import state_tree; print(state_tree() or "")')
  [ -n "$tree" ] || { say "the wheel has no state tree"; return 1; }
  install -d -m 0755 /etc/salt/master.d
  cat > /etc/salt/master.d/palplat.conf <<EOF
# palplat from its wheel (docs/installation.md): the modules come with the package's
# salt.loader entry point; the state tree is the one salt-run palplat.state_tree prints
file_roots:
  base:
    - $tree
pillar_roots:
  base:
    - $PILLAR_DIR
gpg_keydir: /etc/salt/gpgkeys
auto_accept: true
EOF
  install -d -m 0700 /etc/salt/gpgkeys
  # the daemons load the new modules and config (a running master and minion restart)
  systemctl try-restart salt-master.service salt-minion.service >/dev/null 2>&1 || true
}

# --------------------------------------------------------------------------------- run

wait_minion() {
  local id i
  for i in $(seq 1 90); do
    if salt --out=json --static -t 30 '*' test.ping 2>/dev/null | grep -q true; then return 0; fi
    sleep 2
  done
  say "the minion did not answer the master: see journalctl -u salt-minion -u salt-master"
  return 1
}

# orchestrate STEP [test=True] [expect=nochange]: salt-run state.orchestrate palplat.full,
# its JSON kept in $PALPLAT_LOG/STEP.json, then checked (summary on stderr).
orchestrate() {
  local step=$1 test=${2:-} expect=${3:-}
  local out="$LOGDIR/$step.json" rc=0
  say "== $step: salt-run state.orchestrate palplat.full $test"
  salt-run --out=json --out-file="$out" state.orchestrate palplat.full $test || rc=$?
  "$VENV/bin/python" "$HERE/provision-check" "$out" --step "$step" ${test:+--test} \
    ${expect:+--no-change} || return 1
  return $rc
}

phase_run() {
  install -d -m 0700 "$LOGDIR"
  systemctl start salt-master.service salt-minion.service
  wait_minion
  say "== sync"
  salt-run --out=quiet saltutil.sync_all
  salt --out=quiet '*' saltutil.sync_all
  say "== validate: salt-run palplat.validate"
  salt-run --out=json --out-file="$LOGDIR/validate.json" palplat.validate
  "$VENV/bin/python" "$HERE/provision-check" "$LOGDIR/validate.json" --step validate --validate
  orchestrate plan test=True
  orchestrate apply
  orchestrate again "" nochange
  say "done: palplat.full applied and idempotent"
}

[ $# -gt 0 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2; }
for phase in "$@"; do
  case $phase in
    packages|system|salt|configure|wheel|pillar|run) "phase_$phase" ;;
    *) say "unknown phase $phase"; exit 2 ;;
  esac
done
