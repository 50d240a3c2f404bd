#!/usr/bin/env bash
# Side by side with etcd (issue 16): a 3-member etcd cluster from Debian's package, each put
# acknowledged once a majority has it in its fdatasynced log, against our deployment of
# separate processes with `--fsync always` (registry, front-end, 3 replicas: loadgen --spawn 3
# --data-dir D --fsync always), each order acknowledged once every member of the view has it
# on disk. The same closed-loop clients, one run after the other, every data directory on the
# same disk (TMPDIR's). Prints both and the ratio for each client count. Not run by CI.
#
#   benches/peers/etcd-put.sh                        # 1 and 16 clients, 10 s each
#   CLIENTS="16 64" DURATION=20s benches/peers/etcd-put.sh
#
# etcd is driven through its native gRPC API (target/release/etcd_put), every client on the
# leader, as etcd's own `benchmark put` does with one endpoint: no JSON gateway, no follower
# forwarding. Its members run plaintext with default settings; ours use mutual TLS.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS="${CLIENTS:-1 16}"
DURATION="${DURATION:-10s}"
PORT="${ETCD_PORT:-23790}"

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "--- installing etcd (apt-get install -y etcd-server)" >&2
    apt-get install -y etcd-server >/dev/null || { apt-get update >/dev/null && apt-get install -y etcd-server >/dev/null; }
    (systemctl stop etcd || service etcd stop || true) >/dev/null 2>&1
  else
    echo "etcd is missing: run 'apt-get install -y etcd-server' as root" >&2
    exit 1
  fi
fi

echo "--- building (release)" >&2
cargo build --release --workspace --bins --examples >&2
bin=target/release/examples

dir="$(mktemp -d)"
pids=()
stop_etcd() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_etcd; rm -rf "$dir"' EXIT

# Three members on 127.0.0.1: member i serves clients on PORT+10i and peers on PORT+10i+1.
start_etcd() { # start_etcd RUN: a new cluster with its data under $dir/RUN
  local cluster="" i
  for i in 0 1 2; do cluster+="${cluster:+,}etcd-$i=http://127.0.0.1:$((PORT + 10 * i + 1))"; done
  for i in 0 1 2; do
    local client="http://127.0.0.1:$((PORT + 10 * i))" peer="http://127.0.0.1:$((PORT + 10 * i + 1))"
    mkdir -p "$dir/$1"
    etcd --name "etcd-$i" --data-dir "$dir/$1/etcd-$i" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-token "bench-$1" --initial-cluster-state new \
      --log-level warn > "$dir/$1/etcd-$i.log" 2>&1 &
    pids+=($!)
  done
}
endpoints="http://127.0.0.1:$PORT,http://127.0.0.1:$((PORT + 10)),http://127.0.0.1:$((PORT + 20))"

field() { # field JSON NAME: the first number after "NAME":
  printf '%s' "$1" | tr -d ' \n' | sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" | head -1
}

etcd_version="$(etcd --version | sed -n 's/^etcd Version: //p')"
rows=()
for clients in $CLIENTS; do
  # A fresh etcd for each count (its log and database start empty, as our data directory does).
  start_etcd "etcd-$clients"
  echo "--- etcd $etcd_version, Put, $clients clients, $DURATION" >&2
  etcd="$(target/release/etcd_put --endpoints "$endpoints" --clients "$clients" --duration "$DURATION" --json)"
  stop_etcd

  echo "--- just-hungry, loadgen --spawn 3 --fsync always, $clients clients, $DURATION" >&2
  ours="$("$bin/loadgen" --spawn 3 --data-dir "$dir/ours-$clients" --fsync always \
    --clients "$clients" --duration "$DURATION" --json --quiet)"
  rows+=("$clients $(field "$etcd" throughput) $(field "$etcd" p50_ms) $(field "$etcd" p99_ms) $(field "$etcd" failures) $(field "$ours" throughput) $(field "$ours" p50_ms) $(field "$ours" p99_ms) $(field "$ours" lost) $(field "$ours" doubled)")
done

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); data on $(df --output=source "$dir" | tail -1)"
printf '%-8s %22s %22s %10s %10s\n' "clients" "etcd puts/s (p50/p99)" "ours orders/s (p50/p99)" "ratio" "p99 ratio"
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086
  set -- $row
  awk -v c="$1" -v et="$2" -v e50="$3" -v e99="$4" -v ot="$6" -v o50="$7" -v o99="$8" 'BEGIN {
    printf "%-8s %8.0f (%.2f/%.2f ms) %8.0f (%.2f/%.2f ms) %9.2fx %9.2fx\n", c, et, e50, e99, ot, o50, o99, ot / et, o99 / e99 }'
  echo "         etcd: $5 puts refused; ours: $9 lost, ${10} doubled"
done
