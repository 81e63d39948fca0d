#!/usr/bin/env bash
# A single-node Ceph cluster (one mon, one memstore OSD) with radosgw on loopback: a real S3 server
# for the second test tier and for benchmarks. Facts behind the settings: docs/ceph-rgw.md.
#
#   scripts/rgw.sh install                      apt-get the Ceph daemons that are missing
#   scripts/rgw.sh start [DIR]                  start the cluster; a no-op when it is up and healthy
#   scripts/rgw.sh stop [DIR]                   stop every gateway, then osd, then mon; idempotent
#   scripts/rgw.sh status [DIR]                 each daemon's state; exit 0 when mon, osd, main gateway serve
#   scripts/rgw.sh stop-rgw [DIR [NAME]]        stop only a gateway (an S3 outage; data stays in the OSD)
#   scripts/rgw.sh start-rgw [DIR [NAME PORT]]  start a gateway again on its port, or a new one on PORT
#
# DIR defaults to /tmp/workspace-sync-rgw. The main gateway is named "wsync" and listens on RGW_PORT (default
# 7480, read when the cluster is created); other NAMEs are extra gateways to the same data (one per test file, so one file's outage
# test does not take down another's server). `start-rgw` of a new gateway appends RGW_FRONTEND_EXTRA to its
# beast frontend (e.g. "ssl_endpoint=127.0.0.1:P ssl_certificate=F ssl_private_key=K" for TLS) and passes
# RGW_EXTRA_ARGS (space-separated) to radosgw (e.g. encryption settings). `start` prints `ready http://127.0.0.1:PORT` and writes
# DIR/env with the credentials and S3_ENDPOINT. The OSD keeps its data in RAM (memstore: faster and
# with fewer moving parts than a file-backed bluestore), so a full stop discards it. Its size is
# RGW_MEMSTORE_BYTES (default 4 GiB, read when the cluster is created); deleted data stays in it until
# RGW's garbage collection, so a lane that writes gigabytes (bench/scale.mjs at 100k files) needs more.
set -euo pipefail

# Fixed, loopback-only test credentials of a throwaway cluster.
readonly ACCESS_KEY=wsync-test-access
readonly SECRET_KEY=wsync-test-secret-0123456789
readonly RGW_UID=wsync
readonly MAIN_GATEWAY=wsync
# The mon ports are fixed by ceph.conf: one cluster per machine at a time.
readonly MON_PORTS=(3300 6789)
readonly T0=$EPOCHSECONDS

die() {
  echo "rgw.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '5,10s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

# Prints the last lines of the logs written during this invocation (a test run leaves one log per
# test file's gateway), so a failure in CI explains itself.
show_logs() {
  local f
  while IFS= read -r f; do
    [[ -s $f ]] || continue
    echo "---- tail of $f" >&2
    tail -n 25 "$f" >&2
  done < <(find "$DIR/log" -type f -newermt "@$((T0 - 1))" 2>/dev/null | sort)
}

# Daemons this invocation launched: a failed start stops them again (their logs stay).
STARTED=()

fail() {
  local i
  echo "rgw.sh: $*" >&2
  show_logs
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do halt "${STARTED[i]}" KILL; done
  exit 1
}

ceph_cmd() {
  timeout 20 ceph -c "$DIR/ceph.conf" --connect-timeout 10 "$@"
}

# Short timeouts: polled until the monitor answers.
mon_up() {
  timeout 5 ceph -c "$DIR/ceph.conf" --connect-timeout 3 mon stat
}

# Daemons are mon, osd and rgw.NAME (one per gateway); each has DIR/run/DAEMON.pid.
pid_of() {
  local f="$DIR/run/$1.pid"
  [[ -f $f ]] && cat "$f"
}

exe_of() {
  case $1 in
    mon) echo ceph-mon ;;
    osd) echo ceph-osd ;;
    rgw.*) echo radosgw ;;
  esac
}

# True while PID $1 runs executable $2 and is not a zombie: a stale pid file (reboot, PID reuse)
# must never make us signal an unrelated process.
pid_runs() {
  local stat
  [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

alive() {
  local pid
  pid=$(pid_of "$1") || return 1
  [[ -n $pid ]] && pid_runs "$pid" "$(exe_of "$1")"
}

# Every gateway ever started in DIR, running or not (its port file outlives it).
gateways() {
  local f
  for f in "$DIR"/run/rgw.*.port; do
    [[ -e $f ]] || continue
    f=${f##*/run/rgw.}
    echo "${f%.port}"
  done
}

gateway_port() {
  cat "$DIR/run/rgw.$1.port" 2>/dev/null
}

http_ok() {
  [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:$1/" || true) == 200 ]]
}

port_free() {
  ! ss -Htln "sport = :$1" | grep -q .
}

# Runs "$@" every 0.25 s until it succeeds; fails after $3 seconds, or at once when daemon $1 dies.
wait_for() {
  local daemon=$1 what=$2 secs=$3
  shift 3
  local deadline=$((SECONDS + secs))
  while true; do
    alive "$daemon" || fail "$daemon exited while waiting for $what"
    "$@" >/dev/null 2>&1 && return
    ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.25
  done
}

# Starts a daemon in the foreground-with-& style so $! is the daemon itself. Its output goes to a
# file, not the caller's pipes (a caller reading them to EOF would hang), and setsid gives it its
# own session so a Ctrl-C in the caller's terminal spares it.
launch() {
  local daemon=$1
  shift
  setsid "$@" -f -c "$DIR/ceph.conf" </dev/null >>"$DIR/log/$daemon.out" 2>&1 &
  local pid=$! i
  echo "$pid" >"$DIR/run/$daemon.pid"
  STARTED+=("$daemon")
  # Until the exec, $! runs bash or setsid: only then may `alive` judge it.
  for ((i = 0; i < 100; i++)); do
    [[ -e /proc/$pid && $(cat "/proc/$pid/comm" 2>/dev/null) != "$(exe_of "$daemon")" ]] || return 0
    sleep 0.05
  done
  fail "$daemon (pid $pid) did not exec $(exe_of "$daemon") within 5s"
}

# Stops a daemon by its recorded PID with signal $2 (default TERM), escalating to KILL after 20 s.
halt() {
  local daemon=$1 sig=${2:-TERM} exe pid i
  exe=$(exe_of "$daemon")
  pid=$(pid_of "$daemon") || return 0
  if [[ -n $pid ]] && pid_runs "$pid" "$exe"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    i=0
    while pid_runs "$pid" "$exe" && ((i < 100)); do
      if ((i == 80)); then
        echo "rgw.sh: $daemon (pid $pid) still running 20s after SIG$sig; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
      sleep 0.25
      i=$((i + 1))
    done
    if pid_runs "$pid" "$exe"; then die "$daemon (pid $pid) did not exit even after SIGKILL"; fi
  fi
  rm -f "$DIR/run/$daemon.pid"
}

write_conf() {
  local fsid=$1
  cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
public addr = 127.0.0.1
ms bind ipv6 = false
# No cephx on a loopback test cluster; crc mode, or radosgw loops on get_initial_auth_request -13.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
# One OSD: replicas of one, placement over OSDs instead of hosts, few PGs.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-4294967296}

[client]
rgw data = $DIR/rgw
# Deleted objects live in OSD RAM until garbage collection; collect within minutes, not hours.
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
}

write_env() {
  cat >"$DIR/env" <<EOF
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=us-east-1
S3_ENDPOINT=http://127.0.0.1:$1
EOF
}

# Starts gateway $1 on port $2 and waits until it answers HTTP.
start_gateway() {
  # Without tcp_nodelay a small GET waits ~40 ms on Nagle + delayed ACK (15x slower).
  local name=$1 port=$2 extra=() more=() frontend="beast endpoint=127.0.0.1:$2 tcp_nodelay=1"
  if [[ $name != "$MAIN_GATEWAY" ]]; then
    # Background work (lifecycle, garbage collection, quotas, sync) is the main gateway's; without it
    # an extra gateway stops in ~0.1 s instead of 4-8 s (its lifecycle thread sleeps 5 s at a time).
    extra=(--rgw-enable-lc-threads=false --rgw-enable-gc-threads=false --rgw-enable-quota-threads=false --rgw-run-sync-thread=false)
    read -r -a more <<<"${RGW_EXTRA_ARGS:-}"
    extra+=("${more[@]}")
    frontend+=${RGW_FRONTEND_EXTRA:+ $RGW_FRONTEND_EXTRA}
  fi
  if ! alive "rgw.$name"; then
    port_free "$port" || die "port $port on 127.0.0.1 is in use; cannot start gateway $name there"
    echo "$port" >"$DIR/run/rgw.$name.port"
    launch "rgw.$name" radosgw -n "client.rgw.$name" --rgw-frontends "$frontend" "${extra[@]}"
  fi
  wait_for "rgw.$name" "gateway $name to answer HTTP 200 on 127.0.0.1:$port" 60 http_ok "$port"
}

cluster_up() {
  [[ -f $DIR/env ]] && alive mon && alive osd
}

osd_up() {
  ceph_cmd osd stat -f json | grep -q '"num_up_osds":1'
}

cmd_install() {
  local missing=() p
  for p in radosgw ceph-mon ceph-osd; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "installed: radosgw ceph-mon ceph-osd"
    return
  fi
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed; check access to the Debian mirror"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

cmd_start() {
  command -v radosgw >/dev/null || die "radosgw is not installed; run: $0 install"
  local port p
  # A cluster that is up keeps its data; only its main gateway may need starting again.
  if cluster_up; then
    port=$(gateway_port "$MAIN_GATEWAY")
    start_gateway "$MAIN_GATEWAY" "$port"
    echo "ready http://127.0.0.1:$port"
    return
  fi
  cmd_stop
  port=${RGW_PORT:-7480}
  [[ $port =~ ^[0-9]+$ ]] || die "RGW_PORT must be a port number, not '$port'"
  [[ ${RGW_MEMSTORE_BYTES:-4294967296} =~ ^[1-9][0-9]*$ ]] || die "RGW_MEMSTORE_BYTES must be a byte count, not '${RGW_MEMSTORE_BYTES}'"
  for p in "${MON_PORTS[@]}" "$port"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use (another Ceph cluster or server?); stop it or set RGW_PORT"
  done
  # Only ever wipe a directory this script made.
  if [[ -d $DIR && ! -f $DIR/ceph.conf && -n $(ls -A "$DIR") ]]; then
    die "$DIR exists and is not an rgw.sh cluster directory; choose another DIR"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"/{run,log,mon/ceph-a,osd/ceph-0,rgw}
  local fsid osd_uuid osd_id
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null

  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$DIR/monmap" >/dev/null
  ceph-mon --mkfs -c "$DIR/ceph.conf" -i a --monmap "$DIR/monmap" >>"$DIR/log/mkfs.out" 2>&1 ||
    fail "ceph-mon --mkfs failed"
  launch mon ceph-mon -i a
  wait_for mon "the monitor to answer" 30 mon_up

  osd_id=$(ceph_cmd osd new "$osd_uuid") || fail "ceph osd new failed"
  [[ $osd_id == 0 ]] || fail "expected OSD id 0 from 'ceph osd new', got '$osd_id'"
  ceph-osd --mkfs -c "$DIR/ceph.conf" -i 0 --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1 ||
    fail "ceph-osd --mkfs failed"
  launch osd ceph-osd -i 0
  wait_for osd "the OSD to come up" 60 osd_up

  start_gateway "$MAIN_GATEWAY" "$port"
  timeout 60 radosgw-admin -c "$DIR/ceph.conf" user create --uid="$RGW_UID" --display-name="workspace-sync tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$DIR/log/admin.out" 2>&1 ||
    fail "radosgw-admin user create failed"
  write_env "$port"
  echo "ready http://127.0.0.1:$port"
}

cmd_stop() {
  local g
  for g in $(gateways); do halt "rgw.$g"; done
  halt osd
  halt mon
}

# Graceful, not a kill: a killed gateway's watch on the control objects lingers 30 s in the OSD, and
# every bucket creation through another gateway meanwhile waits ~20 s for it to answer.
cmd_stop_rgw() {
  halt "rgw.${1:-$MAIN_GATEWAY}"
}

cmd_start_rgw() {
  local name=${1:-$MAIN_GATEWAY} port
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die "gateway NAME may only hold letters, digits, - and _, not '$name'"
  cluster_up || die "no running cluster in $DIR; run: $0 start $DIR"
  port=${2:-$(gateway_port "$name" || true)}
  [[ $port =~ ^[0-9]+$ ]] || die "gateway $name has no port yet; pass one: $0 start-rgw $DIR $name PORT"
  start_gateway "$name" "$port"
  echo "ready http://127.0.0.1:$port"
}

# Healthy means mon, osd and the main gateway; extra gateways (stopped ones are normal: a test file
# that finished) are listed for information.
cmd_status() {
  local d port ok=0
  for d in mon osd $(gateways | sed 's/^/rgw./'); do
    if alive "$d"; then
      echo "$d: running (pid $(pid_of "$d"))"
    else
      echo "$d: stopped"
      [[ $d == rgw.* && $d != "rgw.$MAIN_GATEWAY" ]] || ok=1
    fi
  done
  port=$(gateway_port "$MAIN_GATEWAY" || true)
  if [[ -n $port ]] && http_ok "$port"; then
    echo "s3: http://127.0.0.1:$port answers"
  else
    echo "s3: the main gateway does not answer"
    ok=1
  fi
  return "$ok"
}

(($# >= 1)) || usage
DIR=${2:-/tmp/workspace-sync-rgw}
case $1 in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  stop-rgw) cmd_stop_rgw "${3:-}" ;;
  start-rgw) cmd_start_rgw "${3:-}" "${4:-}" ;;
  *) usage ;;
esac
