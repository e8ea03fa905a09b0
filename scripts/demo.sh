#!/usr/bin/env bash
# Runs the demo station: simulated analyzers (quantrac-sim) and the daemon (quantracd), delivering
# regulator files into a local receiver directory, and shows each file as it arrives. Ctrl-C stops.
set -euo pipefail
CONFIG=${1:-Boards/stations/demo.toml}
BIN=.build/debug
RECEIVER=.demo/receiver
DURATION=${DEMO_SECONDS:-0}   # 0 = run until Ctrl-C

mkdir -p .demo "$RECEIVER"
"$BIN/quantrac" check --config "$CONFIG"

"$BIN/quantrac-sim" --config "$CONFIG" > .demo/sim.out 2> .demo/sim.log &
SIM=$!
"$BIN/quantracd" --config "$CONFIG" 2> .demo/quantracd.log &
DAEMON=$!
cleanup() {
  kill -TERM "$DAEMON" "$SIM" 2>/dev/null || true
  wait "$DAEMON" "$SIM" 2>/dev/null || true
  echo
  echo "demo stopped. Files: $RECEIVER  Database and outbox: .demo/data  Logs: .demo/*.log"
}
trap cleanup EXIT INT TERM

for _ in $(seq 50); do grep -q READY .demo/sim.out 2>/dev/null && break; sleep 0.1; done
echo "simulated analyzers: $(tr '\n' ' ' < .demo/sim.out)"
# The daemon answers `quantrac read` as soon as its control socket is up, before its first poll: wait
# (at most 10 s) until that poll is on the status board, so the table shows values, not "--".
for _ in $(seq 100); do
  "$BIN/quantrac" read --config "$CONFIG" --json 2>/dev/null | grep -q '"status_code" : "--"' || break
  sleep 0.1
done
echo "live values:"
"$BIN/quantrac" read --config "$CONFIG"
echo
echo "quantracd is running (log: .demo/quantracd.log). Files arrive in $RECEIVER at the end of every interval; Ctrl-C stops."

start=$(date +%s)
declare -A seen=()
while kill -0 "$DAEMON" 2>/dev/null; do
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    [ -z "${seen[$f]:-}" ] || continue
    seen[$f]=1
    echo "── $(basename "$f")"
    sed 's/\r$//; s/\t/  /g; s/^/   /' "$f"
  done < <(find "$RECEIVER" -name '*.txt' -type f 2>/dev/null | sort)
  if [ "$DURATION" -gt 0 ] && [ $(( $(date +%s) - start )) -ge "$DURATION" ]; then break; fi
  sleep 1
done
