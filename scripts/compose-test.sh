#!/usr/bin/env bash
# `make compose-test`: the docker/ deliverable run for real, with a Docker engine this script installs,
# starts and stops itself. Builds the three images from docker/Dockerfile with docker-compose, runs the
# stack (test/compose/), and renders and validates the Kubernetes manifests. Ends with one plain line,
# "N passed, N failed", counting one test per check (vitest JSON in .tmp/vitest-compose.json).
#
# The engine is private to this script: its own socket, data root (images and build cache, kept between
# runs) and exec root, no default bridge and no iptables rules; every test container uses the host's
# network, so all traffic stays on loopback. No registry image is pulled: the base image the Dockerfile
# names (NODE_IMAGE) is built here from Debian packages (debootstrap) plus the host's Node.js and npm.
#
# Environment: COMPOSE_TEST_TIERS="embedded rgw" (default both), COMPOSE_TEST_KEEP=1 leaves the engine running.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

readonly STATE=/var/lib/workspace-sync-docker
readonly RUN=/run/workspace-sync-docker
readonly BASE_IMAGE=node:20-bookworm-slim
readonly RESULTS=.tmp/vitest-compose.json
export DOCKER_HOST=unix://$RUN/docker.sock
T0=$SECONDS

say() { echo "compose-test: $*" >&2; }
die() {
  say "$*"
  echo "0 passed, 1 failed"
  exit 1
}

mkdir -p .tmp
rm -f "$RESULTS"
[[ $(id -u) -eq 0 ]] || die "needs root: it installs and starts a Docker engine and makes FUSE mounts"

# ---- install: Debian's engine (20.10) and compose v1 (1.29), debootstrap for the base image ----
missing=()
for p in docker.io docker-compose debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  # policy-rc.d (where present) keeps the package from starting a system-wide daemon; this script runs its own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian client, whatever else is first on PATH (a newer static client wants buildx for BuildKit).
mkdir -p .tmp/compose/bin
ln -sf /usr/bin/docker .tmp/compose/bin/docker
export PATH=$REPO/.tmp/compose/bin:$PATH

# One run at a time per machine: the engine, its socket and the test directories are shared.
mkdir -p "$RUN"
exec 9>"$RUN.lock"
flock -w 1800 9 || die "another compose-test holds $RUN.lock"

# ---- the engine ----
dockerd_pid() {
  local pid
  pid=$(cat "$RUN/dockerd.pid" 2>/dev/null) || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] && echo "$pid"
}

start_engine() {
  if dockerd_pid >/dev/null && docker info >/dev/null 2>&1; then
    say "reusing the engine left running at $DOCKER_HOST"
    return
  fi
  mkdir -p "$STATE"
  # No default bridge and no iptables: nothing leaves loopback, and the host's firewall is untouched.
  setsid dockerd --host "$DOCKER_HOST" --data-root "$STATE" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
    --bridge none --iptables=false --ip-masq=false --storage-driver overlay2 --log-level warn \
    </dev/null >>"$RUN/dockerd.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 120; i++)); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -n 20 "$RUN/dockerd.log" >&2
  die "dockerd did not answer on $DOCKER_HOST within 60s (log: $RUN/dockerd.log)"
}

# shellcheck disable=SC2317 # reached from the EXIT trap
stop_engine() {
  local pid i
  pid=$(dockerd_pid) || return 0
  kill -TERM "$pid"
  for ((i = 0; i < 120; i++)); do
    [[ -e /proc/$pid ]] || return 0
    sleep 0.5
  done
  say "dockerd (pid $pid) still running 60s after SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# FUSE mounts and the shared bind mounts the tests make live under this directory; a run that was
# killed may have left some, and nothing here may outlive the run.
readonly MOUNTS=/tmp/workspace-sync-compose
clear_mounts() {
  local m
  # Deepest first.
  while IFS= read -r m; do
    fusermount -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v root="$MOUNTS" 'index($5, root) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
  local status=$?
  if [[ ${COMPOSE_TEST_KEEP:-0} != 1 ]]; then
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    stop_engine
  fi
  clear_mounts
  if [[ $rgw_started == 1 ]]; then scripts/rgw.sh stop >/dev/null 2>&1 || true; fi
  exit "$status"
}

# ---- the base image the Dockerfile names: Debian bookworm (minbase) + the host's Node.js and npm ----
base_image() {
  local node npm key rootfs mirror
  node=$(command -v node)
  npm=$(dirname "$(readlink -f "$(command -v npm)")")/..
  # Rebuilt when Node.js, npm, the CA bundle or this recipe change.
  key=$( { node --version; cat "$npm/package.json"; cat /etc/ssl/certs/ca-certificates.crt; declare -f base_image; } | sha256sum | cut -c1-16)
  if docker image inspect "workspace-sync-test/base:$key" >/dev/null 2>&1; then
    docker tag "workspace-sync-test/base:$key" "$BASE_IMAGE"
    return
  fi
  mirror=$(awk '/^URIs:/ { print $2; exit } /^deb / { print $2; exit }' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null)
  say "building $BASE_IMAGE from Debian bookworm ($mirror) and Node.js $(node --version)"
  rootfs=$(mktemp -d /var/tmp/workspace-sync-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
  install -m 0755 "$node" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # The host reaches the npm registry through its own CA bundle; node and npm in the image must too.
  mkdir -p "$rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # The official image's unprivileged user, which the Dockerfile's USER instructions name.
  echo 'node:x:1000:1000::/home/node:/bin/bash' >>"$rootfs/etc/passwd"
  echo 'node:x:1000:' >>"$rootfs/etc/group"
  echo 'node:*:19000:0:99999:7:::' >>"$rootfs/etc/shadow"
  install -d -o 1000 -g 1000 "$rootfs/home/node"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV NPM_CONFIG_UPDATE_NOTIFIER=false' \
    --change 'CMD ["node"]' - "workspace-sync-test/base:$key" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
  docker tag "workspace-sync-test/base:$key" "$BASE_IMAGE"
}

# Tier "rgw" runs against the machine's Ceph RGW; started here when it is not running, and then
# stopped again at the end (a cluster that was already up is left as it was).
TIERS=${COMPOSE_TEST_TIERS:-embedded rgw}
export COMPOSE_TEST_TIERS=$TIERS
rgw_started=0
trap cleanup EXIT
if [[ " $TIERS " == *" rgw "* ]]; then
  scripts/rgw.sh install >/dev/null
  if ! scripts/rgw.sh status >/dev/null 2>&1; then
    scripts/rgw.sh start >/dev/null
    rgw_started=1
  fi
fi
clear_mounts
start_engine
say "engine up ($(docker version -f '{{.Server.Version}}'), $(docker info -f '{{.Driver}}, cgroup v{{.CgroupVersion}}'))"
base_image
say "base image $BASE_IMAGE ready after $((SECONDS - T0))s"

status=0
npx vitest run --config test/compose/vitest.config.ts --reporter=default --reporter=json --outputFile.json="$RESULTS" ||
  status=$?

if [[ -f $RESULTS ]]; then
  # shellcheck disable=SC2016 # a JavaScript template literal, not shell
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
  ' "$RESULTS"
else
  echo "0 passed, 1 failed"
  status=1
fi
say "done in $((SECONDS - T0))s"
exit "$status"
