#!/usr/bin/env bash
# Smoke test of wsbench against a real go-websocket node.
#
# Builds the node and the tool, starts one standalone node on a free loopback
# port with a temporary data dir (membership events off for the bench
# system, sessions on), runs a tiny fanout (one publisher, then four concurrent
# ones), a tiny unicast (plain, then with acknowledgements) and a tiny resume
# run (connections cut and resumed) with -strict, and fails if any message was
# lost, duplicated or reordered, or any connection, resume or API call failed. The node is stopped by its
# PID on exit. Takes a few seconds once the binaries are built.
#
#   tools/wsbench/smoke.sh            (from anywhere inside the repo)
set -euo pipefail

export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d)"
NODE_PID=""

cleanup() {
	local rc=$?
	if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
		kill "$NODE_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$NODE_PID" 2>/dev/null || true
		wait "$NODE_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -f "$WORK/node.log" ]]; then
		echo "--- node log (last 30 lines) ---" >&2
		tail -n 30 "$WORK/node.log" >&2 || true
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

echo "smoke: building node and wsbench"
cd "$ROOT"
go build -o "$WORK/gows-node" .
go build -o "$WORK/wsbench" ./tools/wsbench

PORT=""
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 10000))
	if ! port_in_use "$p"; then PORT=$p; break; fi
done
[[ -n "$PORT" ]] || { echo "smoke: no free port found" >&2; exit 1; }

echo "smoke: starting node on 127.0.0.1:$PORT"
GOWS_SERVER_HOST=127.0.0.1 \
GOWS_SERVER_HTTPPORT="$PORT" \
GOWS_SERVER_DATADIR="$WORK/data" \
GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench \
GOWS_WEBSOCKET_SESSIONTTL=30s \
	"$WORK/gows-node" -c "$ROOT/conf.ini" >"$WORK/node.log" 2>&1 &
NODE_PID=$!

for _ in $(seq 100); do
	kill -0 "$NODE_PID" 2>/dev/null || { echo "smoke: node exited at start" >&2; exit 1; }
	port_in_use "$PORT" && break
	sleep 0.1
done
port_in_use "$PORT" || { echo "smoke: node not listening after 10s" >&2; exit 1; }

check() { # name file: -strict already failed the run on any loss; double-check the JSON
	local line
	line="$(grep '^RESULT ' "$2")" || { echo "smoke: $1: no RESULT line" >&2; exit 1; }
	for field in '"lost":0' '"dup":0' '"ooo":0' '"conn_errors":0' '"api_errors":0'; do
		if [[ "$line" != *"$field"* ]]; then
			echo "smoke: $1: expected $field in $line" >&2
			exit 1
		fi
	done
	echo "smoke: $1 OK"
}

COMMON=(-url "127.0.0.1:$PORT" -pid "$NODE_PID" -strict -timeout 60s -drain 5s -progress 0)

"$WORK/wsbench" fanout "${COMMON[@]}" -clients 100 -messages 20 -src 127.0.0.2-127.0.0.3 | tee "$WORK/fanout.out"
check fanout "$WORK/fanout.out"

"$WORK/wsbench" fanout "${COMMON[@]}" -clients 100 -messages 40 -publishers 4 | tee "$WORK/fanout4.out"
check "fanout -publishers 4" "$WORK/fanout4.out"
grep -q '"publishers":4' "$WORK/fanout4.out" || { echo "smoke: fanout -publishers 4: no \"publishers\":4 in RESULT" >&2; exit 1; }

"$WORK/wsbench" unicast "${COMMON[@]}" -clients 100 -messages 1000 -workers 8 | tee "$WORK/unicast.out"
check unicast "$WORK/unicast.out"

"$WORK/wsbench" unicast "${COMMON[@]}" -clients 50 -messages 500 -workers 8 -ack | tee "$WORK/unicast-ack.out"
check "unicast -ack" "$WORK/unicast-ack.out"

"$WORK/wsbench" resume "${COMMON[@]}" -clients 50 -rate 100 -duration 3s -cut-rate 20 | tee "$WORK/resume.out"
check resume "$WORK/resume.out"
for field in '"refused":0' '"seq_gaps":0' '"reconnect_errors":0'; do
	grep -q "$field" "$WORK/resume.out" || { echo "smoke: resume: expected $field in RESULT" >&2; exit 1; }
done

echo "smoke: all OK"
