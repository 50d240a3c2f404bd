#!/usr/bin/env bash
# Side by side with Redis (issue 17): Redis 7 with two replicas, each write acknowledged once
# both replicas have it (RPUSH + WAIT 2), against our deployment of separate processes
# (registry, front-end, 3 replicas: loadgen --spawn 3), the same number of closed-loop clients,
# one run after the other on this machine. Prints both and the ratio. Not run by CI.
#
#   benches/peers/redis-wait.sh                 # 16 clients, 10 s each
#   CLIENTS=64 DURATION=20s benches/peers/redis-wait.sh
#
# Both sides keep their data in memory only (Redis: no RDB, no AOF; ours: no --data-dir), and
# both acknowledge a write once every replica holds it in memory. Redis's path is client ->
# primary -> replicas; ours has one hop more (client -> front-end -> primary -> backups), and
# every link is mutual TLS (Redis here runs plaintext).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS="${CLIENTS:-16}"
DURATION="${DURATION:-10s}"
PORT="${REDIS_PORT:-6390}"

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "--- installing redis-server (apt-get install -y redis-server)" >&2
    apt-get install -y redis-server >/dev/null || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
    (systemctl stop redis-server || service redis-server stop || true) >/dev/null 2>&1
  else
    echo "redis-server is missing: run 'apt-get install -y redis-server' as root" >&2
    exit 1
  fi
fi

echo "--- building (release)" >&2
cargo build --release --workspace --bins --examples >&2
bin=target/release/examples

dir="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for i in 0 1 2; do
  mkdir -p "$dir/$i"
  args=(--port $((PORT + i)) --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/$i" --daemonize no --loglevel warning)
  if [ "$i" != 0 ]; then args+=(--replicaof 127.0.0.1 "$PORT"); fi
  redis-server "${args[@]}" > "$dir/redis-$i.log" 2>&1 &
  pids+=($!)
done

# Wait (at most 20 s) until the primary has both replicas online.
# Both replicas connected is not enough: until a replica has loaded the primary's first RDB
# (state=online), WAIT blocks for its timeout, and the first seconds of the run measure the
# initial sync, not replication (an earlier version of this script waited for
# connected_slaves:2 only, and reported half of Redis's steady throughput).
online() { [ "$(redis-cli -p "$PORT" info replication 2>/dev/null | grep -c '^slave[0-9]*:.*state=online')" = 2 ]; }
for _ in $(seq 1 300); do
  if online && [ "$(redis-cli -p "$PORT" wait 2 1000 2>/dev/null)" = 2 ]; then
    break
  fi
  sleep 0.1
done
online || { echo "the Redis replicas did not come online" >&2; exit 1; }
redis_version="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"

echo "--- Redis $redis_version, RPUSH + WAIT 2, $CLIENTS clients, $DURATION" >&2
redis="$(target/release/redis_wait --address "127.0.0.1:$PORT" --clients "$CLIENTS" --duration "$DURATION" --json)"
cleanup
pids=()
trap - EXIT

echo "--- just-hungry, loadgen --spawn 3, $CLIENTS clients, $DURATION" >&2
ours="$("$bin/loadgen" --spawn 3 --clients "$CLIENTS" --duration "$DURATION" --json --quiet)"

field() { # field JSON NAME: the first number after "NAME":
  printf '%s' "$1" | tr -d ' \n' | sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" | head -1
}
r_fail="$(field "$redis" failures)"
r_tp="$(field "$redis" throughput)"; r_p50="$(field "$redis" p50_ms)"; r_p99="$(field "$redis" p99_ms)"
o_tp="$(field "$ours" throughput)"; o_p50="$(field "$ours" p50_ms)"; o_p99="$(field "$ours" p99_ms)"
lost="$(field "$ours" lost)"; doubled="$(field "$ours" doubled)"

echo
echo "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
printf '%-34s %12s %10s %10s\n' "" "orders/s" "p50 ms" "p99 ms"
printf '%-34s %12.0f %10.3f %10.3f\n' "Redis $redis_version RPUSH+WAIT 2 (3 procs)" "$r_tp" "$r_p50" "$r_p99"
printf '%-34s %12.0f %10.3f %10.3f\n' "just-hungry (5 procs, TLS)" "$o_tp" "$o_p50" "$o_p99"
awk -v o="$o_tp" -v r="$r_tp" -v op="$o_p99" -v rp="$r_p99" 'BEGIN { printf "ratio (ours / Redis): throughput %.2fx, p99 %.2fx\n", o / r, op / rp }'
echo "our final check: $lost lost, $doubled doubled; Redis: $r_fail WAITs short of 2 replicas"
