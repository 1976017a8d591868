#!/usr/bin/env bash
# Starts or stops the SeaweedFS S3 server the tests use (installed by scripts/test.sh into the venv).
#   scripts/s3-server.sh start DIR   -> starts `weed mini` on free 127.0.0.1 ports, waits until S3
#                                       answers, and prints `export ...` lines for the tests
#   scripts/s3-server.sh stop DIR    -> stops the server started with DIR (by its PID), waits for it
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data dir}
root=$(cd "$(dirname "$0")/.." && pwd)
weed="$root/.cache/venv/bin/weed"
pidfile="$dir/weed.pid"

free() { # is TCP port $1 free on 127.0.0.1?
  python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null
}

case "$cmd" in
start)
  mkdir -p "$dir/data"
  # Five services, each with a gRPC port at +10000: pick a block where all ten are free.
  for _ in $(seq 1 50); do
    base=$(( 20000 + (RANDOM % 1900) * 5 ))
    ok=1
    for p in $(seq "$base" $((base + 4))); do
      free "$p" && free $((p + 10000)) || { ok=0; break; }
    done
    [ "$ok" = 1 ] && break
  done
  [ "$ok" = 1 ] || { echo "no free ports for the S3 server" >&2; exit 1; }
  s3=$((base + 3))
  export AWS_ACCESS_KEY_ID=tierlog-test AWS_SECRET_ACCESS_KEY=tierlog-test-secret
  "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$base" -volume.port=$((base + 1)) -filer.port=$((base + 2)) -s3.port="$s3" \
    -admin.port=$((base + 4)) -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false -bucket=tierlog-test > "$dir/weed.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if python3 -c "import urllib.request,sys
try: urllib.request.urlopen('http://127.0.0.1:$s3/', timeout=1)
except urllib.error.HTTPError: pass
except Exception: sys.exit(1)" 2>/dev/null; then
      echo "export TIERLOG_S3_ENDPOINT=http://127.0.0.1:$s3"
      echo "export TIERLOG_S3_BUCKET=tierlog-test"
      echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
      exit 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "weed exited; log:" >&2; tail -20 "$dir/weed.log" >&2; exit 1; }
    sleep 0.25
  done
  echo "the S3 server did not answer in 30 s; log:" >&2; tail -20 "$dir/weed.log" >&2; exit 1
  ;;
stop)
  [ -f "$pidfile" ] || exit 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  ;;
esac
