#!/usr/bin/env bash
# Measures what a node of many partitions costs: creating a topic of N partitions, the resident
# memory and open files of `tierlog serve` while they are idle, its reopen (start until the
# listeners answer) and its exit after SIGTERM. Release build; local bucket.
#
#   bash scripts/partition-scale.sh [PARTITIONS] [DATA_DIR]     (default 10000, a temp dir)
set -euo pipefail
n=${1:-10000}
dir=${2:-$(mktemp -d)}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin tierlog
bin=$PWD/target/release/tierlog
rm -rf "$dir/data"
ms() { date +%s%3N; }

t0=$(ms)
"$bin" --data-dir "$dir/data" topic create scale --partitions "$n" > /dev/null
t1=$(ms)
echo "create $n partitions: $((t1 - t0)) ms"

serve() {
  "$bin" --data-dir "$dir/data" serve --listen 127.0.0.1:0 --kafka-listen 127.0.0.1:0 > "$dir/serve.out" 2> "$dir/serve.err" &
  pid=$!
  t0=$(ms)
  until grep -q listening "$dir/serve.out" 2> /dev/null; do
    kill -0 "$pid" 2> /dev/null || { cat "$dir/serve.err"; exit 1; }
    sleep 0.05
  done
  echo "open with $n partitions (serve start until listening): $(($(ms) - t0)) ms"
}
stop() {
  t0=$(ms)
  kill -TERM "$pid"
  wait "$pid" || true
  echo "SIGTERM to exit: $(($(ms) - t0)) ms"
}

serve
sleep 10
rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
echo "idle after 10 s: resident $((rss_kib / 1024)) MiB, open files $(ls /proc/$pid/fd | wc -l)"
stop
serve
stop
rm -rf "$dir/data"
