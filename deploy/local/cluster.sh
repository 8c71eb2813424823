#!/usr/bin/env bash
# Runs a local Kiln cluster of separate processes on loopback:
# 3 metastores (raft), 2 distributors, 3 ingesters, 2 queriers, a
# query-frontend (spreads every merge query over the queriers) and a
# compactor, sharing one object store (a directory, or S3 when
# KILN_STORAGE__* variables say so).
#
#   deploy/local/cluster.sh start --base-port 20000 --data-dir /tmp/kiln-cluster [--bin PATH]
#   deploy/local/cluster.sh stop --data-dir /tmp/kiln-cluster
#   deploy/local/cluster.sh restart-node metastore-2 --data-dir /tmp/kiln-cluster
#
# Node k (0-based, in the order above) listens on HTTP base+2k and gRPC
# base+2k+1. Logs go to DIR/logs/<node>.log, pids to DIR/pids/<node>.pid,
# and the exact command of each node to DIR/cmd/<node>.sh.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

cmd="${1:-}"; [ -n "$cmd" ] || usage; shift
base_port=""; data_dir=""; bin="${KILN_BIN:-}"; node=""
if [ "$cmd" = "restart-node" ]; then node="${1:-}"; shift || true; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --base-port) base_port="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$data_dir" ] || { echo "--data-dir is required" >&2; exit 2; }
# Absolute, as in the nodes' command lines (see node_pid).
if [ -d "$data_dir" ]; then data_dir="$(cd "$data_dir" && pwd)"; fi

here="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "$bin" ]; then
  for b in "$here/target/release/kiln" "$here/target/debug/kiln"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
fi

start_node() { # name
  local name="$1"
  nohup bash "$data_dir/cmd/$name.sh" >>"$data_dir/logs/$name.log" 2>&1 &
  echo $! >"$data_dir/pids/$name.pid"
}

# The pid of node `name` if that process is still the node. A node that
# died leaves its pid file behind, and the kernel reuses pids, so a bare
# `kill $(cat pid)` could signal an unrelated process that got the same pid
# (seen in the test suite: a stop of one cluster terminated a node of
# another). The node's command line names its data directory.
node_pid() { # name
  local f="$data_dir/pids/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  is_node "$pid" "$1" || return 1
  echo "$pid"
}

is_node() { # pid name
  ps -ww -o args= -p "$1" 2>/dev/null | grep -qF -e "--data-dir $data_dir/$2" -e "$data_dir/cmd/$2.sh"
}

wait_ready() { # name http_port
  local name="$1" port="$2" deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; do
    if ! node_pid "$name" >/dev/null; then
      echo "$name exited; last log lines:" >&2; tail -20 "$data_dir/logs/$name.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$name not ready after 60s; last log lines:" >&2; tail -20 "$data_dir/logs/$name.log" >&2; return 1
    fi
    sleep 0.2
  done
}

case "$cmd" in
start)
  [ -n "$base_port" ] || { echo "--base-port is required" >&2; exit 2; }
  [ -x "$bin" ] || { echo "kiln binary not found: build it (cargo build --release) or pass --bin" >&2; exit 1; }
  mkdir -p "$data_dir"/{logs,pids,cmd,blocks}
  data_dir="$(cd "$data_dir" && pwd)"
  nodes=(metastore-1 metastore-2 metastore-3 distributor-1 distributor-2 ingester-1 ingester-2 ingester-3 querier-1 querier-2 query-frontend-1 compactor-1)
  peers="" ; addrs=""
  for i in 1 2 3; do
    g=$((base_port + 2 * (i - 1) + 1))
    peers="${peers:+$peers,}$i@127.0.0.1:$g"; addrs="${addrs:+$addrs,}127.0.0.1:$g"
  done
  storage_env=""
  if [ -z "${KILN_STORAGE__BACKEND:-}" ]; then
    storage_env="export KILN_STORAGE__FILESYSTEM_DIR='$data_dir/blocks'"
  fi
  k=0
  for name in "${nodes[@]}"; do
    role="${name%-*}"; idx="${name##*-}"
    http=$((base_port + 2 * k)); grpc=$((base_port + 2 * k + 1))
    extra=""
    if [ "$role" = "metastore" ]; then
      extra="export KILN_METASTORE__NODE_ID=$idx; export KILN_METASTORE__PEERS='$peers'"
    fi
    cat >"$data_dir/cmd/$name.sh" <<CMD
$storage_env
export KILN_METASTORE__ADDRESS='$addrs'
export KILN_INSTANCE_ID='$name'
$extra
exec '$bin' --target $role --http-addr 127.0.0.1:$http --grpc-addr 127.0.0.1:$grpc --data-dir '$data_dir/$name'
CMD
    echo "$http" >"$data_dir/pids/$name.http"
    k=$((k + 1))
  done
  for name in "${nodes[@]}"; do start_node "$name"; done
  for name in "${nodes[@]}"; do wait_ready "$name" "$(cat "$data_dir/pids/$name.http")"; done
  echo "push: http://127.0.0.1:$(cat "$data_dir/pids/distributor-1.http")"
  echo "push: http://127.0.0.1:$(cat "$data_dir/pids/distributor-2.http")"
  echo "query: http://127.0.0.1:$(cat "$data_dir/pids/query-frontend-1.http")"
  echo "querier: http://127.0.0.1:$(cat "$data_dir/pids/querier-1.http")"
  echo "querier: http://127.0.0.1:$(cat "$data_dir/pids/querier-2.http")"
  ;;
stop)
  [ -d "$data_dir/pids" ] || exit 0
  running=()
  for f in "$data_dir"/pids/*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    if pid="$(node_pid "$name")"; then
      kill -TERM "$pid" 2>/dev/null || true
      running+=("$pid:$name")
    fi
    rm -f "$f"
  done
  deadline=$((SECONDS + 30))
  for entry in "${running[@]}"; do
    pid="${entry%%:*}"; name="${entry#*:}"
    while is_node "$pid" "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if is_node "$pid" "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  ;;
restart-node)
  [ -n "$node" ] && [ -f "$data_dir/cmd/$node.sh" ] || { echo "unknown node $node" >&2; exit 2; }
  if node_pid "$node" >/dev/null; then
    echo "$node is still running" >&2; exit 1
  fi
  start_node "$node"
  wait_ready "$node" "$(cat "$data_dir/pids/$node.http")"
  ;;
*) usage ;;
esac
