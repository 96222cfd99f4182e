#!/usr/bin/env bash
# Private RabbitMQ and PostgreSQL 15 for tests and the demo: loopback only, non-default
# ports, all state under <repo>/.state/. Nothing system-wide is started or left running.
#
#   services.sh start    start both (a no-op for whatever already runs)
#   services.sh stop     stop both; nothing of ours keeps running (epmd included)
#   services.sh status   say what runs; exit 0 only when both run
#   services.sh env      print `export` lines for CELERY_BROKER_URL, DATABASE_URL,
#                        ADMIN_DATABASE_URL, RABBITMQCTL (use: eval "$(services.sh env)")
#
# Ports (override with the env vars of the same name): AMQP 5682, PostgreSQL 5442,
# Erlang epmd 4379, Erlang distribution 25682 (rabbitmqctl uses 35682-35692).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${CWORKER_STATE_DIR:-$REPO/.state}

AMQP_PORT=${CWORKER_AMQP_PORT:-5682}
PG_PORT=${CWORKER_PG_PORT:-5442}
EPMD_PORT=${CWORKER_EPMD_PORT:-4379}
DIST_PORT=${CWORKER_DIST_PORT:-25682}
RMQ_NODE=cworker@localhost
START_TIMEOUT=${CWORKER_START_TIMEOUT:-120}

PG_BIN=/usr/lib/postgresql/15/bin
RMQ_BIN=/usr/lib/rabbitmq/bin # the /usr/sbin wrappers `su rabbitmq` and lose our env

RMQ_DIR=$STATE/rabbitmq
PG_LINK=$STATE/pg

log() { echo "services: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# ---------------------------------------------------------------- RabbitMQ

# The environment every rabbitmq script needs to find *our* node: its own env file
# (so /etc/rabbitmq/rabbitmq-env.conf is ignored), cookie in HOME, ports, dirs.
rmq_env() {
  export HOME=$RMQ_DIR
  export RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf
  export RABBITMQ_NODENAME=$RMQ_NODE
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$AMQP_PORT
  export RABBITMQ_DIST_PORT=$DIST_PORT
  export ERL_EPMD_PORT=$EPMD_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
  export RABBITMQ_LOG_BASE=$RMQ_DIR/log
  export RABBITMQ_LOGS=$RMQ_DIR/log/rabbit.log
  export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
  export RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
  export RABBITMQ_PID_FILE=$RMQ_DIR/rabbitmq.pid
  export RABBITMQ_CTL_DIST_PORT_MIN=$((DIST_PORT + 10000))
  export RABBITMQ_CTL_DIST_PORT_MAX=$((DIST_PORT + 10010))
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export LC_ALL=C.UTF-8 LANG=C.UTF-8
}

rmqctl() { (rmq_env && "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@"); }

rmq_pid() {
  local pid
  [ -s "$RMQ_DIR/rabbitmq.pid" ] || return 1
  pid=$(cat "$RMQ_DIR/rabbitmq.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

rmq_running() { rmq_pid >/dev/null && rmqctl -q await_startup --timeout 5 >/dev/null 2>&1; }

rmq_prepare() {
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  if [ ! -s "$RMQ_DIR/.erlang.cookie" ]; then
    umask 077
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RMQ_DIR/.erlang.cookie"
    umask 022
  fi
  chmod 400 "$RMQ_DIR/.erlang.cookie"
  : >"$RMQ_DIR/rabbitmq-env.conf"
  echo '[].' >"$RMQ_DIR/enabled_plugins"
  echo '[].' >"$RMQ_DIR/advanced.config"
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
EOF
}

rmq_start() {
  if rmq_running; then
    log "rabbitmq already running (node $RMQ_NODE, amqp 127.0.0.1:$AMQP_PORT)"
    return 0
  fi
  local pid
  if pid=$(rmq_pid); then
    # A node that is alive but not answering: give it the rest of the budget below.
    log "rabbitmq process $pid exists but is not ready yet; waiting"
  else
    rmq_prepare
    log "starting rabbitmq (node $RMQ_NODE, amqp 127.0.0.1:$AMQP_PORT)"
    (
      rmq_env
      cd "$RMQ_DIR"
      # setsid: the node must outlive this script and not get the terminal's signals.
      exec setsid "$RMQ_BIN/rabbitmq-server" >"$RMQ_DIR/log/startup.log" 2>&1 </dev/null
    ) &
    echo $! >"$RMQ_DIR/rabbitmq.pid"
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if ! rmq_pid >/dev/null; then
      rmq_fail "rabbitmq exited during startup"
    fi
    if rmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
      log "rabbitmq ready"
      return 0
    fi
    sleep 1
  done
  rmq_fail "rabbitmq not ready after ${START_TIMEOUT}s"
}

rmq_fail() {
  log "$1; logs: $RMQ_DIR/log/startup.log $RMQ_DIR/log/rabbit.log"
  tail -n 30 "$RMQ_DIR/log/startup.log" "$RMQ_DIR/log/rabbit.log" 2>/dev/null >&2 || true
  exit 1
}

rmq_stop() {
  local pid
  if pid=$(rmq_pid); then
    log "stopping rabbitmq (pid $pid)"
    # `stop <pidfile>` returns once the OS process is gone.
    rmqctl -q stop "$RMQ_DIR/rabbitmq.pid" >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$i" -eq 10 ] && kill -TERM "$pid" 2>/dev/null
      sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$RMQ_DIR/rabbitmq.pid"
  # erl started a private epmd on our port; it would outlive the node.
  if [ -d "$RMQ_DIR" ]; then
    (rmq_env && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1) || true
  fi
  # Any leftover beam of our node (e.g. the pid file was lost).
  local p
  for p in $(pgrep -f -- "-sname $RMQ_NODE|-sname ${RMQ_NODE%@*}|-name $RMQ_NODE" 2>/dev/null || true); do
    case "$(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)" in
    *"$RMQ_DIR"*) kill -KILL "$p" 2>/dev/null || true ;;
    esac
  done
}

# ---------------------------------------------------------------- PostgreSQL

# PostgreSQL refuses to run as root: as root we run it as `postgres`, which must be able
# to reach the data directory. When the repo sits somewhere postgres cannot traverse
# (e.g. under /root), the data lives in /var/tmp and .state/pg is a symlink to it.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_root() {
  if [ -e "$PG_LINK" ]; then
    readlink -f "$PG_LINK"
    return
  fi
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$STATE"; then
    mkdir -p "$PG_LINK"
  else
    local alt
    alt=/var/tmp/cworker-pg-$(echo "$STATE" | md5sum | cut -c1-10)
    mkdir -p "$alt"
    ln -s "$alt" "$PG_LINK"
  fi
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$(readlink -f "$PG_LINK")"
  chmod 700 "$(readlink -f "$PG_LINK")"
  readlink -f "$PG_LINK"
}

# The real directory (postgres may not be able to traverse .state to follow the link).
pg_dir() { readlink -f "$PG_LINK"; }

pg_running() {
  [ -e "$PG_LINK/data/PG_VERSION" ] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$(pg_dir)/data" status >/dev/null 2>&1 &&
    as_pg "$PG_BIN/pg_isready" -q -h "$(pg_dir)/run" -p "$PG_PORT" >/dev/null 2>&1
}

pg_psql() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(pg_dir)/run" -p "$PG_PORT" -U postgres "$@"; }

pg_start() {
  local root
  root=$(pg_root)
  if pg_running; then
    log "postgresql already running (127.0.0.1:$PG_PORT)"
  else
    if [ ! -e "$root/data/PG_VERSION" ]; then
      log "initdb in $root/data"
      rm -rf "$root/data"
      as_pg mkdir -p "$root/run"
      local pwfile="$root/pwfile"
      as_pg sh -c "umask 077; echo postgres > '$pwfile'"
      as_pg "$PG_BIN/initdb" -D "$root/data" -U postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >"$root/initdb.log" 2>&1 || {
        log "initdb failed; log: $root/initdb.log"
        tail -n 20 "$root/initdb.log" >&2
        exit 1
      }
      rm -f "$pwfile"
      # A throwaway test instance: durability settings off for speed.
      as_pg sh -c "cat >> '$root/data/postgresql.conf'" <<EOF
# --- cworker test instance (tests/env/services.sh)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$root/run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
    fi
    as_pg mkdir -p "$root/run"
    log "starting postgresql (127.0.0.1:$PG_PORT, data $root/data)"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t "$START_TIMEOUT" \
      start >"$root/pg_ctl.log" 2>&1; then
      log "postgresql failed to start; logs: $root/postgres.log $root/pg_ctl.log"
      tail -n 30 "$root/pg_ctl.log" "$root/postgres.log" >&2 2>/dev/null || true
      exit 1
    fi
  fi
  # Role and database for the worker (idempotent).
  pg_psql -d postgres <<'EOF'
SELECT 'CREATE ROLE cworker LOGIN CREATEDB PASSWORD ''cworker'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cworker') \gexec
SELECT 'CREATE DATABASE cworker OWNER cworker'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cworker') \gexec
EOF
  log "postgresql ready"
}

pg_stop() {
  [ -e "$PG_LINK/data/PG_VERSION" ] || return 0
  local d
  d=$(pg_dir)
  if as_pg "$PG_BIN/pg_ctl" -D "$d/data" status >/dev/null 2>&1; then
    log "stopping postgresql"
    as_pg "$PG_BIN/pg_ctl" -D "$d/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_pg "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- commands

print_env() {
  local q
  q="env HOME=$RMQ_DIR RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf ERL_EPMD_PORT=$EPMD_PORT"
  q="$q RABBITMQ_CTL_DIST_PORT_MIN=$((DIST_PORT + 10000)) RABBITMQ_CTL_DIST_PORT_MAX=$((DIST_PORT + 10010))"
  q="$q LC_ALL=C.UTF-8 $RMQ_BIN/rabbitmqctl -n $RMQ_NODE"
  echo "export CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT//"
  echo "export DATABASE_URL=postgresql://cworker:cworker@127.0.0.1:$PG_PORT/cworker"
  echo "export ADMIN_DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:$PG_PORT/postgres"
  echo "export RABBITMQCTL=\"$q\""
  echo "export CWORKER_STATE_DIR=$STATE"
}

cmd=${1:-}
case "$cmd" in
start)
  mkdir -p "$STATE"
  pg_start
  rmq_start
  ;;
stop)
  rmq_stop
  pg_stop
  log "stopped"
  ;;
status)
  rc=0
  if pg_running; then echo "postgresql: running (127.0.0.1:$PG_PORT)"; else
    echo "postgresql: stopped"
    rc=1
  fi
  if rmq_running; then echo "rabbitmq: running (127.0.0.1:$AMQP_PORT, node $RMQ_NODE)"; else
    echo "rabbitmq: stopped"
    rc=1
  fi
  exit $rc
  ;;
env)
  print_env
  ;;
*)
  echo "usage: $0 start|stop|status|env" >&2
  exit 2
  ;;
esac
