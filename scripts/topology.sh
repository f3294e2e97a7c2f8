#!/usr/bin/env bash
# Parley as a small cluster on 127.0.0.1: PostgreSQL, two `parley` nodes and nginx in front,
# configured by deploy/nginx/parley.conf.template (the same file docker compose uses).
#
#   scripts/topology.sh up          start everything; prints the proxy URL
#   scripts/topology.sh down        stop everything `up` started
#   scripts/topology.sh status      what runs where
#   scripts/topology.sh kill N      kill -9 node N (1 or 2)
#   scripts/topology.sh start N     start node N (again) and wait until it answers
#   scripts/topology.sh test        up, the topology tests (cargo test --test it topology), down
#   scripts/topology.sh bench       the same bench through the proxy with one node, then two
#
# Environment:
#   PARLEY_TOPOLOGY_DIR           state: ports, pids, logs (default target/topology)
#   PARLEY_TOPOLOGY_DATABASE_URL  a PostgreSQL server to use (postgres://USER:PASS@HOST:PORT/DB);
#                                 a fresh database is created in it. Unset: a private cluster is
#                                 started with the PostgreSQL server binaries (as user postgres
#                                 when run as root).
#   PARLEY_BIN                    the parley binary (default: cargo build, debug; bench: release)
#   PARLEY_TOPOLOGY_NODES         1 or 2 (default 2); with 1, both upstreams name node 1
#   PARLEY_E2E=1                  `test` also runs the browser test through the proxy
#   PARLEY_BENCH_NODES            `bench`: the node counts to run (default "1 2"); the bench's own
#                                 knobs are in benches/proxy.rs
#
# Everything listens on 127.0.0.1 only. `test` and `bench` always stop what they started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
DIR="${PARLEY_TOPOLOGY_DIR:-$ROOT/target/topology}"
mkdir -p "$(dirname "$DIR")"
DIR="$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")"
export PARLEY_TOPOLOGY_DIR="$DIR"
TEMPLATE="$ROOT/deploy/nginx/parley.conf.template"

if [[ ${EUID:-$(id -u)} -eq 0 ]]; then AS_ROOT=1; else AS_ROOT=0; fi

log() { echo "topology: $*" >&2; }
die() { echo "topology ERROR: $*" >&2; exit 1; }

# ------------------------------------------------------------------ state

state_get() { # KEY -> value from $DIR/env
  [[ -f "$DIR/env" ]] || return 1
  sed -n "s/^$1=//p" "$DIR/env" | tail -n1
}

state_set() { # KEY VALUE
  touch "$DIR/env"
  grep -v "^$1=" "$DIR/env" >"$DIR/env.tmp" || true
  echo "$1=$2" >>"$DIR/env.tmp"
  mv "$DIR/env.tmp" "$DIR/env"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the ephemeral range: there, a port nobody listens on may still be the local end of
# an outgoing connection, and binding it fails.
free_port() {
  local p low
  low="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  [[ "$low" =~ ^[0-9]+$ && "$low" -gt 12000 ]] || low=32768
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! port_in_use "$p" && ! grep -q "=$p\$" "$DIR/env" 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  die "no free port found"
}

# GET http://127.0.0.1:PORT/PATH with bash only; prints the status code.
http_status() {
  local port=$1 path=$2 line
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  IFS= read -r -t 5 line <&3 || { exec 3<&-; return 1; }
  exec 3<&-
  echo "$line" | awk '{print $2}'
}

wait_ok() { # PORT PATH SECONDS WHAT
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    if [[ "$(http_status "$1" "$2" 2>/dev/null || true)" == 200 ]]; then return 0; fi
    sleep 0.2
  done
  return 1
}

# Running, and not a zombie (a killed node whose parent is gone may stay one for a while).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null || true)"
  [[ -z "$stat" ]] && return 0
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# ------------------------------------------------------------------ PostgreSQL

pg_bin() {
  local v best=""
  if [[ -d /usr/lib/postgresql ]]; then
    # shellcheck disable=SC2012
    for v in $(ls /usr/lib/postgresql | sort -V); do
      [[ -x "/usr/lib/postgresql/$v/bin/initdb" ]] && best="/usr/lib/postgresql/$v/bin"
    done
  fi
  [[ -n "$best" ]] || best="$(dirname "$(command -v initdb || command -v pg_ctl || echo /nonexistent/x)")"
  [[ -x "$best/initdb" && -x "$best/pg_ctl" ]] || die "no PostgreSQL server binaries (apt-get install postgresql)"
  echo "$best"
}

as_pg() {
  if [[ $AS_ROOT == 1 ]]; then (cd "$DIR/pg" && runuser -u postgres -- "$@"); else (cd "$DIR/pg" && "$@"); fi
}

start_postgres() {
  local bin port
  bin="$(pg_bin)"
  port="$(free_port)"
  mkdir -p "$DIR/pg"
  if [[ $AS_ROOT == 1 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres "$DIR/pg"
  fi
  chmod 700 "$DIR/pg"
  as_pg "$bin/initdb" -D "$DIR/pg/data" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync \
    >"$DIR/pg/initdb.log" 2>&1 || { cat "$DIR/pg/initdb.log" >&2; die "initdb failed"; }
  cat >>"$DIR/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR/pg'
max_connections = 200
log_min_messages = warning
EOF
  as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$DIR/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
  state_set PG_BIN "$bin"
  state_set PG_STARTED 1
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

stop_postgres() {
  if [[ "$(state_get PG_STARTED || true)" == 1 ]]; then
    as_pg "$(state_get PG_BIN)/pg_ctl" -D "$DIR/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    state_set PG_STARTED 0
  fi
}

psql_run() { # URL SQL
  local psql
  psql="$(command -v psql || echo "$(state_get PG_BIN)/psql")"
  "$psql" -X -q -v ON_ERROR_STOP=1 "$1" -c "$2"
}

# ------------------------------------------------------------------ nodes

build_bin() { # debug|release
  if [[ -n "${PARLEY_BIN:-}" ]]; then echo "$PARLEY_BIN"; return; fi
  if [[ "$1" == release ]]; then
    cargo build --release --bin parley >&2
    echo "$ROOT/target/release/parley"
  else
    cargo build --bin parley >&2
    echo "$ROOT/target/debug/parley"
  fi
}

start_node() { # N
  local n=$1 port metrics pid
  port="$(state_get "NODE${n}_PORT")"
  metrics="$(state_get "NODE${n}_METRICS_PORT")"
  pid="$(state_get "NODE${n}_PID" || true)"
  if pid_alive "$pid"; then die "node $n already runs (pid $pid)"; fi
  (
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec env \
      DATABASE_URL="$(state_get DATABASE_URL)" \
      PARLEY_ADDR="127.0.0.1:$port" \
      PARLEY_METRICS_ADDR="127.0.0.1:$metrics" \
      PARLEY_NODE_NAME="node$n" \
      PARLEY_PUBLIC_URL="$(state_get PROXY_URL)" \
      PARLEY_TRUST_PROXY=true \
      PARLEY_RATE_LIMIT_IP="${PARLEY_RATE_LIMIT_IP:-1000000}" \
      PARLEY_RATE_LIMIT_ACCOUNT="${PARLEY_RATE_LIMIT_ACCOUNT:-1000000}" \
      PARLEY_MESSAGE_RATE="${PARLEY_MESSAGE_RATE:-100000}" \
      PARLEY_MESSAGE_BURST="${PARLEY_MESSAGE_BURST:-100000}" \
      PARLEY_MAX_STREAMS_PER_USER="${PARLEY_MAX_STREAMS_PER_USER:-100000}" \
      PARLEY_STATIC_DIR="$ROOT/static" \
      RUST_LOG="${RUST_LOG:-warn}" \
      "$(state_get BIN)" serve
  ) >>"$DIR/node$n.log" 2>&1 </dev/null &
  pid=$!
  state_set "NODE${n}_PID" "$pid"
  if ! wait_ok "$port" /healthz 60; then
    tail -n 20 "$DIR/node$n.log" >&2
    die "node $n did not answer on 127.0.0.1:$port"
  fi
  log "node $n up: http://127.0.0.1:$port (pid $pid, metrics http://127.0.0.1:$metrics/metrics)"
}

kill_node() { # N SIGNAL
  local n=$1 sig=$2 pid
  pid="$(state_get "NODE${n}_PID" || true)"
  pid_alive "$pid" || { log "node $n is not running"; return 0; }
  kill "-$sig" "$pid"
  for _ in $(seq 1 100); do pid_alive "$pid" || break; sleep 0.1; done
  pid_alive "$pid" && { kill -9 "$pid" 2>/dev/null || true; }
  # Reap it when it is our child (`down` from the same shell).
  wait "$pid" 2>/dev/null || true
  log "node $n stopped ($sig)"
}

# ------------------------------------------------------------------ nginx

start_nginx() {
  local nginx n1 n2 listen
  nginx="$(command -v nginx || true)"
  [[ -n "$nginx" ]] || { [[ -x /usr/sbin/nginx ]] && nginx=/usr/sbin/nginx; }
  [[ -n "$nginx" ]] || die "nginx not found (apt-get install nginx-light)"
  mkdir -p "$DIR/nginx/tmp"
  n1="127.0.0.1:$(state_get NODE1_PORT)"
  if [[ "$(state_get NODES)" == 1 ]]; then n2="$n1"; else n2="127.0.0.1:$(state_get NODE2_PORT)"; fi
  listen="127.0.0.1:$(state_get PROXY_PORT)"
  # The shared template, filled in like the nginx image does (only these three names).
  sed -e "s|\${PARLEY_NODE_1}|$n1|g" -e "s|\${PARLEY_NODE_2}|$n2|g" \
      -e "s|\${PARLEY_PROXY_LISTEN}|$listen|g" "$TEMPLATE" >"$DIR/nginx/parley.conf"
  local nofile
  nofile="$(ulimit -Hn)"
  [[ "$nofile" =~ ^[0-9]+$ ]] || nofile=65536
  {
    [[ $AS_ROOT == 1 ]] && echo "user nobody nogroup;"
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $nofile;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 16384; }
http {
    access_log ${PARLEY_TOPOLOGY_ACCESS_LOG:-$DIR/nginx/access.log};
    client_body_temp_path $DIR/nginx/tmp/body;
    proxy_temp_path $DIR/nginx/tmp/proxy;
    fastcgi_temp_path $DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $DIR/nginx/tmp/uwsgi;
    scgi_temp_path $DIR/nginx/tmp/scgi;
    include $DIR/nginx/parley.conf;
}
EOF
  } >"$DIR/nginx/nginx.conf"
  [[ $AS_ROOT == 1 ]] && chmod 755 "$DIR" "$DIR/nginx" "$DIR/nginx/tmp"
  "$nginx" -t -q -p "$DIR/nginx" -e "$DIR/nginx/error.log" -c "$DIR/nginx/nginx.conf" \
    || die "nginx -t failed (config: $DIR/nginx/nginx.conf)"
  "$nginx" -p "$DIR/nginx" -e "$DIR/nginx/error.log" -c "$DIR/nginx/nginx.conf"
  state_set NGINX "$nginx"
  wait_ok "$(state_get PROXY_PORT)" /healthz 20 || die "nginx does not answer"
  log "nginx up: $(state_get PROXY_URL) -> $n1, $n2"
}

stop_nginx() {
  local pid
  pid="$(cat "$DIR/nginx/nginx.pid" 2>/dev/null || true)"
  if pid_alive "$pid"; then
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  fi
}

# ------------------------------------------------------------------ commands

cmd_up() { # [debug|release]
  local profile="${1:-debug}" nodes="${PARLEY_TOPOLOGY_NODES:-2}" server db url base
  [[ "$nodes" == 1 || "$nodes" == 2 ]] || die "PARLEY_TOPOLOGY_NODES must be 1 or 2"
  if [[ -f "$DIR/env" ]] && pid_alive "$(state_get NODE1_PID || true)"; then
    die "already up (scripts/topology.sh down first)"
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  touch "$DIR/env"
  state_set BIN "$(build_bin "$profile")"
  state_set NODES "$nodes"
  server="${PARLEY_TOPOLOGY_DATABASE_URL:-}"
  [[ -n "$server" ]] || server="$(start_postgres)"
  db="parley_topology_$$_$RANDOM"
  psql_run "$server" "CREATE DATABASE $db" >/dev/null
  base="${server%/*}"
  url="$base/$db"
  state_set DATABASE_URL "$url"
  state_set DATABASE_SERVER "$server"
  state_set DATABASE_NAME "$db"
  for k in PROXY_PORT NODE1_PORT NODE2_PORT NODE1_METRICS_PORT NODE2_METRICS_PORT; do
    state_set "$k" "$(free_port)"
  done
  state_set PROXY_URL "http://127.0.0.1:$(state_get PROXY_PORT)"
  start_node 1
  if [[ "$nodes" == 2 ]]; then start_node 2; fi
  start_nginx
  echo "$(state_get PROXY_URL)"
}

cmd_down() {
  [[ -f "$DIR/env" ]] || return 0
  stop_nginx
  kill_node 1 TERM
  kill_node 2 TERM
  if [[ "$(state_get PG_STARTED || true)" == 1 ]]; then
    stop_postgres
  elif [[ -n "$(state_get DATABASE_NAME || true)" ]]; then
    psql_run "$(state_get DATABASE_SERVER)" "DROP DATABASE IF EXISTS $(state_get DATABASE_NAME) WITH (FORCE)" \
      >/dev/null 2>&1 || true
  fi
  state_set DATABASE_NAME ""
  log "down"
}

cmd_status() {
  [[ -f "$DIR/env" ]] || { echo "not up"; return 0; }
  echo "proxy:    $(state_get PROXY_URL)"
  for n in 1 2; do
    local pid
    pid="$(state_get "NODE${n}_PID" || true)"
    if pid_alive "$pid"; then s="running (pid $pid)"; else s="stopped"; fi
    echo "node $n:   http://127.0.0.1:$(state_get "NODE${n}_PORT") $s; metrics http://127.0.0.1:$(state_get "NODE${n}_METRICS_PORT")/metrics"
  done
  echo "database: $(state_get DATABASE_URL)"
  echo "logs:     $DIR/node1.log $DIR/node2.log $DIR/nginx/error.log"
}

cmd_test() {
  trap 'cmd_down' EXIT
  rm -f "$ROOT/target/test-topology.marker" "$ROOT/target/test-topology-e2e.marker"
  cmd_up debug >/dev/null
  cmd_status
  local rc=0
  cargo test --test it topology -- --test-threads=1 --nocapture || rc=$?
  if [[ $rc -ne 0 ]]; then
    for f in "$DIR/node1.log" "$DIR/node2.log" "$DIR/nginx/error.log"; do
      echo "--- last lines of $f" >&2; tail -n 30 "$f" >&2 || true
    done
    die "topology tests failed"
  fi
  [[ -f "$ROOT/target/test-topology.marker" ]] || die "the topology test did not run (no marker)"
  if [[ "${PARLEY_E2E:-}" == 1 ]]; then
    [[ -f "$ROOT/target/test-topology-e2e.marker" ]] || die "the browser test through the proxy did not run (no marker)"
  fi
  log "topology tests passed"
}

cmd_bench() {
  trap 'cmd_down' EXIT
  local nodes
  # Thousands of streams: file descriptors for the nodes, nginx and the bench client.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "open-files limit: $(ulimit -n)"
  cargo build --release --bin parley >&2
  cargo bench --bench proxy --no-run >&2
  export PARLEY_BIN="${PARLEY_BIN:-$ROOT/target/release/parley}"
  export PARLEY_TOPOLOGY_ACCESS_LOG=off
  for nodes in ${PARLEY_BENCH_NODES:-1 2}; do
    PARLEY_TOPOLOGY_NODES=$nodes cmd_up release >/dev/null
    log "bench with $nodes node(s) behind nginx (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    PARLEY_BENCH_URL="$(state_get PROXY_URL)" PARLEY_BENCH_LABEL="$nodes node(s)" \
      cargo bench --bench proxy
    cmd_down
  done
}

case "${1:-}" in
  up) cmd_up "${2:-debug}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill) [[ "${2:-}" == 1 || "${2:-}" == 2 ]] || die "kill 1|2"; kill_node "$2" KILL ;;
  stop) [[ "${2:-}" == 1 || "${2:-}" == 2 ]] || die "stop 1|2"; kill_node "$2" TERM ;;
  start) [[ "${2:-}" == 1 || "${2:-}" == 2 ]] || die "start 1|2"; start_node "$2" ;;
  test) cmd_test ;;
  bench) cmd_bench ;;
  -h|--help|"") sed -n '2,24p' "$0" ;;
  *) die "unknown command: $1 (try --help)" ;;
esac
