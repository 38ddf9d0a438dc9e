#!/usr/bin/env bash
# Side-by-side benchmark: go-websocket and Centrifugo on this machine, same
# load tool, same scenarios, each run RUNS times on a fresh server; prints
# every RESULT line and the median of the headline figures.
#
# The fanout scenario runs once per group size in FANOUT_CLIENTS and per
# publisher count in FANOUT_PUBLISHERS (1: one message after another; N: N
# concurrent publishers), FANOUT_MESSAGES messages each; its RESULT lines
# carry "clients=C publishers=P" and its medians are per (server, clients,
# publishers).
#
#   tools/wsbench/compare.sh                 # both servers, 3 runs each
#   RUNS=5 SERVERS=gows tools/wsbench/compare.sh
#   WRITEDELAY=2ms tools/wsbench/compare.sh  # go-websocket with write coalescing
#   SCENARIOS=fanout FANOUT_CLIENTS=1000 FANOUT_PUBLISHERS=16 tools/wsbench/compare.sh
#
# Centrifugo: go install github.com/centrifugal/centrifugo/v6@v6.9.1 (config:
# tools/wsbench/centrifugo.json). Loopback only; servers are stopped by PID.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS="${RUNS:-3}"
SERVERS="${SERVERS:-gows centrifugo}"
SCENARIOS="${SCENARIOS:-fanout unicast idle}"
WRITEDELAY="${WRITEDELAY:-0s}"
FANOUT_CLIENTS="${FANOUT_CLIENTS:-1000 5000}"
FANOUT_PUBLISHERS="${FANOUT_PUBLISHERS:-1 16}"
FANOUT_MESSAGES="${FANOUT_MESSAGES:-200}"
CENTRIFUGO="${CENTRIFUGO:-$(go env GOPATH)/bin/centrifugo}"
WORK="$(mktemp -d)"
PID=""
stop() { if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap 'stop; rm -rf "$WORK"' EXIT INT TERM

cd "$ROOT"
go build -o "$WORK/gows" .
go build -o "$WORK/wsbench" ./tools/wsbench

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not open" >&2; return 1; }

start() { # server
	case "$1" in
	gows)
		rm -rf "$WORK/data"
		GOWS_SERVER_HOST=127.0.0.1 GOWS_SERVER_HTTPPORT=7800 GOWS_SERVER_DATADIR="$WORK/data" \
		GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench GOWS_WEBSOCKET_WRITEDELAY="$WRITEDELAY" GOWS_LOG_LEVEL=warn \
			"$WORK/gows" -c conf.ini >"$WORK/server.log" 2>&1 &
		PID=$!; wait_port 7800 ;;
	centrifugo)
		"$CENTRIFUGO" --config "$ROOT/tools/wsbench/centrifugo.json" >"$WORK/server.log" 2>&1 &
		PID=$!; wait_port 8000 ;;
	esac
}

args() { # server scenario [clients publishers] (the last two: fanout)
	local common=(-quiet -timeout 5m)
	if [[ $1 == gows ]]; then common+=(-url 127.0.0.1:7800); else common+=(-target centrifugo -url 127.0.0.1:8000 -api-key bench-key); fi
	case "$2" in
	fanout)  echo "${common[@]}" -clients "$3" -messages "$FANOUT_MESSAGES" -size 64 -publishers "$4" ;;
	unicast) echo "${common[@]}" -clients 2000 -messages 20000 -workers 16 ;;
	idle)    echo "${common[@]}" -clients 19000 -src 127.0.0.2-127.0.0.9 -duration 10s ;;
	esac
}

bench() { # server scenario label [clients publishers]
	local srv=$1 sc=$2 label=$3 run
	shift 3
	for run in $(seq "$RUNS"); do
		start "$srv"
		# shellcheck disable=SC2046
		"$WORK/wsbench" "$sc" $(args "$srv" "$sc" "$@") -pid "$PID" | grep '^RESULT ' | sed "s/^RESULT /RESULT $srv $sc $run $label/" | tee -a "$WORK/results"
		stop
	done
}

for sc in $SCENARIOS; do
	if [[ $sc == fanout ]]; then
		for clients in $FANOUT_CLIENTS; do
			for pubs in $FANOUT_PUBLISHERS; do
				for srv in $SERVERS; do
					bench "$srv" "$sc" "clients=$clients publishers=$pubs " "$clients" "$pubs"
				done
			done
		done
		continue
	fi
	for srv in $SERVERS; do
		bench "$srv" "$sc" ""
	done
done

echo
echo "medians of $RUNS runs (write delay for go-websocket: $WRITEDELAY)"
python3 - "$WORK/results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    head, js = line.rstrip("\n").split(" {", 1)
    _, srv, sc, run, *labels = head.split()
    lab = dict(l.split("=", 1) for l in labels)
    key = (sc, int(lab.get("clients", 0)), int(lab.get("publishers", 0)), srv)
    rows.setdefault(key, []).append(json.loads("{" + js))
keys = {"fanout": ["deliveries_per_s", "cpu_us_per_delivery", "lat_p50_us", "lat_p99_us", "lost", "dup", "ooo"],
        "unicast": ["req_per_s", "cpu_us_per_message", "lat_p50_us", "lat_p99_us", "lost"],
        "idle": ["rss_per_conn_bytes", "cpu_us_per_connect", "connected"]}
for (sc, clients, pubs, srv), rs in sorted(rows.items()):
    figs = []
    for k in keys.get(sc, []):
        vals = [r[k] for r in rs if k in r]
        if vals:
            figs.append(f"{k}={statistics.median(vals):.1f}")
    shape = f"clients={clients:<5} publishers={pubs:<3} " if clients else ""
    print(f"{sc:8} {srv:11} {shape}" + " ".join(figs))
PY
