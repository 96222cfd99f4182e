#!/usr/bin/env bash
# The "beyond one machine" test topology, beside (never instead of) tests/env/services.sh:
# a three-node RabbitMQ cluster with a TLS listener, and a PostgreSQL 15 primary with a
# streaming standby, both with TLS from a private CA. Loopback only, as root, no systemd;
# all state under <state>/cluster/ (<state> is CWORKER_STATE_DIR or <repo>/.state).
#
#   cluster.sh start          start what is not running (on 2 busy cores: from nothing
#                             20-30 s, from stopped ~12 s, running ~2 s); a promoted
#                             standby is re-made from the primary
#   cluster.sh stop           stop everything; nothing of ours keeps running (epmd included)
#   cluster.sh status         say what runs; exit 0 only when everything runs as designed
#   cluster.sh env            print `export` lines (use: eval "$(cluster.sh env)")
#   cluster.sh kill-node N    SIGKILL node N's Erlang VM (a crash, no goodbye to the peers)
#   cluster.sh start-node N   start node N again (it rejoins the cluster from its disk)
#   cluster.sh stop-primary   stop the PostgreSQL primary (fast shutdown)
#   cluster.sh promote        promote the standby to primary (pg_ctl promote)
#
# Nodes cwc1@localhost..cwc3@localhost; node 1 carries the TLS listener. Ports (override
# with the env vars named): AMQP CLUSTER_AMQP_PORT_1..3 (5701-5703), Erlang distribution
# CLUSTER_DIST_PORT_1..3 (25701-25703), epmd CLUSTER_EPMD_PORT (4380), AMQPS
# CLUSTER_TLS_PORT (5771), rabbitmqctl CLUSTER_CTL_PORT_BASE (35710: node N uses
# base+10(N-1) .. +9), PostgreSQL CLUSTER_PG_PRIMARY_PORT (5461) and CLUSTER_PG_STANDBY_PORT
# (5462). None collides with services.sh (5682, 5442, 4379, 25682, 35682-35692) or the
# outage servers of test_outages.py (5692, 5452, 4389, 25692, 35692-35702).
# CLUSTER_CONSUMER_TIMEOUT_MS (1800000) is every node's consumer_timeout; a running node
# gets a changed value at `start` too (it applies to channels opened after that).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${CWORKER_STATE_DIR:-$REPO/.state}
CL=$STATE/cluster

NODES=(1 2 3)
EPMD_PORT=${CLUSTER_EPMD_PORT:-4380}
TLS_PORT=${CLUSTER_TLS_PORT:-5771}
CTL_PORT_BASE=${CLUSTER_CTL_PORT_BASE:-35710}
PG_PRIMARY_PORT=${CLUSTER_PG_PRIMARY_PORT:-5461}
PG_STANDBY_PORT=${CLUSTER_PG_STANDBY_PORT:-5462}
CONSUMER_TIMEOUT=${CLUSTER_CONSUMER_TIMEOUT_MS:-1800000}
START_TIMEOUT=${CLUSTER_START_TIMEOUT:-120}

PG_BIN=/usr/lib/postgresql/15/bin
RMQ_BIN=/usr/lib/rabbitmq/bin # the /usr/sbin wrappers `su rabbitmq` and lose our env

RMQ_ROOT=$CL/rabbitmq # HOME of every node and rabbitmqctl: the one shared cookie
TLS=$CL/tls

log() { echo "cluster: $*" >&2; }
die() {
  log "$*"
  exit 1
}

amqp_port() { local v="CLUSTER_AMQP_PORT_$1" && echo "${!v:-$((5700 + $1))}"; }
dist_port() { local v="CLUSTER_DIST_PORT_$1" && echo "${!v:-$((25700 + $1))}"; }
ctl_min() { echo $((CTL_PORT_BASE + 10 * ($1 - 1))); }
node_name() { echo "cwc$1@localhost"; }
node_dir() { echo "$RMQ_ROOT/cwc$1"; }

# ---------------------------------------------------------------- RabbitMQ

# Everything a rabbitmq script needs to find node $1 (services.sh's rmq_env, per node).
rmq_env() {
  local d
  d=$(node_dir "$1")
  export HOME=$RMQ_ROOT
  export RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME=$(node_name "$1")
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT
  RABBITMQ_NODE_PORT=$(amqp_port "$1")
  export RABBITMQ_DIST_PORT
  RABBITMQ_DIST_PORT=$(dist_port "$1")
  export ERL_EPMD_PORT=$EPMD_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE=$d/mnesia
  export RABBITMQ_LOG_BASE=$d/log
  export RABBITMQ_LOGS=$d/log/rabbit.log
  export RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
  export RABBITMQ_PID_FILE=$d/rabbitmq.pid
  export RABBITMQ_CTL_DIST_PORT_MIN RABBITMQ_CTL_DIST_PORT_MAX
  RABBITMQ_CTL_DIST_PORT_MIN=$(ctl_min "$1")
  RABBITMQ_CTL_DIST_PORT_MAX=$((RABBITMQ_CTL_DIST_PORT_MIN + 9))
  # Four Erlang VMs share two cores here: schedulers that spin waiting for work would
  # steal the CPU the other nodes need to boot.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
  export LC_ALL=C.UTF-8 LANG=C.UTF-8
}

ctl() { (rmq_env "$1" && "$RMQ_BIN/rabbitmqctl" -n "$(node_name "$1")" "${@:2}"); }

# The rabbitmq-server wrapper (a shell that waits for the VM) and the VM itself.
launcher_pid() {
  local f pid
  f=$(node_dir "$1")/launcher.pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}
beam_pid() {
  local l
  l=$(launcher_pid "$1") || return 1
  pgrep -P "$l" -x beam.smp | head -n1
}

node_up() { launcher_pid "$1" >/dev/null; }
node_ready() { node_up "$1" && ctl "$1" -q await_startup --timeout "${2:-5}" >/dev/null 2>&1; }

node_prepare() {
  local d old
  d=$(node_dir "$1")
  mkdir -p "$d/mnesia" "$d/log"
  : >"$d/rabbitmq-env.conf"
  echo '[].' >"$d/enabled_plugins"
  echo '[].' >"$d/advanced.config"
  old=$(sed -n 's/^consumer_timeout = //p' "$d/rabbitmq.conf" 2>/dev/null || true)
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(amqp_port "$1")
loopback_users.guest = true
disk_free_limit.absolute = 50MB
consumer_timeout = $CONSUMER_TIMEOUT
log.file.level = info
log.console = false
EOF
  if [ "$1" = 1 ]; then
    cat >>"$d/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS/ca.pem
ssl_options.certfile = $TLS/server.pem
ssl_options.keyfile = $TLS/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
EOF
  fi
  # A running node read its file at boot: give it the new value as well.
  if [ -n "$old" ] && [ "$old" != "$CONSUMER_TIMEOUT" ] && node_up "$1"; then
    log "node $1: consumer_timeout $old -> $CONSUMER_TIMEOUT"
    ctl "$1" -q eval "application:set_env(rabbit, consumer_timeout, $CONSUMER_TIMEOUT)." >/dev/null
  fi
}

cookie() {
  mkdir -p "$RMQ_ROOT"
  if [ ! -s "$RMQ_ROOT/.erlang.cookie" ]; then
    umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RMQ_ROOT/.erlang.cookie"
    umask 022
  fi
  chmod 400 "$RMQ_ROOT/.erlang.cookie"
}

# launch N: start node N's VM in the background.
launch() {
  local d
  d=$(node_dir "$1")
  rm -f "$d/rabbitmq.pid"
  (
    rmq_env "$1"
    cd "$d"
    # setsid: the node must outlive this script and not get the terminal's signals.
    exec setsid "$RMQ_BIN/rabbitmq-server" >"$d/log/startup.log" 2>&1 </dev/null
  ) &
  echo $! >"$d/launcher.pid"
}

node_fail() {
  local d
  d=$(node_dir "$1")
  log "node $1: $2; logs: $d/log/startup.log $d/log/rabbit.log"
  tail -n 30 "$d/log/startup.log" "$d/log/rabbit.log" 2>/dev/null >&2 || true
  exit 1
}

# wait_node N what: poll until node N answers `what` (await_startup or ping), bounded.
wait_node() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    node_up "$1" || node_fail "$1" "exited during startup"
    case "$2" in
    ready) ctl "$1" -q await_startup --timeout 10 >/dev/null 2>&1 && return 0 ;;
    ping) ctl "$1" -q eval 'ok.' >/dev/null 2>&1 && return 0 ;;
    esac
    sleep 0.5
  done
  node_fail "$1" "not $2 after ${START_TIMEOUT}s"
}

# in_parallel CMD ARGS... : CMD N ARGS for every node at once; fails if any fails.
in_parallel() {
  local n pids=() rc=0
  for n in "${NODES[@]}"; do
    "$1" "$n" "${@:2}" &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || rc=1; done
  return $rc
}

# on_joiners CMD ARGS: CMD 2 ARGS and CMD 3 ARGS at once.
on_joiners() {
  "$1" 2 "${@:2}" >/dev/null &
  local p=$!
  "$1" 3 "${@:2}" >/dev/null || { wait $p; return 1; }
  wait $p
}

# First start: all three boot at once, then 2 and 3 join 1 (each join resets the joining
# node's fresh database and restarts its app).
rmq_create() {
  local n
  log "creating the rabbitmq cluster (nodes $(node_name 1) $(node_name 2) $(node_name 3))"
  rmq_stop_all
  for n in "${NODES[@]}"; do rm -rf "$(node_dir "$n")/mnesia"/* && node_prepare "$n"; done
  for n in "${NODES[@]}"; do launch "$n"; done
  in_parallel wait_node ready || die "the rabbitmq nodes did not start"
  local t=$SECONDS
  # Each rabbitmqctl call boots a VM of its own (~1 s of CPU): what may overlap does.
  on_joiners ctl -q stop_app || die "stop_app on nodes 2 and 3 failed"
  for n in 2 3; do # one at a time: both would change node 1's schema at once
    ctl "$n" -q join_cluster "$(node_name 1)" >/dev/null || node_fail "$n" "join_cluster failed"
  done
  on_joiners ctl -q start_app || die "start_app on nodes 2 and 3 failed"
  ctl 1 -q enable_feature_flag all >/dev/null
  log "joined in $((SECONDS - t))s"
  touch "$RMQ_ROOT/clustered"
}

# start_node N: start node N unless it is ready; one whose app was stopped gets start_app.
start_node() {
  node_prepare "$1"
  if node_up "$1"; then
    node_ready "$1" && return 0
    log "node $1 runs without its app; start_app"
    ctl "$1" -q start_app >/dev/null 2>&1 || true
  else
    log "starting node $1 ($(node_name "$1"), amqp 127.0.0.1:$(amqp_port "$1"))"
    launch "$1"
  fi
  wait_node "$1" ready
}

rmq_start() {
  cookie
  if [ ! -e "$RMQ_ROOT/clustered" ]; then
    rmq_create
  else
    in_parallel start_node || die "the rabbitmq cluster did not start"
  fi
  log "rabbitmq cluster ready"
}

# stop_node N: SIGTERM is a clean shutdown for the Erlang VM (init:stop), cheaper than
# booting a rabbitmqctl VM per node; SIGKILL after 30 s.
stop_node() {
  local l b i
  l=$(launcher_pid "$1") || return 0
  b=$(beam_pid "$1" || true)
  log "stopping node $1"
  kill -TERM "${b:-$l}" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$l" 2>/dev/null || break
    [ -n "$b" ] && ! kill -0 "$b" 2>/dev/null && break
    [ "$i" -eq 300 ] && kill -KILL "${b:-$l}" "$l" 2>/dev/null
    sleep 0.1
  done
  rm -f "$(node_dir "$1")/launcher.pid"
}

kill_node() {
  local b l i
  if ! l=$(launcher_pid "$1") || ! b=$(beam_pid "$1"); then die "node $1 is not running"; fi
  log "SIGKILL node $1 (beam pid $b)"
  kill -KILL "$b"
  # The launcher shell exits once its wait returns: until then the node looks alive.
  for i in $(seq 1 100); do
    kill -0 "$b" 2>/dev/null || kill -0 "$l" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$l" 2>/dev/null || true
  rm -f "$(node_dir "$1")/launcher.pid"
}

rmq_stop_all() {
  in_parallel stop_node || true
  [ -d "$RMQ_ROOT" ] || return 0
  # erl started a private epmd on our port; it would outlive the nodes.
  (rmq_env 1 && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1) || true
  # Any leftover VM of ours (a lost pid file): its command line names our directory.
  local p
  for p in $(pgrep -x beam.smp 2>/dev/null || true); do
    case "$(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)" in
    *"$RMQ_ROOT/"*) kill -KILL "$p" 2>/dev/null || true ;;
    esac
  done
}

# ---------------------------------------------------------------- PostgreSQL

# shellcheck source=tests/env/cluster-pg.sh
. "$HERE/cluster-pg.sh"

# ---------------------------------------------------------------- commands

ctl_prefix() {
  local q
  q="env HOME=$RMQ_ROOT RABBITMQ_CONF_ENV_FILE=$(node_dir "$1")/rabbitmq-env.conf"
  q="$q ERL_EPMD_PORT=$EPMD_PORT RABBITMQ_CTL_DIST_PORT_MIN=$(ctl_min "$1")"
  q="$q RABBITMQ_CTL_DIST_PORT_MAX=$(($(ctl_min "$1") + 9)) LC_ALL=C.UTF-8"
  echo "$q $RMQ_BIN/rabbitmqctl -n $(node_name "$1")"
}

print_env() {
  local n urls="" ports="" names=""
  for n in "${NODES[@]}"; do
    urls="$urls;amqp://guest:guest@127.0.0.1:$(amqp_port "$n")//"
    ports="$ports,$(amqp_port "$n")"
    names="$names $(node_name "$n")"
    echo "export CLUSTER_RABBITMQCTL_$n=\"$(ctl_prefix "$n")\""
    echo "export CLUSTER_AMQP_URL_$n=amqp://guest:guest@127.0.0.1:$(amqp_port "$n")//"
  done
  echo "export CLUSTER_BROKER_URLS=\"${urls#;}\""
  echo "export CLUSTER_AMQP_PORTS=${ports#,}"
  echo "export CLUSTER_NODES=\"${names# }\""
  echo "export CLUSTER_TLS_URL=amqps://guest:guest@localhost:$TLS_PORT//"
  echo "export CLUSTER_TLS_PORT=$TLS_PORT"
  echo "export CLUSTER_CA=$TLS/ca.pem"
  echo "export CLUSTER_WRONG_CA=$TLS/wrong-ca.pem"
  echo "export CLUSTER_CLIENT_CERT=$TLS/client.pem"
  echo "export CLUSTER_CLIENT_KEY=$TLS/client.key"
  local p=$PG_PRIMARY_PORT s=$PG_STANDBY_PORT
  echo "export CLUSTER_DATABASE_URL=\"postgresql://cworker:cworker@127.0.0.1:$p,127.0.0.1:$s/cworker?target_session_attrs=read-write\""
  echo "export CLUSTER_PRIMARY_URL=postgresql://cworker:cworker@127.0.0.1:$p/cworker"
  echo "export CLUSTER_STANDBY_URL=postgresql://cworker:cworker@127.0.0.1:$s/cworker"
  echo "export CLUSTER_ADMIN_PRIMARY_URL=postgresql://postgres:postgres@127.0.0.1:$p/postgres"
  echo "export CLUSTER_ADMIN_STANDBY_URL=postgresql://postgres:postgres@127.0.0.1:$s/postgres"
  echo "export CLUSTER_PG_PRIMARY_PORT=$p"
  echo "export CLUSTER_PG_STANDBY_PORT=$s"
  echo "export CLUSTER_SH=$HERE/cluster.sh"
  echo "export CWORKER_STATE_DIR=$STATE"
}

status() {
  local n rc=0 running
  for n in "${NODES[@]}"; do
    if node_ready "$n"; then echo "rabbitmq node $n: running ($(node_name "$n"), 127.0.0.1:$(amqp_port "$n"))"; else
      echo "rabbitmq node $n: stopped"
      rc=1
    fi
  done
  if [ $rc -eq 0 ]; then
    # Nodes that start together may log mnesia's inconsistent_database (starting
    # partitioned network): harmless unless a partition is still recorded.
    running=$(ctl 1 -q eval '{length(rabbit_nodes:all_running()), rabbit_node_monitor:partitions()}.' 2>/dev/null || echo '{0,?}')
    echo "rabbitmq cluster: {running nodes, partitions} $running"
    [ "$running" = "{${#NODES[@]},[]}" ] || rc=1
  fi
  pg_status || rc=1
  return $rc
}

node_arg() {
  case "${1:-}" in 1 | 2 | 3) ;; *) die "node number 1, 2 or 3 expected" ;; esac
}

cmd=${1:-}
case "$cmd" in
start)
  mkdir -p "$CL"
  chmod 755 "$STATE" "$CL"
  bash "$HERE/cluster-tls.sh" "$TLS"
  # PostgreSQL comes up while the Erlang nodes boot.
  pg_start &
  pg_job=$!
  rmq_start
  wait $pg_job || die "postgresql did not start"
  ;;
stop)
  rmq_stop_all
  pg_stop_all
  log "stopped"
  ;;
status) status ;;
env) print_env ;;
kill-node)
  node_arg "${2:-}"
  kill_node "$2"
  ;;
start-node)
  node_arg "${2:-}"
  cookie
  start_node "$2"
  ;;
stop-primary) pg_stop_primary ;;
promote) pg_promote ;;
*)
  echo "usage: $0 start|stop|status|env|kill-node N|start-node N|stop-primary|promote" >&2
  exit 2
  ;;
esac
