#!/usr/bin/env bash
# Push figures for issue 12: `kiln push` of a 10-phase chain (every phase
# configured, `registry.cache: true`, so 10 snapshots plus the final image)
# into an empty registry, then again with nothing new; beside it, in the
# same rounds, `docker push` of the same final image (the engine's own push,
# gzip-compressed layers) into an empty registry and again.
#
#   bench/registry/push.sh [--kiln BIN] [--runs N] [--data-mb N] [--setup-mb N]
#
# Needs Debian's docker-registry (/usr/bin/docker-registry), git, python3
# and the test suites' busybox image (`kiln-test/busybox:latest`, made by
# `cargo test`). Each round starts a fresh registry (new storage, same
# loopback port). Removes only what it made: the habitat's images and the
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

NAME="kbpush-$$"
WORK=$(mktemp -d /var/tmp/kiln-bench-push.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
REG_PID=
export KILN_CACHE_DIR="$WORK/cache"

cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  for ref in $($DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep -E "^(habitat-$NAME|$HOST/bench/)" || true); do
    $DOCKER rmi -f "$ref" >/dev/null 2>&1 || true
  done
  for id in $($DOCKER images -aq --filter "label=dev.kiln.habitat=$NAME"); do
    $DOCKER rmi -f "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

registry() { # a fresh, empty registry on $HOST
  [ -n "$REG_PID" ] && { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; }
  local dir="$WORK/registry-$1"
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
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "docker-registry did not start" >&2; exit 1
}

# The habitat: every phase configured.
H="$WORK/h"
mkdir -p "$H" "$WORK/repo"
head -c $((DATA_MB << 20)) /dev/urandom > "$H/data.bin"
head -c 100000 /dev/urandom > "$H/tool.bin"
TOOL_SHA=$(sha256sum "$H/tool.bin" | cut -d' ' -f1)
( cd "$WORK/repo" && git init -q -b main && echo readme > README &&
  git add -A && git -c user.email=b@k -c user.name=bench commit -qm one )
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
    - { name: tool, source: tool.bin, sha256: "$TOOL_SHA" }
  verify:
    files: [/work/app/README]
  final:
    command: ["sh"]
registry:
  repository: $HOST/bench/app
  tags: [latest]
  cache: true
EOF
"$KILN" build "$H" --progress plain >/dev/null 2>"$WORK/build.log" || { cat "$WORK/build.log" >&2; exit 1; }
FINAL=$("$KILN" build "$H" --progress plain 2>/dev/null)

ms() { python3 -c 'import sys,time; print(int(time.time()*1000))'; }
# `kiln push` timed; prints "ms bytes blobs_uploaded blobs_present push_ms"
# (push_ms: the push alone, after the no-op build, from its `push_end`).
kiln_push() {
  local t0 t1 out
  t0=$(ms)
  out=$("$KILN" push "$H" --progress json 2>"$WORK/push.err") || { cat "$WORK/push.err" >&2; exit 1; }
  t1=$(ms)
  echo "$out" | python3 -c "
import json,sys
e=[json.loads(l) for l in sys.stdin if l.startswith('{')]
end=[x for x in e if x['event']=='push_end'][-1]
print($t1-$t0, end['bytes_uploaded'], end['blobs_uploaded'], end['blobs_present'], end['duration_ms'])"
}
# `docker push` timed; prints "ms bytes" (the compressed layers + config it stored).
docker_push() {
  local t0 t1 ref="$HOST/bench/docker:latest"
  $DOCKER tag "$FINAL" "$ref"
  t0=$(ms)
  $DOCKER push -q "$ref" >/dev/null
  t1=$(ms)
  python3 - "$HOST" <<PY
import json,sys,urllib.request
req=urllib.request.Request("http://$HOST/v2/bench/docker/manifests/latest",
  headers={"Accept":"application/vnd.docker.distribution.manifest.v2+json"})
m=json.load(urllib.request.urlopen(req))
print($t1-$t0, sum(l["size"] for l in m["layers"]) + m["config"]["size"])
PY
}

declare -a KC KA DC DA
for r in $(seq "$RUNS"); do
  registry "k$r"
  KC+=("$(kiln_push)")
  KA+=("$(kiln_push)")
  registry "d$r"
  DC+=("$(docker_push)")
  DA+=("$(docker_push)")
done

python3 - "$RUNS" "$DATA_MB" "$SETUP_MB" "$(git -C "$(dirname "$0")" rev-parse --short HEAD)" \
  "${KC[@]}" "--" "${KA[@]}" "--" "${DC[@]}" "--" "${DA[@]}" <<'PY'
import statistics, sys
runs, data, setup, rev = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
groups, cur = [], []
for a in sys.argv[5:] + ["--"]:
    if a == "--":
        groups.append([list(map(int, x.split())) for x in cur]); cur = []
    else:
        cur.append(a)
kc, ka, dc, da = groups
def t(rows):
    ms = [r[0] for r in rows]
    return f"{statistics.median(ms)/1000:.2f}s ({min(ms)/1000:.2f}–{max(ms)/1000:.2f})"
def mb(n): return f"{n/1e6:.1f} MB"
def alone(rows):
    ms = [r[4] for r in rows]
    return f"{statistics.median(ms)/1000:.2f}s"
import os
print(f"load average (1/5/15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
print(f"kiln `{rev}`, {runs} rounds, a 10-phase chain: {data} MiB copied file, {setup} MiB written by setup")
print()
print("| push | into an empty registry | again, nothing new | sent (empty / again) | blobs sent (empty / again) |")
print("|------|------------------------|--------------------|----------------------|----------------------------|")
print(f"| `kiln push` (10 snapshots + final, uncompressed) | {t(kc)}; push alone {alone(kc)} | {t(ka)}; push alone {alone(ka)} | {mb(kc[0][1])} / {mb(ka[0][1])} | {kc[0][2]} / {ka[0][2]} ({ka[0][3]} present) |")
print(f"| `docker push` (final only, gzip) | {t(dc)} | {t(da)} | {mb(dc[0][1])} stored | – |")
PY
