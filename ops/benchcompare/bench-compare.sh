#!/usr/bin/env bash
# bench-compare.sh: side-by-side Gemini throughput of four servers on this
# machine, all on loopback, all serving the same 1 KiB file:
#
#   A  molly-brown            serving a docroot
#   B  chimalli (docroot)     the gateway serving the same docroot, every layer on
#   C  chimalli -> molly      the gateway proxying to A
#   D  HAProxy  -> molly      HAProxy in TCP mode terminating TLS and re-encrypting to A
#
# `chimalli bench` loads each in turn, interleaved in rounds (A B C D, A B C D,
# ...) so that drift in the machine's load hits every target alike, once per
# key exchange offered by the client. The tables go to stdout and into
# docs/performance.md between the bench-compare markers.
#
# Environment:
#   ROUNDS=3              rounds per key exchange
#   DURATION=10s          measured time of each run (chimalli bench -d)
#   CONCURRENCY=32        connections of each run (chimalli bench -c)
#   WARMUP=2s             warm-up run per target before the rounds of each key exchange
#   KEX="default x25519"  key exchanges the client offers, run in this order
#   DOC=docs/performance.md  file to rewrite between the markers ("" to skip)
#   GO=go BIN=bin/chimalli   Go tool and where to build the binary
#   KEEP_WORK=1           keep the temporary directory (configs, logs, JSON reports)
#
# Exit status: 0 on success; 1 if a target did not start, a run produced no
# report, or a target failed (transport error or non-20 status) on more than
# 1% of its requests. Missing the throughput targets is reported, not fatal.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GO=${GO:-go}
BIN=${BIN:-bin/chimalli}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
WARMUP=${WARMUP:-2s}
KEX=${KEX:-default x25519}
DOC=${DOC-docs/performance.md}
KEEP_WORK=${KEEP_WORK:-0}

# The rate limit of gateway B and C: one client address (127.0.0.1) sends
# every request, so the defaults (10 burst, 1/s) would answer 44 after the
# first few. A billion tokens refilled at a billion per second never runs out
# while the limiter still does its work on every connection.
RL_CAPACITY=1000000000
RL_REFILL=1000000000
# Every connection comes from 127.0.0.1: the per-address connection limit
# (default 32) must exceed the bench's concurrency.
MAX_CONNS_PER_IP=4096
HAPROXY_MAXCONN=4096

readonly TARGETS=(molly gw-docroot gw-proxy haproxy)
declare -A LABEL=(
	[molly]="A molly-brown (docroot)"
	[gw-docroot]="B chimalli (docroot)"
	[gw-proxy]="C chimalli → molly-brown"
	[haproxy]="D HAProxy → molly-brown"
)
declare -A PORT=() PID=()
USED_PORTS=()
WORK=""
FAILED=0

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'bench-compare: warning: %s\n' "$*" >&2; }
die() {
	printf 'bench-compare: %s\n' "$*" >&2
	exit 1
}

# cleanup stops every process this script started (TERM, then KILL after a
# grace period: the gateway drains for up to 10 s) and removes the work dir.
cleanup() {
	local rc=$? key pid deadline
	for key in "${!PID[@]}"; do
		pid=${PID[$key]}
		kill -TERM "$pid" 2>/dev/null || true
	done
	for key in "${!PID[@]}"; do
		pid=${PID[$key]}
		deadline=$((SECONDS + 12))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ $KEEP_WORK == 1 ]]; then
			log "kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

check_args() {
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got \"$ROUNDS\""
	[[ $CONCURRENCY =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY must be a positive integer, got \"$CONCURRENCY\""
	((CONCURRENCY < MAX_CONNS_PER_IP)) || die "CONCURRENCY must be below $MAX_CONNS_PER_IP"
	local k
	for k in $KEX; do
		[[ $k == default || $k == x25519 ]] || die "KEX may list only \"default\" and \"x25519\", got \"$k\""
	done
	[[ -n ${KEX// /} ]] || die "KEX is empty"
}

# ensure_pkg installs a Debian package when its command is missing.
ensure_pkg() {
	local cmd=$1 pkg=$2 sudo=()
	command -v "$cmd" >/dev/null && return
	log "$cmd not found: installing the Debian package $pkg"
	((EUID == 0)) || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq || true
	"${sudo[@]}" apt-get install -y -qq "$pkg" >/dev/null || die "cannot install $pkg"
	command -v "$cmd" >/dev/null || die "$cmd still missing after installing $pkg"
}

build() {
	log "building $BIN"
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN" ./cmd/node) || die "build failed"
	BIN=$(cd "$ROOT" && realpath "$BIN")
}

# pick_port VAR stores in VAR a random loopback port that nothing listens on
# and that this script has not already taken. Another process could still
# take it before we bind; start-up then fails with a clear log.
pick_port() {
	local p _
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 40000))
		[[ " ${USED_PORTS[*]} " == *" $p "* ]] && continue
		if [[ -z $(ss -Hltn "sport = :$p") ]]; then
			USED_PORTS+=("$p")
			printf -v "$1" '%s' "$p"
			return
		fi
	done
	die "no free port found"
}

setup_work() {
	WORK=$(mktemp -d /tmp/bench-compare.XXXXXX)
	chmod 755 "$WORK"
	mkdir -p "$WORK/docroot" "$WORK/results" "$WORK/gw-docroot" "$WORK/gw-proxy"
	# 1 KiB of text/gemini. molly-brown serves only world-readable files.
	{
		printf '# bench-compare\n'
		head -c 1008 /dev/zero | tr '\0' 'x'
	} >"$WORK/docroot/file.gmi"
	chmod 755 "$WORK/docroot"
	chmod 644 "$WORK/docroot/file.gmi"
	"$BIN" cert new --cn localhost --dns localhost --out "$WORK" >/dev/null
	CERT=$WORK/localhost.crt
	KEY=$WORK/localhost.key
	# HAProxy wants the certificate and its key in one PEM file.
	cat "$CERT" "$KEY" >"$WORK/haproxy.pem"
	chmod 600 "$WORK/haproxy.pem"
	local t
	for t in molly gw-docroot gw-proxy; do pick_port "PORT[$t]"; done
	# HAProxy must listen on the default port 1965. molly-brown answers 53 to
	# any URL naming a port other than its own, and HAProxy in TCP mode passes
	# the request line through untouched; a URL without a port is accepted by
	# molly-brown, and the client dials 1965 for it.
	[[ -z $(ss -Hltn "sport = :1965") ]] ||
		die "port 1965 is in use on this machine; HAProxy (target D) needs it (see the comment in setup_work)"
	PORT[haproxy]=1965
}

# url KEY prints the URL the client requests from a target (see setup_work
# for why HAProxy's has no port).
url() {
	if [[ $1 == haproxy ]]; then
		printf 'gemini://localhost/file.gmi'
	else
		printf 'gemini://localhost:%s/file.gmi' "${PORT[$1]}"
	fi
}

write_configs() {
	# molly-brown (this Debian version) has no listen-address setting: it
	# binds every interface. Only loopback ever gets traffic. Its access log
	# goes to /dev/null: the gateway logs nothing per request at level error
	# and HAProxy has no log line, so none of the four pays for logging.
	cat >"$WORK/molly.conf" <<-EOF
		Port = ${PORT[molly]}
		Hostname = "localhost"
		CertPath = "$CERT"
		KeyPath = "$KEY"
		DocBase = "$WORK/docroot"
		AccessLog = "/dev/null"
		ErrorLog = "$WORK/molly.error.log"
	EOF

	local mode route
	for mode in docroot proxy; do
		if [[ $mode == docroot ]]; then
			route="docroot: $WORK/docroot"
		else
			route="upstream: gemini://127.0.0.1:${PORT[molly]}
          upstream_sni: localhost"
		fi
		# The access policy stays the default (allow unless denied).
		cat >"$WORK/gw-$mode.yaml" <<-EOF
			node:
			  data_dir: $WORK/gw-$mode
			gateway:
			  listen: 127.0.0.1:${PORT[gw-$mode]}
			  limits:
			    max_conns_per_ip: $MAX_CONNS_PER_IP
			  hosts:
			    - name: localhost
			      cert: $CERT
			      key: $KEY
			      routes:
			        - prefix: /
			          $route
			rate_limit:
			  capacity: $RL_CAPACITY
			  refill_per_sec: $RL_REFILL
			log:
			  level: error
		EOF
	done

	# Threads default to the number of CPUs. maxconn is far above the bench's
	# concurrency, yet HAProxy needs about 2 descriptors per connection under
	# the open-file limit (20000 on some containers), so not higher. HAProxy
	# reuses its TLS sessions to the server by default (no "no-ssl-reuse").
	cat >"$WORK/haproxy.cfg" <<-EOF
		global
		    maxconn $HAPROXY_MAXCONN
		    ssl-default-bind-options ssl-min-ver TLSv1.2

		defaults
		    mode tcp
		    maxconn $HAPROXY_MAXCONN
		    timeout connect 5s
		    timeout client 30s
		    timeout server 30s

		frontend gemini
		    bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK/haproxy.pem
		    default_backend molly

		backend molly
		    server molly 127.0.0.1:${PORT[molly]} ssl verify none sni str(localhost) maxconn $HAPROXY_MAXCONN
	EOF
	haproxy -c -q -f "$WORK/haproxy.cfg" || die "HAProxy refuses its configuration ($WORK/haproxy.cfg)"
}

# start KEY CMD... runs CMD in the background, output to KEY.log.
start() {
	local key=$1
	shift
	"$@" >"$WORK/$key.log" 2>&1 &
	PID[$key]=$!
}

# wait_ready KEY polls, for up to 20 s, until the target completes a Gemini
# request over TLS and returns exactly the file; a process that exits or
# never answers stops the script with its log.
wait_ready() {
	local key=$1 deadline=$((SECONDS + 20))
	while :; do
		if ! kill -0 "${PID[$key]}" 2>/dev/null; then
			tail -n 20 "$WORK/$key.log" >&2 || true
			die "${LABEL[$key]} exited during start-up"
		fi
		if "$BIN" get --known-hosts "$WORK/known_hosts" --timeout 2s --follow 0 "$(url "$key")" \
			>"$WORK/ready-$key.out" 2>"$WORK/ready-$key.err" &&
			cmp -s "$WORK/ready-$key.out" "$WORK/docroot/file.gmi"; then
			log "${LABEL[$key]} ready on 127.0.0.1:${PORT[$key]}"
			return
		fi
		if ((SECONDS >= deadline)); then
			cat "$WORK/ready-$key.err" >&2 || true
			tail -n 20 "$WORK/$key.log" >&2 || true
			die "${LABEL[$key]} did not answer over TLS within 20 s"
		fi
		sleep 0.1
	done
}

start_all() {
	start molly molly-brown -c "$WORK/molly.conf"
	wait_ready molly # C and D need it first
	start gw-docroot "$BIN" run --config "$WORK/gw-docroot.yaml"
	start gw-proxy "$BIN" run --config "$WORK/gw-proxy.yaml"
	start haproxy haproxy -db -f "$WORK/haproxy.cfg" # -db: foreground
	wait_ready gw-docroot
	wait_ready gw-proxy
	wait_ready haproxy
}

# bench_cmd KEX KEY DURATION prints the load generator's command line.
bench_cmd() {
	printf '%s bench -c %s -d %s --kex %s --json --quiet %s' \
		"${BIN#"$ROOT"/}" "$CONCURRENCY" "$3" "$1" "$(url "$2")"
}

# run_bench KEX KEY DURATION OUT runs one load and writes its JSON report to
# OUT (empty when the generator failed outright).
run_bench() {
	local kex=$1 key=$2 dur=$3 out=$4
	if ! "$BIN" bench -c "$CONCURRENCY" -d "$dur" --kex "$kex" --json --quiet "$(url "$key")" \
		>"$out" 2>"$out.err"; then
		warn "bench exited non-zero for ${LABEL[$key]} (kex $kex): $(head -c 300 "$out.err")"
	fi
}

run_kex() {
	local kex=$1 r key dir=$WORK/results/$kex
	mkdir -p "$dir"
	log "key exchange $kex: warm-up ($WARMUP each)"
	for key in "${TARGETS[@]}"; do
		run_bench "$kex" "$key" "$WARMUP" "$dir/warmup-$key.json"
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		for key in "${TARGETS[@]}"; do
			log "key exchange $kex, round $r/$ROUNDS: ${LABEL[$key]}"
			run_bench "$kex" "$key" "$DURATION" "$dir/r$r-$key.json"
		done
	done
}

# summarise KEX KEY prints one tab-separated line for the target, over its
# rounds: median req/s answered with status 20 (failed requests would
# otherwise inflate the rate), median p50 and p99 (µs), requests, failures
# (transport errors + non-20 responses), failures detail, req/s per round,
# rounds that produced a report. It runs in a subshell: the caller checks the
# last field rather than relying on FAILED being set here.
summarise() {
	local kex=$1 key=$2 r files=()
	for ((r = 1; r <= ROUNDS; r++)); do
		local f=$WORK/results/$kex/r$r-$key.json
		if ! jq -e .requests "$f" >/dev/null 2>&1; then
			warn "no report from ${LABEL[$key]} in round $r (kex $kex)"
			continue
		fi
		files+=("$f")
	done
	((${#files[@]} > 0)) || {
		printf '0\t0\t0\t0\t0\tno report\t-\t0\n'
		return
	}
	jq -rs '
		def median: sort | if length % 2 == 1 then .[(length - 1) / 2]
			else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		def nonzero: to_entries | map(select(.value > 0));
		(map(.requests) | add) as $req
		| (map(.errors) | add) as $err
		| (map(.responses - (.status["20"] // 0)) | add) as $bad
		| ([.[].errors_by_kind | nonzero[]]
		   + [.[].status | to_entries[] | select(.key != "20") | .key = "status \(.key)"]
		   | group_by(.key) | map("\(.[0].key)=\(map(.value) | add)") | join(", ")) as $detail
		| [ (map(if .duration_seconds > 0 then (.status["20"] // 0) / .duration_seconds else 0 end) | median),
		    (map(.latency.p50_us) | median),
		    (map(.latency.p99_us) | median),
		    $req, ($err + $bad),
		    (if $detail == "" then "none" else $detail end),
		    (map(if .duration_seconds > 0 then (.status["20"] // 0) / .duration_seconds else 0 end
		         | round | tostring) | join(" / ")),
		    length ]
		| @tsv' "${files[@]}"
}

# ms formats microseconds as milliseconds.
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
# ratio A B [DECIMALS] prints a/b with two (or DECIMALS) decimals, or "n/a".
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else printf "n/a" }'; }
# paired A B takes two "x / y / z" per-round lists and prints the median of
# the per-round ratios a_i/b_i, then the ratios. Both targets of a ratio run
# next to each other in every round, so this cancels slow drift in the
# machine's load better than the ratio of the medians.
paired() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " / "); split(b, y, " / "); m = 0
		for (i = 1; i <= n; i++) if (y[i] > 0) r[++m] = x[i] / y[i]
		if (m == 0) { printf "n/a"; exit }
		for (i = 1; i <= m; i++) { s = s (i > 1 ? " / " : "") sprintf("%.2f", r[i]) }
		for (i = 2; i <= m; i++) { v = r[i]; for (j = i - 1; j >= 1 && r[j] > v; j--) r[j + 1] = r[j]; r[j + 1] = v }
		med = (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2
		printf "%.3f (per round: %s)", med, s
	}'
}
# meets A B MIN prints whether a/b >= MIN.
meets() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { if (b > 0 && a / b >= m) print "meets"; else print "**misses**" }'; }

kex_title() {
	case $1 in
	default) printf '%s' "Client offers Go's default key exchanges (\`--kex default\`): not like for like" ;;
	x25519) printf '%s' "Client offers X25519 only (\`--kex x25519\`): like for like" ;;
	esac
}

kex_note() {
	case $1 in
	default)
		cat <<-'EOF'
			The Go 1.26 client offers the post-quantum hybrid X25519MLKEM768 first (and an
			X25519 share). The gateway (B, C), built with Go 1.26, negotiates
			X25519MLKEM768; molly-brown (Go 1.19) and HAProxy (OpenSSL 3.0) do not know it
			and negotiate X25519. The client-side key exchanges therefore differ, and the
			gateway does the more expensive one.
		EOF
		;;
	x25519)
		cat <<-'EOF'
			The client offers only X25519, so every server does the same key exchange with
			the client: this is the like-for-like comparison.
		EOF
		;;
	esac
}

# report_kex KEX prints the Markdown table and ratios of one key exchange
# and marks FAILED when a target failed on more than 1% of its requests.
report_kex() {
	local kex=$1 key rps p50 p99 req bad detail rounds reported pct invalid=""
	declare -A RPS=() PER_ROUND=()
	printf '### %s\n\n' "$(kex_title "$kex")"
	kex_note "$kex"
	printf '\n| target | req/s (status 20, median) | p50 | p99 | failed requests | vs molly-brown | req/s per round |\n'
	printf '|---|--:|--:|--:|--:|--:|---|\n'
	local details=""
	for key in "${TARGETS[@]}"; do
		IFS=$'\t' read -r rps p50 p99 req bad detail rounds reported < <(summarise "$kex" "$key")
		RPS[$key]=$rps
		PER_ROUND[$key]=$rounds
		if ((reported < ROUNDS)); then
			FAILED=1
			invalid=" (not valid: see the failures above)"
			details+="- **${LABEL[$key]}: only $reported of $ROUNDS rounds produced a report**"$'\n'
		fi
		pct=$(awk -v b="$bad" -v r="$req" 'BEGIN { if (r > 0) printf "%.2f", 100 * b / r; else print "100" }')
		if awk -v p="$pct" -v r="$req" 'BEGIN { exit !(r == 0 || p > 1) }'; then
			FAILED=1
			invalid=" (not valid: see the failures above)"
			details+="- **${LABEL[$key]}: $bad of $req requests failed ($pct%, over 1%): $detail**"$'\n'
		elif ((bad > 0)); then
			details+="- ${LABEL[$key]}: $bad of $req requests failed ($pct%): $detail"$'\n'
		fi
		printf '| %s | %.0f | %s | %s | %s of %s | %s | %s |\n' "${LABEL[$key]}" "$rps" "$(ms "$p50")" "$(ms "$p99")" \
			"$bad" "$req" "$(ratio "$rps" "${RPS[molly]}")" "$rounds"
	done
	printf '\n'
	[[ -n $details ]] && printf '%s\n' "$details"
	printf -- '- gateway docroot / molly-brown (B / A) = **%s** (target ≥ 1.0: %s)%s\n' \
		"$(ratio "${RPS[gw-docroot]}" "${RPS[molly]}" 3)" "$(meets "${RPS[gw-docroot]}" "${RPS[molly]}" 1.0)" "$invalid"
	printf -- '  - median of the per-round ratios: %s\n' "$(paired "${PER_ROUND[gw-docroot]}" "${PER_ROUND[molly]}")"
	printf -- '- gateway proxy / HAProxy (C / D) = **%s** (target ≥ 1.5: %s)%s\n' \
		"$(ratio "${RPS[gw-proxy]}" "${RPS[haproxy]}" 3)" "$(meets "${RPS[gw-proxy]}" "${RPS[haproxy]}" 1.5)" "$invalid"
	printf -- '  - median of the per-round ratios: %s\n\n' "$(paired "${PER_ROUND[gw-proxy]}" "${PER_ROUND[haproxy]}")"
}

machine() {
	local cpu mem
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
	mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
	printf -- '- CPU: %s × %s\n' "$(nproc)" "${cpu:-unknown model}"
	printf -- '- memory: %s; kernel: %s\n' "${mem:-unknown}" "$(uname -sr)"
	printf -- '- Go: %s; molly-brown: %s (built with %s); HAProxy: %s, %s\n' \
		"$("$GO" env GOVERSION)" \
		"$(dpkg-query -W -f '${Version}' molly-brown 2>/dev/null || echo unknown)" \
		"$("$GO" version "$(command -v molly-brown)" 2>/dev/null | awk '{ print $2 }')" \
		"$(haproxy -v | awk 'NR == 1 { print $3 }')" \
		"$(haproxy -vv 2>/dev/null | awk -F' : ' '/^Running on OpenSSL version/ { print $2; exit }')"
}

# section prints the whole Markdown section, markers included.
section() {
	local kex
	cat <<-EOF
		<!-- bench-compare:begin -->
		## Comparison with molly-brown and HAProxy

		Written by \`make bench-compare\` (ops/benchcompare/bench-compare.sh) on $DATE.
		Do not edit between the bench-compare markers: the next run rewrites it.

		Machine:

		$(machine)
		- load average before: $LOAD_BEFORE; after: $LOAD_AFTER (\`uptime\`). The machine
		  was not idle if these are well above 0: other work shares the CPUs and the
		  numbers are noisy.
		- the load generator runs on the same $(nproc) cores as the servers (no pinning), at
		  niceness $NICENESS like them: every target pays for the client alike, and
		  absolute numbers are lower than with a separate client machine.

		Four servers on 127.0.0.1, each serving the same 1 KiB \`file.gmi\` with the
		same ECDSA P-256 certificate for \`localhost\` (molly-brown has no
		listen-address setting in this version and binds every interface; only
		loopback gets traffic):

		- **A molly-brown** serving the docroot (access log to /dev/null).
		- **B chimalli (docroot)** serving the same docroot with every layer on: the
		  default access policy (allow unless denied), the rate limiter with its capacity
		  and refill raised to $RL_CAPACITY (all load comes from one address, so the
		  default would answer 44; this limit never trips), \`max_conns_per_ip:
		  $MAX_CONNS_PER_IP\`, \`log.level: error\`.
		- **C chimalli → molly-brown**: the same gateway proxying to A
		  (\`upstream: gemini://127.0.0.1:PORT\`, \`upstream_sni: localhost\`).
		- **D HAProxy → molly-brown**: TCP mode, TLS terminated (\`bind … ssl crt\`)
		  and re-encrypted to A (\`ssl verify none sni str(localhost)\`), maxconn $HAPROXY_MAXCONN.
		  HAProxy resumes its TLS sessions to molly-brown (its default; in TLS 1.3 a
		  resumption still runs a key exchange and saves only the certificate
		  signature); so does the gateway (session tickets, and it offers the
		  upstream only the key exchange the upstream chose before). HAProxy listens on
		  1965 and is asked for \`gemini://localhost/file.gmi\`: molly-brown refuses
		  (53) a URL naming another port than its own, and HAProxy in TCP mode
		  cannot rewrite the request; molly-brown accepts a URL without a port.

		Method: \`chimalli bench\` closed loop, $CONCURRENCY connections, $DURATION per run, a full
		TLS handshake per request (no resumption), one request per connection. Each
		target is warmed up for $WARMUP, then the targets run interleaved, A B C D
		repeated $ROUNDS times, so drift in the machine's load affects all alike.
		req/s (responses with status 20 per second), p50 and p99 are medians over
		the rounds; failed requests (transport errors plus any status other than 20)
		are summed over the rounds. Each ratio
		is given twice: of the medians, and as the median of the per-round ratios
		(the two targets compared run back to back in every round, so the latter
		cancels drift better; when the two disagree, the run was too noisy).

	EOF
	for kex in $KEX; do
		cat "$WORK/table-$kex.md"
	done
	cat <<-EOF
		Commands (ports are picked at random per run):

		\`\`\`
		$RUN_CMD
	EOF
	for kex in $KEX; do
		local key
		printf '# --kex %s: warm-up (-d %s), then rounds of\n' "$kex" "$WARMUP"
		for key in "${TARGETS[@]}"; do
			printf '%s   # %s\n' "$(bench_cmd "$kex" "$key" "$DURATION")" "${LABEL[$key]%% *}"
		done
	done
	printf '%s\n\n' '```'
	printf '<details><summary>Configurations</summary>\n\n'
	local f
	for f in molly.conf gw-docroot.yaml gw-proxy.yaml haproxy.cfg; do
		printf '%s:\n\n```\n%s\n```\n\n' "$f" "$(sed "s|$WORK|\$WORK|g" "$WORK/$f")"
	done
	printf '</details>\n<!-- bench-compare:end -->\n'
}

# write_doc replaces the text between the markers of DOC (markers included)
# with the new section, appends the section if the markers are missing, or
# creates DOC with a short header.
write_doc() {
	[[ -n $DOC ]] || return 0
	local doc=$DOC new=$WORK/section.md
	[[ $doc == /* ]] || doc=$ROOT/$DOC
	section >"$new"
	if [[ ! -f $doc ]]; then
		local cpu
		cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
		printf '# Performance\n\nMeasurements of Chimalli on %s × %s (%s). Each section says how it was\nmeasured and with which command.\n' \
			"$(nproc)" "${cpu:-unknown CPU}" "$(uname -sr)" >"$doc"
	fi
	if grep -q '^<!-- bench-compare:begin -->$' "$doc"; then
		awk -v new="$new" '
			/^<!-- bench-compare:begin -->$/ { while ((getline line < new) > 0) print line; skip = 1; next }
			/^<!-- bench-compare:end -->$/ { skip = 0; next }
			!skip' "$doc" >"$doc.tmp"
	else
		{
			cat "$doc"
			printf '\n'
			cat "$new"
		} >"$doc.tmp"
	fi
	mv "$doc.tmp" "$doc"
	log "wrote $DOC"
}

main() {
	check_args
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	for t in ss jq awk; do command -v "$t" >/dev/null || die "$t is needed"; done
	ensure_pkg molly-brown molly-brown
	ensure_pkg haproxy haproxy
	cd "$ROOT"
	build
	setup_work
	write_configs
	start_all
	log "rate limit raised to capacity $RL_CAPACITY, refill $RL_REFILL/s on B and C: it never trips"

	DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
	NICENESS=$(nice)
	RUN_CMD="make bench-compare   # ROUNDS=$ROUNDS DURATION=$DURATION CONCURRENCY=$CONCURRENCY WARMUP=$WARMUP KEX=\"$KEX\""
	LOAD_BEFORE=$(uptime | sed 's/.*load average: //')
	local kex
	for kex in $KEX; do
		run_kex "$kex"
	done
	LOAD_AFTER=$(uptime | sed 's/.*load average: //')
	for kex in $KEX; do
		report_kex "$kex" >"$WORK/table-$kex.md"
		cat "$WORK/table-$kex.md"
	done
	printf 'load average before: %s; after: %s\n' "$LOAD_BEFORE" "$LOAD_AFTER"
	write_doc
	if ((FAILED)); then
		die "a target failed on more than 1% of its requests, or a run produced no report"
	fi
}

main "$@"
