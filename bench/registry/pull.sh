#!/usr/bin/env bash
# Pull figures for issue 12: on an empty engine (every image of the habitat
# removed; the base image and kiln's host cache of repos and tools stay, as
# on a CI runner with a warm base), the build of a 10-phase chain
#   - from the registry's snapshot cache (`kiln build`, `registry.cache: true`,
#     after one `kiln push`): no phase runs, the final snapshot is pulled;
#   - cold (`kiln build --no-remote-cache`): every phase runs;
#   - the floor: `docker pull` of the same final image from the same registry;
# and, after a tools edit, `kiln build` again (the registry holds repos: only
# tools..final run).
#
#   bench/registry/pull.sh [--kiln BIN] [--runs N] [--data-mb N] [--setup-mb N]
#
# Needs Debian's docker-registry (/usr/bin/docker-registry), git, python3
# and the test suites' busybox image (`kiln-test/busybox:latest`, made by
# `cargo test`). Removes only what it made: the habitat's images and the
# `127.0.0.1:PORT/bench/*` tags. No test asserts a time: this only measures.
set -euo pipefail

KILN=target/release/kiln
RUNS=5
DATA_MB=32
SETUP_MB=16
while [ $# -gt 0 ]; do
  case "$1" in
    --kiln) KILN=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --data-mb) DATA_MB=$2; shift 2 ;;
    --setup-mb) SETUP_MB=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
KILN=$(realpath "$KILN")
DOCKER=$(command -v /usr/bin/docker || command -v docker)
[ -x /usr/bin/docker-registry ] || { echo "needs /usr/bin/docker-registry (apt-get install docker-registry)" >&2; exit 2; }
$DOCKER image inspect kiln-test/busybox:latest >/dev/null 2>&1 ||
  { echo "needs kiln-test/busybox:latest (run the test suite once)" >&2; exit 2; }

NAME="kbpull-$$"
WORK=$(mktemp -d /var/tmp/kiln-bench-pull.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
REG_PID=
export KILN_CACHE_DIR="$WORK/cache"
export DOCKER_CONFIG="$WORK/docker"   # no credentials: a loopback registry wants none
mkdir -p "$DOCKER_CONFIG"

# Every image of the habitat, and every tag of this registry, gone.
empty_engine() {
  for ref in $($DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep -E "^(habitat-$NAME|$HOST/bench/)" || true); do
    $DOCKER rmi -f "$ref" >/dev/null 2>&1 || true
  done
  for _ in 1 2 3; do
    for id in $($DOCKER images -aq --no-trunc --filter "label=dev.kiln.habitat=$NAME"); do
      $DOCKER rmi -f "$id" >/dev/null 2>&1 || true
    done
  done
  for ref in $($DOCKER images --digests --format '{{.Repository}}@{{.Digest}}' | grep -E "^$HOST/bench/" || true); do
    $DOCKER rmi -f "$ref" >/dev/null 2>&1 || true
  done
  # kiln's record of the images it made goes with them (a fresh machine has none).
  rm -rf "$KILN_CACHE_DIR/made"
}

cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  empty_engine
  rm -rf "$WORK"
}
trap cleanup EXIT

dir="$WORK/registry"
mkdir -p "$dir"
cat > "$dir/config.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $dir/storage }, delete: { enabled: true } }
http: { addr: $HOST }
EOF
/usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && break
  sleep 0.05
done

# The habitat: every phase configured (the same shape as push.sh).
H="$WORK/h"
mkdir -p "$H" "$WORK/repo"
head -c $((DATA_MB << 20)) /dev/urandom > "$H/data.bin"
head -c 100000 /dev/urandom > "$H/tool.bin"
TOOL_SHA=$(sha256sum "$H/tool.bin" | cut -d' ' -f1)
( cd "$WORK/repo" && git init -q -b main && echo readme > README &&
  git add -A && git -c user.email=b@k -c user.name=bench commit -qm one )
write_config() {
cat > "$H/kiln.yaml" <<EOF
name: $NAME
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  env:
    - STAGE=bench
  habitat:
    dirs: [/work]
    work_dir: /work
  files:
    copies:
      - { source: data.bin, dest: /data/data.bin }
  setup:
    commands:
      root: ["mkdir -p /opt && dd if=/dev/urandom of=/opt/setup.bin bs=1048576 count=$SETUP_MB 2>/dev/null"]
  repos:
    - { url: $WORK/repo, path: /work/app }
  tools:
    - { name: tool, source: $1, sha256: "$2" }
  verify:
    files: [/work/app/README]
  final:
    command: ["sh"]
registry:
  repository: $HOST/bench/app
  tags: [latest]
  cache: true
EOF
}
write_config tool.bin "$TOOL_SHA"
"$KILN" push "$H" --progress plain >/dev/null 2>"$WORK/push.log" || { cat "$WORK/push.log" >&2; exit 1; }
# The tools edit (not pushed): each round's edited build pulls repos and
# runs tools..final, which the next round's empty engine removes again.
head -c 100000 /dev/urandom > "$H/tool2.bin"
TOOL2_SHA=$(sha256sum "$H/tool2.bin" | cut -d' ' -f1)

ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
# A timed `kiln build` with ARGS; prints "ms phases_built phases_pulled".
kiln_build() {
  local t0 t1 out
  t0=$(ms)
  out=$("$KILN" build "$H" --progress json "$@" 2>"$WORK/build.err") || { cat "$WORK/build.err" >&2; exit 1; }
  t1=$(ms)
  echo "$out" | python3 -c "
import json,sys
e=[json.loads(l) for l in sys.stdin if l.startswith('{')]
ends=[x for x in e if x['event']=='phase_end']
print($t1-$t0, sum(x['status']=='built' for x in ends), sum(x['status']=='pulled' for x in ends))"
}
docker_pull() {
  local t0 t1
  t0=$(ms)
  $DOCKER pull -q "$HOST/bench/app:latest" >/dev/null
  t1=$(ms)
  echo "$((t1 - t0)) 0 0"
}

declare -a WARM COLD FLOOR EDIT
for r in $(seq "$RUNS"); do
  write_config tool.bin "$TOOL_SHA"
  empty_engine; WARM+=("$(kiln_build)")
  empty_engine; FLOOR+=("$(docker_pull)")
  empty_engine; COLD+=("$(kiln_build --no-remote-cache)")
  # A tools edit on an empty engine: repos comes from the registry.
  empty_engine
  write_config tool2.bin "$TOOL2_SHA"
  EDIT+=("$(kiln_build)")
done

python3 - "$RUNS" "$DATA_MB" "$SETUP_MB" "$(git -C "$(dirname "$0")" rev-parse --short HEAD)" \
  "${WARM[@]}" "--" "${COLD[@]}" "--" "${FLOOR[@]}" "--" "${EDIT[@]}" <<'PY'
import os, statistics, sys
runs, data, setup, rev = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
groups, cur = [], []
for a in sys.argv[5:] + ["--"]:
    if a == "--":
        groups.append([list(map(int, x.split())) for x in cur]); cur = []
    else:
        cur.append(a)
warm, cold, floor, edit = groups
def t(rows):
    ms = [r[0] for r in rows]
    return f"{statistics.median(ms)/1000:.2f}s ({min(ms)/1000:.2f}–{max(ms)/1000:.2f})"
def ph(rows):
    return f"{rows[0][1]} built, {rows[0][2]} pulled" if len({(r[1], r[2]) for r in rows}) == 1 else "varies"
print(f"load average (1/5/15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
print(f"kiln `{rev}`, {runs} rounds, a 10-phase chain: {data} MiB copied file, {setup} MiB written by setup; empty engine each time")
print()
print("| on an empty engine | time (median, min–max) | phases |")
print("|--------------------|------------------------|--------|")
print(f"| `kiln build` from the registry's snapshot cache | {t(warm)} | {ph(warm)} |")
print(f"| `docker pull` of the same final image (the floor) | {t(floor)} | – |")
print(f"| `kiln build --no-remote-cache` (cold) | {t(cold)} | {ph(cold)} |")
print(f"| `kiln build` after a tools edit (repos pulled) | {t(edit)} | {ph(edit)} |")
PY
