#!/usr/bin/env bash
# bench/serve.sh — how close does "salesrank serve" come to nginx serving the same bytes
# as a static file?
#
# Generates a small dataset, ranks it into a temporary SQLite db, starts salesrank serve,
# fetches one category's default page (/api/v1/popular?category_id=C) and writes those exact
# bytes to a static file that an nginx (started here, with its own minimal config) serves
# on the same path. Then, for two CPU set-ups, runs N paired, alternating
#   wrk -t1 -c64 -d10s --latency
# against each and prints the medians of requests/s and of p50/p99 latency.
#
#   1 core each:  salesrank serve with GOMAXPROCS=1 vs nginx worker_processes 1, each server
#                 pinned to CPU 1 and wrk pinned to CPU 0 (no contention between load
#                 generator and server: the fairest per-core comparison on 2 cores).
#   2 cores each: GOMAXPROCS=2 vs worker_processes 2, nothing pinned; wrk shares the cores.
#
# nginx gets its best static set-up: access_log off, sendfile, open_file_cache, unlimited
# keep-alive requests. salesrank serve logs nothing per request either.
#
# Usage: bench/serve.sh            (N=3 DURATION=5s bench/serve.sh for a quicker run)
# Knobs (environment): N, DURATION, CONNS, LINES, PORT_SERVE, PORT_NGINX.
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"

N=${N:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
LINES=${LINES:-2000000}

log() { printf '%s\n' "serve.sh: $*" >&2; }
die() { log "$*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/salesrank-servebench.XXXXXX")
chmod 755 "$TMP" # nginx workers run as an unprivileged user when started by root
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
	[[ $(id -u) == 0 ]] || die "missing ${need[*]}: install the Debian packages"
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v sqlite3 >/dev/null || command -v python3 >/dev/null || die "need sqlite3 or python3"

# A free loopback port, starting from $1.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
PORT_SERVE=${PORT_SERVE:-$(free_port 18080)}
PORT_NGINX=${PORT_NGINX:-$(free_port $((PORT_SERVE + 1)))}
[[ $PORT_SERVE != "$PORT_NGINX" ]] || die "PORT_SERVE and PORT_NGINX must differ"

log "building salesrank"
timeout 600 go build -o "$OUT/salesrank" ./cmd/salesrank
SR=$OUT/salesrank

# Eight days ending at the current hour, so the week before now is full and one day falls
# outside it; ranked with the real clock, so Cache-Control counts down as in production.
log "generating $LINES lines over 8 days and ranking them"
timeout 300 "$SR" gen --out "$TMP/logs" --days 8 --lines "$LINES" --seed 1 >/dev/null
timeout 300 "$SR" rank --once --logs "$TMP/logs" --db "$TMP/sr.db" >"$TMP/rank.json" 2>"$TMP/rank.log" ||
	{ cat "$TMP/rank.log" >&2; die "rank failed"; }

sql() {
	if command -v sqlite3 >/dev/null; then sqlite3 "$TMP/sr.db" "$1"; else
		python3 -c 'import sqlite3,sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(*r, sep="|")' "$TMP/sr.db" "$1"
	fi
}
CAT=${CATEGORY:-$(sql "SELECT category_id FROM snapshot_sales_rank
	WHERE snapshot_id = (SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1)
	GROUP BY category_id HAVING count(*) >= 10 ORDER BY category_id LIMIT 1")}
[[ -n $CAT ]] || die "no category with 10 ranked products"
URLPATH="/api/v1/popular?category_id=$CAT"

wait_http() { # wait_http URL: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$TMP"/nginx/logs/error.log "$TMP"/nginx.out "$TMP"/serve.log 2>/dev/null | tail -20 >&2
	die "no answer from $1"
}

SERVE_PID='' NGINX_PID=''
start_servers() { # start_servers PROCS PIN_CPU(optional)
	local procs=$1 pin=()
	[[ -n ${2:-} ]] && pin=(taskset -c "$2")
	GOMAXPROCS=$procs "${pin[@]}" "$SR" serve --db "$TMP/sr.db" --addr "127.0.0.1:$PORT_SERVE" \
		--drain 0s --log-level warn >>"$TMP/serve.log" 2>&1 &
	SERVE_PID=$!
	PIDS+=("$SERVE_PID")

	mkdir -p "$TMP/nginx/logs" "$TMP/nginx/html/api/v1"
	cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $procs;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    open_file_cache max=16;
    open_file_cache_valid 60s;
    server_tokens off;
    client_body_temp_path $TMP/nginx/tmp;
    proxy_temp_path $TMP/nginx/tmp;
    fastcgi_temp_path $TMP/nginx/tmp;
    uwsgi_temp_path $TMP/nginx/tmp;
    scgi_temp_path $TMP/nginx/tmp;
    server {
        listen 127.0.0.1:$PORT_NGINX;
        root $TMP/nginx/html;
        location = /api/v1/popular {
            default_type application/json;
            try_files /api/v1/popular.json =404;
        }
    }
}
EOF
	"${pin[@]}" "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
		>>"$TMP/nginx.out" 2>&1 &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
}
stop_servers() {
	kill "$SERVE_PID" "$NGINX_PID" 2>/dev/null || true
	wait "$SERVE_PID" "$NGINX_PID" 2>/dev/null || true
}

# The static file: salesrank's exact response body, fetched once.
mkdir -p "$TMP/nginx/html/api/v1"
start_servers 1
wait_http "http://127.0.0.1:$PORT_SERVE/readyz"
curl -fsS "http://127.0.0.1:$PORT_SERVE$URLPATH" -o "$TMP/nginx/html/api/v1/popular.json"
wait_http "http://127.0.0.1:$PORT_NGINX$URLPATH"
curl -fsS "http://127.0.0.1:$PORT_NGINX$URLPATH" -o "$TMP/nginx.body"
cmp -s "$TMP/nginx.body" "$TMP/nginx/html/api/v1/popular.json" || die "nginx does not serve the same bytes"
BODY=$(stat -c %s "$TMP/nginx.body")
stop_servers
log "category $CAT: $BODY-byte body; serve on :$PORT_SERVE, nginx on :$PORT_NGINX"

to_ms() { # wrk latency (850.00us, 1.20ms, 1.02s) in ms
	awk -v v="$1" 'BEGIN{ u = v; sub(/^[0-9.]+/, "", u); n = v + 0
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.3f", n }'
}
# bench SETUP NAME PORT WRK_CPU: one wrk run; appends "SETUP NAME rps p50ms p99ms" to runs.
bench() {
	local pin=()
	[[ -n ${4:-} ]] && pin=(taskset -c "$4")
	"${pin[@]}" timeout 120 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$3$URLPATH" >"$TMP/wrk.out" 2>&1 ||
		{ cat "$TMP/wrk.out" >&2; die "wrk failed against $2"; }
	grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" && { cat "$TMP/wrk.out" >&2; die "$2 answered with errors"; }
	printf '%s %s %s %s %s\n' "$1" "$2" \
		"$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")" \
		"$(to_ms "$(awk '$1=="50%" {print $2}' "$TMP/wrk.out")")" \
		"$(to_ms "$(awk '$1=="99%" {print $2}' "$TMP/wrk.out")")" >>"$TMP/runs"
	log "$(tail -1 "$TMP/runs")"
}

: >"$TMP/runs"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for setup in 1core 2cores; do
	if [[ $setup == 1core ]]; then start_servers 1 1; WRKCPU=0; else start_servers 2; WRKCPU=''; fi
	wait_http "http://127.0.0.1:$PORT_SERVE/readyz"
	wait_http "http://127.0.0.1:$PORT_NGINX$URLPATH"
	# Warm-up: connections, page faults, the Go heap; not recorded.
	for port in "$PORT_SERVE" "$PORT_NGINX"; do
		timeout 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port$URLPATH" >/dev/null
	done
	for ((i = 1; i <= N; i++)); do
		if ((i % 2)); then
			bench "$setup" serve "$PORT_SERVE" "$WRKCPU"; bench "$setup" nginx "$PORT_NGINX" "$WRKCPU"
		else
			bench "$setup" nginx "$PORT_NGINX" "$WRKCPU"; bench "$setup" serve "$PORT_SERVE" "$WRKCPU"
		fi
	done
	stop_servers
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$TMP/runs" "$OUT/serve-runs.txt"

median() { # median SETUP NAME COLUMN
	awk -v s="$1" -v n="$2" -v c="$3" '$1==s && $2==n {print $c}' "$TMP/runs" | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'
}
row() { # row SETUP LABEL
	local sr ng
	sr=$(median "$1" serve 3) ng=$(median "$1" nginx 3)
	# Per-round ratios: a round's two runs are back to back, so load from elsewhere that
	# hits both cancels out; their median is the steadier figure on a shared machine.
	pair=$(awk -v s="$1" '$1==s && $2=="serve" {a[++i]=$3} $1==s && $2=="nginx" {b[++j]=$3}
		END {for (k = 1; k <= i; k++) print a[k]/b[k]}' "$TMP/runs" | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) printf "%.2f", v[(NR+1)/2]; else printf "%.2f", (v[NR/2]+v[NR/2+1])/2}')
	printf '| %s | %.0f | %.0f | %s | %s | %s / %s | %s / %s |\n' "$2" "$sr" "$ng" \
		"$(awk -v a="$sr" -v b="$ng" 'BEGIN{r = a/b; printf "%.2f (%s)", r, r >= 0.8 ? "meets goal" : r >= 0.6 ? "meets requirement" : "FAILS requirement"}')" \
		"$(awk -v r="$pair" 'BEGIN{printf "%.2f (%s)", r, r >= 0.8 ? "meets goal" : r >= 0.6 ? "meets requirement" : "FAILS requirement"}')" \
		"$(median "$1" serve 4)" "$(median "$1" nginx 4)" "$(median "$1" serve 5)" "$(median "$1" nginx 5)"
}

cat <<EOF

## salesrank serve vs nginx (static file, same bytes) — $(date -u +%Y-%m-%d), $(nproc) cores

GET $URLPATH ($BODY-byte JSON body), wrk -t1 -c$CONNS -d$DURATION --latency, keep-alive,
N=$N paired alternating runs per set-up, medians. Load average before / after: $LOAD0 / $LOAD1.

| set-up | serve req/s | nginx req/s | serve / nginx, ratio of medians (≥ 0.6 required, 0.8 goal) | serve / nginx, median of per-round ratios | p50 ms serve / nginx | p99 ms serve / nginx |
|---|---:|---:|---|---|---|---|
$(row 1core "1 core each: GOMAXPROCS=1 vs 1 nginx worker, servers on CPU 1, wrk on CPU 0")
$(row 2cores "2 cores each: GOMAXPROCS=2 vs 2 nginx workers, wrk shares the cores")

Raw runs (set-up, server, req/s, p50 ms, p99 ms): bench/out/serve-runs.txt
EOF
