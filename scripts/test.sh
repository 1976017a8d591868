#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a machine with only Rust and Python 3:
#   1. installs what the tests need into .cache/ (a venv with kafka-python, confluent-kafka and
#      aiokafka, pyarrow and DuckDB, and the SeaweedFS S3 server, all pinned by version and sha256),
#      once, and kcat and Redis from Debian when the machine lacks them;
#   2. starts SeaweedFS on free 127.0.0.1 ports (stopped again on exit, whatever happens);
#   3. runs every test of the workspace (the S3 tests fail, never skip, without the server);
#   4. runs the benchmarks once in smoke mode (tiny sizes), so the bench code stays working.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache="$root/.cache"
venv="$cache/venv"
mkdir -p "$cache"

req="$root/scripts/python-requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing test dependencies into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: -r "$req"
  echo "$want" > "$stamp"
fi
export TIERLOG_PYTHON="$venv/bin/python"

# Debian's kcat (the Kafka test that needs it says so) and Redis (the peer of `bench kafka`).
need=()
command -v kcat >/dev/null || need+=(kcat)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} from Debian"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

s3dir="$cache/s3-$$"
rm -rf "$s3dir"
trap 'bash "$root/scripts/s3-server.sh" stop "$s3dir"; rm -rf "$s3dir"' EXIT
echo "== starting SeaweedFS"
s3env=$(bash "$root/scripts/s3-server.sh" start "$s3dir")   # fails the script if the server does not start
eval "$s3env"
echo "S3 at $TIERLOG_S3_ENDPOINT"

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== tierlog bench append --smoke"
cargo run --locked --quiet --release --bin tierlog -- bench append --smoke --dir "$cache/bench"

echo "== tierlog bench tier --smoke (against the SeaweedFS started above)"
cargo run --locked --quiet --release --bin tierlog -- bench tier --smoke --dir "$cache/bench-tier"

echo "== tierlog bench history --smoke"
cargo run --locked --quiet --release --bin tierlog -- bench history --smoke --dir "$cache/bench-history"

echo "== tierlog bench kafka --smoke (librdkafka from the venv, Redis from Debian)"
cargo run --locked --quiet --release --bin tierlog -- bench kafka --smoke --dir "$cache/bench-kafka"

echo "== tierlog bench groups --smoke"
cargo run --locked --quiet --release --bin tierlog -- bench groups --smoke --dir "$cache/bench-groups"

echo "== tierlog bench compaction --smoke (against the SeaweedFS started above)"
cargo run --locked --quiet --release --bin tierlog -- bench compaction --smoke --dir "$cache/bench-compaction"
