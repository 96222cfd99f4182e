# shellcheck shell=bash
# PostgreSQL 15 primary + streaming standby of tests/env/cluster.sh (sourced by it: uses
# its CL, TLS, PG_BIN, PG_PRIMARY_PORT, PG_STANDBY_PORT, START_TIMEOUT, log and die).
#
# <state>/cluster/pg-primary and pg-standby each hold data/, run/ (the socket) and the
# logs. As in services.sh the servers run as `postgres`; when postgres cannot traverse the
# state directory, the two are symlinks to directories in /var/tmp. The role and database
# are services.sh's: cworker/cworker owning `cworker`, superuser postgres/postgres.
# Both servers have ssl=on with the cluster CA's server certificate (CN and SAN localhost,
# SAN 127.0.0.1), so sslmode=verify-full sslrootcert=<ca.pem> host=localhost verifies.

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_root primary|standby: the real directory of that server, created on first use.
pg_root() {
  local link=$CL/pg-$1 alt
  if [ ! -e "$link" ]; then
    if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$CL"; then
      mkdir -p "$link"
    else
      alt=/var/tmp/cworker-pg-$1-$(echo "$CL" | md5sum | cut -c1-10)
      mkdir -p "$alt"
      ln -s "$alt" "$link"
    fi
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$(readlink -f "$link")"
    chmod 700 "$(readlink -f "$link")"
  fi
  readlink -f "$link"
}

pg_port() { if [ "$1" = primary ]; then echo "$PG_PRIMARY_PORT"; else echo "$PG_STANDBY_PORT"; fi; }
pg_has_data() { [ -e "$CL/pg-$1/data/PG_VERSION" ]; }
pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$(pg_root "$1")/data" "${@:2}"; }
pg_up() { pg_has_data "$1" && pg_ctl "$1" status >/dev/null 2>&1; }
pg_psql() {
  as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$(pg_root "$1")/run" -p "$(pg_port "$1")" \
    -U postgres "${@:2}"
}
pg_in_recovery() { [ "$(pg_psql "$1" -d postgres -c 'SELECT pg_is_in_recovery()')" = t ]; }

# pg_conf primary|standby: the settings that differ per server, appended last (they win
# over what pg_basebackup copied from the primary's postgresql.conf).
pg_conf() {
  local root
  root=$(pg_root "$1")
  as_pg sh -c "cat >> '$root/data/postgresql.conf'" <<EOF
# --- cworker cluster test instance: $1 (tests/env/cluster-pg.sh)
port = $(pg_port "$1")
unix_socket_directories = '$root/run'
EOF
}

pg_server_start() {
  local root
  root=$(pg_root "$1")
  as_pg mkdir -p "$root/run"
  log "starting postgresql $1 (127.0.0.1:$(pg_port "$1"))"
  if ! pg_ctl "$1" -l "$root/postgres.log" -w -t "$START_TIMEOUT" start >"$root/pg_ctl.log" 2>&1; then
    log "postgresql $1 failed to start; logs: $root/postgres.log $root/pg_ctl.log"
    tail -n 30 "$root/pg_ctl.log" "$root/postgres.log" >&2 2>/dev/null || true
    exit 1
  fi
}

pg_server_stop() {
  pg_up "$1" || return 0
  log "stopping postgresql $1"
  pg_ctl "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    pg_ctl "$1" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

pg_create_primary() {
  local root pwfile
  root=$(pg_root primary)
  log "initdb of the primary in $root/data"
  pg_server_stop standby
  rm -rf "$root/data" "$(pg_root standby)/data"
  pwfile=$root/pwfile
  as_pg sh -c "umask 077; echo postgres > '$pwfile'"
  as_pg "$PG_BIN/initdb" -D "$root/data" -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
    >"$root/initdb.log" 2>&1 || {
    log "initdb failed; log: $root/initdb.log"
    tail -n 20 "$root/initdb.log" >&2
    exit 1
  }
  rm -f "$pwfile"
  # The server certificate, owned by postgres (it refuses a key others can read);
  # pg_basebackup copies both files to the standby.
  pg_certs primary
  # initdb's pg_hba.conf already lets 127.0.0.1 connect for replication (scram-sha-256).
  # A throwaway test instance: durability off for speed; the WAL still streams.
  as_pg sh -c "cat >> '$root/data/postgresql.conf'" <<EOF
# --- cworker cluster test instance (tests/env/cluster-pg.sh)
listen_addresses = '127.0.0.1'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
wal_level = replica
max_wal_senders = 10
hot_standby = on
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
EOF
  pg_conf primary
}

# The server certificate in a data directory, installed again (and reloaded) when the CA
# was re-made since: clients verify against the new ca.pem.
pg_certs() {
  local data
  data=$(pg_root "$1")/data
  cmp -s "$TLS/server.pem" "$data/server.crt" && return 0
  install -o postgres -g postgres -m 644 "$TLS/server.pem" "$data/server.crt"
  install -o postgres -g postgres -m 600 "$TLS/server.key" "$data/server.key"
  if pg_up "$1"; then pg_ctl "$1" reload >/dev/null; fi
}

pg_roles() {
  pg_psql primary -d postgres <<'EOF'
SELECT 'CREATE ROLE cworker LOGIN CREATEDB PASSWORD ''cworker'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cworker') \gexec
SELECT 'CREATE DATABASE cworker OWNER cworker'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cworker') \gexec
EOF
}

# A fresh standby from the running primary: -R writes standby.signal and primary_conninfo.
pg_create_standby() {
  local root
  root=$(pg_root standby)
  pg_server_stop standby
  rm -rf "$root/data"
  log "pg_basebackup of the standby from 127.0.0.1:$PG_PRIMARY_PORT"
  as_pg env PGPASSWORD=postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY_PORT" \
    -U postgres -D "$root/data" -R -X stream -c fast >"$root/basebackup.log" 2>&1 || {
    log "pg_basebackup failed; log: $root/basebackup.log"
    tail -n 20 "$root/basebackup.log" >&2
    exit 1
  }
  pg_conf standby
}

# The designed topology: the primary writable on its port, the standby in recovery on its
# own. A standby that was promoted (or lost) is re-made from the primary: what was written
# on it after the promotion is gone, which is what a test that starts over wants.
pg_start() {
  pg_has_data primary || pg_create_primary
  pg_certs primary
  pg_up primary || pg_server_start primary
  pg_in_recovery primary && die "the primary at 127.0.0.1:$PG_PRIMARY_PORT is in recovery"
  pg_roles
  if ! pg_has_data standby || [ ! -e "$(pg_root standby)/data/standby.signal" ]; then
    pg_has_data standby && log "the standby was promoted; making it a standby again"
    pg_create_standby
  fi
  pg_certs standby
  pg_up standby || pg_server_start standby
  log "postgresql primary and standby ready"
}

pg_stop_all() {
  pg_server_stop standby
  pg_server_stop primary
}

pg_stop_primary() { pg_server_stop primary; }

pg_promote() {
  pg_up standby || die "the standby is not running"
  log "promoting the standby (127.0.0.1:$PG_STANDBY_PORT)"
  pg_ctl standby -w -t "$START_TIMEOUT" promote >/dev/null
}

pg_status() {
  local s rc=0
  for s in primary standby; do
    if pg_up "$s" && pg_in_recovery "$s" 2>/dev/null; then
      echo "postgresql $s: running in recovery (127.0.0.1:$(pg_port "$s"))"
    elif pg_up "$s"; then
      echo "postgresql $s: running, writable (127.0.0.1:$(pg_port "$s"))"
    else
      echo "postgresql $s: stopped"
      rc=1
    fi
  done
  # As designed: the primary writable, the standby replaying.
  pg_up primary && ! pg_in_recovery primary && pg_up standby && pg_in_recovery standby || rc=1
  return $rc
}
