#!/usr/bin/env bash
# The S3 service for tests and development: a throw-away single-node Ceph cluster (one mon, one
# memstore osd, radosgw serving S3) on 127.0.0.1, from Debian packages, without systemd.
#
#   scripts/services/s3.sh up [DIR]     start it (idempotent); prints the test environment on stdout:
#                                       BINDLE_TEST_S3_ENDPOINT=… AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=…
#   scripts/services/s3.sh down [DIR]   stop the daemons `up` started in DIR and remove DIR
#
# DIR defaults to ${TMPDIR:-/tmp}/bindle-s3. Progress goes to stderr, daemon logs to DIR/log.
# Environment: BINDLE_S3_PORT (S3 port, default 27480); BINDLE_S3_MON_PORT (mon, msgr2; msgr1 is
# the next port; default 27330); BINDLE_S3_OSD_PORTS ("min max", at least 8 free ports, default
# "27400 27470"); BINDLE_S3_STORE_GB (memstore cap, default 4); BINDLE_S3_TIMEOUT (seconds per
# wait step, default 120). Missing ceph packages are installed with apt-get (needs root).
set -euo pipefail

ACTION=${1:-}
DIR=$(realpath -m "${2:-${TMPDIR:-/tmp}/bindle-s3}")
S3_PORT=${BINDLE_S3_PORT:-27480}
MON_PORT=${BINDLE_S3_MON_PORT:-27330}
read -r MSG_MIN MSG_MAX <<<"${BINDLE_S3_OSD_PORTS:-27400 27470}"
STORE_GB=${BINDLE_S3_STORE_GB:-4}
WAIT=${BINDLE_S3_TIMEOUT:-120}
REGION=us-east-1
CONF=$DIR/ceph.conf
ENDPOINT=http://127.0.0.1:$S3_PORT
# Start order; `down` stops them in reverse (radosgw waits on RADOS while stopping, so one at a time).
DAEMONS=(mon osd rgw)

say() { echo "s3.sh: $*" >&2; }
fail() {
  say "error: $*"
  if [[ ${STARTING:-0} == 1 ]]; then
    say "stopping what was started; logs stay in $DIR/log"
    stop_daemons
  fi
  exit 1
}

# The PID recorded for daemon $1, if that process is still that daemon of this DIR (not a reused PID).
live_pid() {
  local pid cmdline
  pid=$(sed -n "s/^$1 \([0-9][0-9]*\)$/\1/p" "$DIR/pids" 2>/dev/null | tail -n 1)
  [[ -n $pid ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmdline == *"$CONF"* ]] || return 1
  echo "$pid"
}

stop_daemons() {
  local i name pid
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    name=${DAEMONS[i]}
    pid=$(live_pid "$name") || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name ($pid) ignored SIGTERM for 10 s: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

print_env() {
  echo "BINDLE_TEST_S3_ENDPOINT=$ENDPOINT"
  echo "AWS_ACCESS_KEY_ID=$(cat "$DIR/access-key")"
  echo "AWS_SECRET_ACCESS_KEY=$(cat "$DIR/secret-key")"
  echo "AWS_REGION=$REGION"
}

install_packages() {
  local missing=()
  for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool uuidgen curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || fail "missing ${missing[*]}; installing the ceph packages needs root"
  say "installing ceph-mon ceph-osd radosgw (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >&2 || fail "apt-get update failed"
  timeout 900 apt-get install -y -qq --no-install-recommends \
    ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl >&2 || fail "apt-get install failed"
}

# Runs a daemon in the foreground of a background job and records its PID.
launch() {
  local name=$1
  shift
  nohup "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
  echo "$name $!" >>"$DIR/pids"
}

# Waits (bounded) until "$@" succeeds while daemon $name stays alive.
await() {
  local name=$1 what=$2
  shift 2
  local deadline=$((SECONDS + WAIT))
  until "$@" >/dev/null 2>&1; do
    live_pid "$name" >/dev/null || { tail -n 20 "$DIR/log/$name.out" >&2 || true; fail "$name exited; see $DIR/log"; }
    ((SECONDS < deadline)) || fail "$what not ready within ${WAIT}s"
    sleep 0.3
  done
}

osd_up() { [[ $(timeout 30 ceph -c "$CONF" --connect-timeout 20 osd stat 2>/dev/null) == *"1 up"* ]]; }

write_config() {
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind port min = $MSG_MIN
ms bind port max = $MSG_MAX
auth cluster required = none
auth service required = none
auth client required = none
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $DIR/log/cluster.log
crash dir = $DIR/crash
exporter sock dir = $DIR/run
osd pool default size = 1
osd pool default min size = 1
# radosgw creates about 7 pools: few placement groups each keep it under the per-osd limit
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
# a test cluster: commit mon updates at once instead of batching them for a second
paxos propose interval = 0.01
paxos min wait = 0.01

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $((STORE_GB << 30))
memstore page set = false
osd op num shards = 2
osd op num threads per shard = 1

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT
rgw data = $DIR/rgw
rgw thread pool size = 64
rgw init timeout = $WAIT
# without cephx, radosgw must not ask the mon for a "secure" session
ms mon client mode = crc
EOF
}

up() {
  install_packages
  if [[ -f $DIR/secret-key ]]; then
    local all=1
    for name in "${DAEMONS[@]}"; do live_pid "$name" >/dev/null || all=0; done
    if ((all)) && curl -fsS -m 5 -o /dev/null "$ENDPOINT/"; then
      say "already running in $DIR"
      print_env
      return 0
    fi
  fi
  if [[ -e $DIR ]]; then
    [[ -f $CONF || -z $(ls -A "$DIR") ]] || fail "$DIR exists and was not made by this script; not touching it"
    [[ -f $CONF ]] && say "restarting the cluster in $DIR"
    stop_daemons
    rm -rf "$DIR"
  fi
  for port in "$S3_PORT" "$MON_PORT" "$((MON_PORT + 1))"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port on 127.0.0.1 is in use"; fi
  done

  mkdir -p "$DIR"/{mon/ceph-a,osd,run,log,rgw,crash}
  : >"$DIR/pids"
  STARTING=1
  local fsid osd_uuid osd_id access secret
  fsid=$(uuidgen)
  osd_uuid=$(uuidgen)
  write_config "$fsid"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]" \
    "$DIR/monmap" >"$DIR/log/mkfs.out" 2>&1 || fail "monmaptool failed"
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >>"$DIR/log/mkfs.out" 2>&1 ||
    fail "ceph-authtool failed"
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" >>"$DIR/log/mkfs.out" 2>&1 ||
    fail "ceph-mon --mkfs failed; see $DIR/log/mkfs.out"
  launch mon ceph-mon -f -c "$CONF" -i a
  await mon "the mon" timeout 30 ceph -c "$CONF" --connect-timeout 20 mon stat
  say "mon up"

  osd_id=$(timeout 30 ceph -c "$CONF" --connect-timeout 20 osd new "$osd_uuid") || fail "ceph osd new failed"
  mkdir -p "$DIR/osd/ceph-$osd_id"
  timeout "$WAIT" ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.out" 2>&1 ||
    fail "ceph-osd --mkfs failed; see $DIR/log/mkfs.out"
  launch osd ceph-osd -f -c "$CONF" -i "$osd_id"
  await osd "the osd" osd_up
  say "osd up"

  launch rgw radosgw -f -c "$CONF" -n client.rgw.a
  await rgw "radosgw on $ENDPOINT" curl -fsS -m 5 -o /dev/null "$ENDPOINT/"
  say "radosgw answers on $ENDPOINT"

  access=$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
  secret=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  timeout 60 radosgw-admin -c "$CONF" user create --uid=bindle-test --display-name="bindle tests" \
    --access-key="$access" --secret-key="$secret" >>"$DIR/log/mkfs.out" 2>&1 || fail "radosgw-admin user create failed"
  printf '%s' "$access" >"$DIR/access-key"
  printf '%s' "$secret" >"$DIR/secret-key"
  STARTING=0
  say "ready"
  print_env
}

down() {
  [[ -e $DIR ]] || return 0
  [[ -f $CONF || -z $(ls -A "$DIR") ]] || fail "$DIR was not made by this script; not touching it"
  stop_daemons
  rm -rf "$DIR"
  say "stopped"
}

case $ACTION in
  up) up ;;
  down) down ;;
  *)
    echo "usage: $0 up|down [DIR]" >&2
    exit 2
    ;;
esac
