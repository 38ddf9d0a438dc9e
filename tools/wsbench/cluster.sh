#!/usr/bin/env bash
# Cluster benchmark on one machine: a real etcd, NODES go-websocket nodes in
# cluster mode, and wsbench's cluster scenario spreading CLIENTS connections
# over them (several load processes, source addresses 127.0.0.2-9), one or
# more send_to_system to everyone, then cross-node send_to_client calls.
#
#   tools/wsbench/cluster.sh                       # 5 nodes, 90,000 clients
#   NODES=3 CLIENTS=3000 MESSAGES=2000 tools/wsbench/cluster.sh
#   NODES=3 CLIENTS=3000 MESSAGES=2000 ROOM=10 tools/wsbench/cluster.sh   # + rooms of 10
#
# Needs etcd on PATH (Debian: etcd-server). Loopback only; everything it
# starts is stopped by PID.
set -euo pipefail
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODES="${NODES:-5}"
CLIENTS="${CLIENTS:-90000}"
MESSAGES="${MESSAGES:-5000}"
RATE="${RATE:-1000}"
ROOM="${ROOM:-0}"
PROCS="${PROCS:-$(( (CLIENTS + 17999) / 18000 ))}"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not open" >&2; return 1; }

cd "$ROOT"
go build -o "$WORK/gows" .
go build -o "$WORK/wsbench" ./tools/wsbench

etcd --name b1 --data-dir "$WORK/etcd" --listen-client-urls http://127.0.0.1:23790 \
	--advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
	--initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster b1=http://127.0.0.1:23800 \
	>"$WORK/etcd.log" 2>&1 &
PIDS+=($!)
wait_port 23790

urls=() nodepids=()
for i in $(seq "$NODES"); do
	GOWS_SERVER_HOST=127.0.0.1 GOWS_SERVER_HTTPPORT=$((7810 + i)) GOWS_SERVER_RPCPORT=$((7910 + i)) \
	GOWS_SERVER_DATADIR="$WORK/d$i" GOWS_CLUSTER_ENABLED=true GOWS_CLUSTER_SECRET=bench-cluster-secret-0123456789 \
	GOWS_CLUSTER_ETCDENDPOINTS=127.0.0.1:23790 GOWS_WEBSOCKET_EVENTSOFFSYSTEMS=bench GOWS_LOG_LEVEL=warn \
		"$WORK/gows" -c conf.ini >"$WORK/node$i.log" 2>&1 &
	PIDS+=($!)
	nodepids+=($!)
	urls+=("127.0.0.1:$((7810 + i))")
done
for i in $(seq "$NODES"); do wait_port $((7810 + i)); done

"$WORK/wsbench" cluster -url "$(IFS=,; echo "${urls[*]}")" -pid "$(IFS=,; echo "${nodepids[*]}")" \
	-clients "$CLIENTS" -procs "$PROCS" -src 127.0.0.2-127.0.0.9 -messages "$MESSAGES" -rate "$RATE" \
	-broadcasts 3 -room "$ROOM" -timeout 10m -progress 0
