#!/usr/bin/env bash
# syscalls.sh: system calls per request of a chimalli node, counted with
# `strace -f -c`, on loopback. Two paths:
#
#   docroot  the node serves a 1 KiB file from its docroot
#   proxy    the node proxies to a second node (gemini://) serving that file
#
# Environment:
#   BIN=bin/chimalli   the binary measured (build it first: make build)
#   LOADGEN=$BIN       the binary whose `bench` sends the load
#   N=2000             requests counted (after 50 requests of warm-up)
#   MIN=0.2            leave out syscalls made fewer times than this per request
#
# Prints one line per path: syscall=count-per-request, most frequent first.
# Needs strace (apt-get install strace) and the right to ptrace a child
# process (the default for root and with ptrace_scope 0 or 1).
set -euo pipefail

BIN=${BIN:-bin/chimalli}
LOADGEN=${LOADGEN:-$BIN}
N=${N:-2000}
MIN=${MIN:-0.2}
command -v strace >/dev/null || { echo "syscalls.sh: strace not found (apt-get install strace)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$WORK/docroot"
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/docroot/file.gmi"

# node NAME PORT ROUTE: starts a node and waits for its banner.
node() {
	local name=$1 port=$2 route=$3
	cat > "$WORK/$name.yaml" <<EOC
node: {data_dir: $WORK/$name}
gateway:
  listen: 127.0.0.1:$port
  limits: {max_conns_per_ip: 4096}
  hosts:
    - name: localhost
      routes:
        - $route
rate_limit: {capacity: 1000000000, refill_per_sec: 1000000000}
EOC
	"$BIN" run --config "$WORK/$name.yaml" > "$WORK/$name.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		grep -q "admin socket" "$WORK/$name.out" && return 0
		sleep 0.1
	done
	echo "syscalls.sh: node $name did not start:" >&2
	cat "$WORK/$name.out" >&2
	exit 1
}

# count PID URL: strace PID while N requests are sent to URL.
count() {
	local pid=$1 url=$2
	"$LOADGEN" bench -n 50 -c 4 --kex x25519 "$url" > /dev/null 2>&1
	strace -f -c -o "$WORK/strace.txt" -p "$pid" 2> /dev/null &
	local sp=$!
	# strace attaches asynchronously: wait until it traces the process.
	for _ in $(seq 100); do
		grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/$pid/status" && break
		sleep 0.05
	done
	"$LOADGEN" bench -n "$N" -c 8 --kex x25519 "$url" > "$WORK/bench.txt" 2>&1
	kill -INT "$sp"
	wait "$sp" 2>/dev/null || true
	awk -v n="$N" -v min="$MIN" 'NR > 2 && $NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n >= min { printf "%s=%.2f ", $NF, $4 / n } END { print "" }' "$WORK/strace.txt"
}

up=$(free_port)
node up "$up" "{prefix: /, docroot: $WORK/docroot}"
echo -n "docroot: "
count "${PIDS[0]}" "gemini://localhost:$up/file.gmi"

px=$(free_port)
node px "$px" "{prefix: /, upstream: \"gemini://127.0.0.1:$up\", upstream_sni: localhost}"
echo -n "proxy:   "
count "${PIDS[1]}" "gemini://localhost:$px/file.gmi"
