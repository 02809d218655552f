#!/usr/bin/env bash
# Cold start of `directrix serve` on an existing data folder: time from exec to the first
# successful GET /server/ping, over N restarts (the embedded cluster is stopped in between,
# so each start includes `pg_ctl start`). Also reports the very first start (initdb).
#   benches/cold_start.sh [N]        (release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
cargo build --release --quiet
bin=target/release/directrix
dir=$(mktemp -d /tmp/directrix-coldstart-XXXXXX)
chmod 755 "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start_once() {
  local t0 t1 pid
  t0=$(date +%s%N)
  DATA_DIR="$dir/data" PORT="$port" LOG_LEVEL=warn ADMIN_PASSWORD=bench "$bin" serve >/dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/server/ping" >/dev/null; do sleep 0.005; done
  t1=$(date +%s%N)
  kill -TERM "$pid"; wait "$pid" || true
  echo $(( (t1 - t0) / 1000000 ))
}

echo "first start (initdb + migrations + bootstrap): $(start_once) ms"
total=0; results=()
for _ in $(seq "$runs"); do ms=$(start_once); results+=("$ms"); total=$((total + ms)); done
echo "restarts on the existing data folder: ${results[*]} ms (mean $((total / runs)) ms)"
rm -rf "$dir"
