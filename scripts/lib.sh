# shellcheck shell=bash
# Shared by scripts/quickstart and scripts/test: make sure this machine can
# build habitats (a Docker Engine that answers, debootstrap, git), installing
# what is missing with apt. Meant for Debian 12 run as root; elsewhere it says
# what to install instead of guessing.

set -euo pipefail

KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KILN_ROOT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_updated=0
# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get here; hint: install them with your package manager"
  is_root || die "missing ${missing[*]}; hint: run as root, or \`sudo apt-get install -y ${missing[*]}\`"
  log "installing ${missing[*]}"
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The engine answers when `docker version` reaches its server (the CLI
# honours DOCKER_HOST; without it, the default socket).
engine_answers() {
  if command -v docker >/dev/null; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  elif [ -z "${DOCKER_HOST:-}" ] && [ -S /var/run/docker.sock ] && command -v curl >/dev/null; then
    curl -fsS --max-time 5 --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1
  else
    return 1
  fi
}

# ensure_engine: a Docker Engine answers, or this installs docker.io and
# starts dockerd in the background (there may be no systemd to do it).
ensure_engine() {
  if engine_answers; then
    log "docker engine: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo up)"
    return 0
  fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "no engine answers at DOCKER_HOST=$DOCKER_HOST; hint: start it, or unset DOCKER_HOST to use a local dockerd"
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || die "docker.io is installed but \`docker\` is not on PATH"
  if engine_answers; then
    return 0
  fi
  is_root || die "no engine answers; hint: start one with \`sudo dockerd &\` (or \`systemctl start docker\`)"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    log "starting docker with systemctl"
    systemctl start docker || true
  fi
  if ! engine_answers; then
    local logf=/var/log/kiln-dockerd.log
    log "starting dockerd in the background (log: $logf)"
    # setsid: dockerd outlives this script and ignores its terminal.
    setsid dockerd >"$logf" 2>&1 < /dev/null &
  fi
  local i
  for i in $(seq 1 60); do
    engine_answers && { log "docker engine is up"; return 0; }
    sleep 1
  done
  die "dockerd did not answer within 60s; see /var/log/kiln-dockerd.log"
}

# ensure_host_tools: what a `bootstrap:` base and `repos:` need on the host.
ensure_host_tools() {
  apt_install debootstrap git ca-certificates
}

ensure_cargo() {
  command -v cargo >/dev/null || die "cargo is not on PATH; hint: install Rust with rustup (https://rustup.rs)"
}
