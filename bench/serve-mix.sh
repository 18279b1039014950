#!/usr/bin/env bash
# bench/serve-mix.sh — the production read path under a realistic mix of categories.
#
# Generates a dataset over ~1,000 categories, publishes it into a fresh PostgreSQL schema
# (salesrank rank --once), and measures five contenders with one wrk Lua script that picks
# each request's category from a Zipf-skewed popularity table (the same seed, so the same
# sequence of categories, for every contender):
#
#   serve   one "salesrank serve" replica, GET /api/v1/popular?category_id=N (default page)
#   static  nginx serving each category's exact default-page bytes as a static file /c/N
#   cached  nginx configured from deploy/nginx.conf as shipped (as tests/ha derives it:
#           upstream keepalive, retries, JSON access log, the 5 s response cache, here on
#           tmpfs, CACHE_TMPFS) in front of two serve replicas
#   proxy   the same without its cache ("proxy_cache off"), in front of the same replicas
#   naive   bench/naive: the same endpoint answered with one PostgreSQL query per request
#           (pgx pool), the same JSON bytes, no in-memory snapshot
#
# and reports four comparisons: serve / static (≥ 0.6 required, 0.8 goal), proxy / static
# (what the production hop costs), cached / static (≥ 0.8 target: what the cache buys back;
# and cached / proxy) and serve / naive (what the in-memory snapshot buys). Before
# measuring, every category's body is fetched from each contender and compared byte for
# byte with serve's.
#
# Each round runs the five back to back, in the order proxy, cached, static, serve, naive
# and reversed in the next round, so every compared pair is adjacent (proxy and static one
# apart) and neither side always goes first; N rounds (default 5) of wrk -t1 -c64 -d10s
# --latency, medians, and the median of the per-round ratios (load from elsewhere that hits
# both runs of a pair cancels out of their ratio). Two CPU set-ups, as bench/serve.sh:
#
#   1 core each:  GOMAXPROCS=1 for serve, each replica and naive; worker_processes 1 for
#                 every nginx; every server process pinned to CPU 1 and wrk to CPU 0. So
#                 "proxy" and "cached" are the whole production stack (nginx + 2
#                 replicas) on one core.
#                 PostgreSQL is a system service and is NOT pinned: its backends run on
#                 either CPU, which favours naive (it gets PostgreSQL's CPU on top of its
#                 core, part of it taken from wrk's).
#   2 cores each: GOMAXPROCS=2 / worker_processes 2, nothing pinned; wrk, the server and
#                 PostgreSQL share the two cores: the whole box.
#
# The static nginx gets its best set-up (access_log off, sendfile, open_file_cache over all
# files, unlimited keep-alive requests); serve and naive log nothing per request. Both
# proxies keep deploy/nginx.conf's buffered access log, as in production (truncated after
# each run so the disk does not fill; the cached proxy's is read first for its hit ratio).
# Static's request line is /c/N rather than the API's longer one: a few bytes less for
# nginx static to parse. CPU µs/request is the user+system time of the contender's own
# processes during the run over the requests wrk completed (naive's includes its
# PostgreSQL backends' when PostgreSQL runs on this host; proxy's and cached's both
# replicas').
#
# ALT_VALID (say 1s) adds a sixth contender, "alt": the cached stack with that cache lifetime
# in place of the shipped one (proxy_cache_valid 200), its own cache on the same tmpfs, run
# between proxy and cached in each round, and a table of cached / alt: what the shipped
# lifetime buys against another, side by side. ALT_CONF (an edited copy of
# deploy/nginx.conf) does the same for any other change: alt is then derived from that file
# (with ALT_VALID's lifetime too, if set), and must answer with the same bytes.
#
# Usage: bench/serve-mix.sh        (N=1 DURATION=3s bench/serve-mix.sh for a dry run)
# Knobs (environment): N, DURATION, CONNS, WARMUP, LINES, CATEGORIES, ZIPF_S, SEED,
#   MIX_REQUESTS, PG_DSN, NAIVE_POOL, SETUPS ("1core 2cores"), CACHE_TMPFS (/dev/shm),
#   ALT_VALID, ALT_CONF (unset).
# Only 127.0.0.1 is used; every process started here is stopped, and the schema dropped,
# on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"

N=${N:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2s}
LINES=${LINES:-2000000}
CATEGORIES=${CATEGORIES:-1000}
ZIPF_S=${ZIPF_S:-1.0}
SEED=${SEED:-1}
MIX_REQUESTS=${MIX_REQUESTS:-1048576}
PG_DSN=${PG_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
NAIVE_POOL=${NAIVE_POOL:-16}
SETUPS=${SETUPS:-1core 2cores}
# Where the cached proxy keeps its cache: on tmpfs, as deploy/README.md recommends.
CACHE_TMPFS=${CACHE_TMPFS:-/dev/shm}
ALT_VALID=${ALT_VALID:-}
ALT_CONF=${ALT_CONF:-}
# Non-empty when there is an alt contender.
ALT=$ALT_VALID$ALT_CONF

log() { printf '%s\n' "serve-mix.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $DURATION =~ ^[0-9]+s$ && $WARMUP =~ ^[0-9]+s$ ]] || die "DURATION and WARMUP are whole seconds, like 10s"
WRK_TIMEOUT=$((${DURATION%s} + 60))
[[ $PG_DSN == postgres://* || $PG_DSN == postgresql://* ]] || die "PG_DSN must be a postgres:// URL"
[[ -z $ALT_VALID || $ALT_VALID =~ ^[1-9][0-9]*[smh]$ ]] || die "ALT_VALID is a cache lifetime, like 1s"
[[ -z $ALT_CONF || -r $ALT_CONF ]] || die "ALT_CONF $ALT_CONF is not a readable file"
[[ -z $ALT_CONF ]] || ALT_CONF=$(realpath "$ALT_CONF")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/salesrank-servemix.XXXXXX")
chmod 755 "$TMP" # nginx workers run as an unprivileged user when started by root
PIDS=()
SCHEMA='' NAIVE='' CACHE_DIR=''
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ -n $SCHEMA ]]; then
		timeout 30 "$NAIVE" --db "$PG_DSN" --exec "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" ||
			log "could not drop schema $SCHEMA; drop it by hand"
	fi
	rm -rf "$TMP"
	[[ -z $CACHE_DIR ]] || rm -rf "$CACHE_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
	[[ $(id -u) == 0 ]] || die "missing ${need[*]}: install the Debian packages"
	log "installing ${need[*]}"
	timeout 300 apt-get update -qq
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
CACHE_DIR=$(mktemp -d "$CACHE_TMPFS/salesrank-servemix-cache.XXXXXX") || die "cannot make a folder in CACHE_TMPFS=$CACHE_TMPFS"
chmod 755 "$CACHE_DIR"
CACHE_FS=$(df --output=fstype "$CACHE_DIR" | tail -1)
(($(nproc) >= 2)) || die "needs 2 CPUs (servers on CPU 1, wrk on CPU 0)"

# Free loopback ports, one after the other from 18180.
free_port() {
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}
PORT_A=$(free_port 18180)
PORT_B=$(free_port $((PORT_A + 1)))
PORT_NAIVE=$(free_port $((PORT_B + 1)))
PORT_STATIC=$(free_port $((PORT_NAIVE + 1)))
PORT_PROXY=$(free_port $((PORT_STATIC + 1)))
PORT_CACHED=$(free_port $((PORT_PROXY + 1)))
PORT_ALT=$(free_port $((PORT_CACHED + 1)))

log "building salesrank and bench/naive"
timeout 600 go build -o "$OUT/salesrank" ./cmd/salesrank
timeout 600 go build -o "$OUT/naive" ./bench/naive
SR=$OUT/salesrank NAIVE=$OUT/naive
NAIVE_APP=salesrank-naive-$$

# A fresh schema in the test database; every process gets it through search_path.
SCHEMA=salesrank_mix_$$_$RANDOM
timeout 30 "$NAIVE" --db "$PG_DSN" --exec "CREATE SCHEMA $SCHEMA" || { SCHEMA=''; die "cannot create a schema in $PG_DSN"; }
sep='?'
[[ $PG_DSN == *\?* ]] && sep='&'
DB="$PG_DSN${sep}search_path=$SCHEMA"

# Eight days ending at the current hour, ranked with the real clock, as bench/serve.sh.
log "generating $LINES lines over 8 days in $CATEGORIES categories and publishing them into schema $SCHEMA"
timeout 300 "$SR" gen --out "$TMP/logs" --days 8 --lines "$LINES" --categories "$CATEGORIES" --seed "$SEED" >/dev/null
timeout 300 "$SR" rank --once --logs "$TMP/logs" --db "$DB" >"$TMP/rank.json" 2>"$TMP/rank.log" ||
	{ cat "$TMP/rank.log" >&2; die "rank failed"; }
rm -rf "$TMP/logs"

# The wrk script: a precomputed sequence of MIX_REQUESTS requests drawn (LuaJIT's PRNG,
# fixed seed) from a Zipf(s) distribution over the categories, the k-th most popular with
# weight 1/k^s; which category is k-th is a seeded shuffle of the list. Precomputed in
# init (before wrk's clock starts) so each request costs wrk one table lookup. Arguments:
# categories file, api|static, s, seed, requests.
cat >"$TMP/mix.lua" <<'EOF'
local reqs, n, i = {}, 0, 0
function init(args)
	local ids = {}
	for line in io.lines(args[1]) do
		if line ~= "" then ids[#ids + 1] = line end
	end
	local static, s, m = args[2] == "static", tonumber(args[3]), tonumber(args[5])
	math.randomseed(tonumber(args[4]))
	for k = #ids, 2, -1 do
		local j = math.random(k)
		ids[k], ids[j] = ids[j], ids[k]
	end
	local cdf, total, fmt = {}, 0, {}
	for k = 1, #ids do
		total = total + 1 / k ^ s
		cdf[k] = total
		fmt[k] = wrk.format("GET", static and ("/c/" .. ids[k]) or ("/api/v1/popular?category_id=" .. ids[k]))
	end
	for r = 1, m do
		local u, lo, hi = math.random() * total, 1, #ids
		while lo < hi do
			local mid = math.floor((lo + hi) / 2)
			if cdf[mid] < u then lo = mid + 1 else hi = mid end
		end
		reqs[r] = fmt[lo]
	end
	n = m
end
function request()
	i = i + 1
	if i > n then i = 1 end
	return reqs[i]
end
EOF

wait_http() { # wait_http URL: up to 15 s
	local i
	for ((i = 0; i < 150; i++)); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	tail -n 20 "$TMP"/*.log "$TMP"/*/logs/error.log 2>/dev/null >&2 || true
	die "no answer from $1"
}

# The static nginx: its best set-up for serving files.
static_conf() { # static_conf PROCS
	mkdir -p "$TMP/static/logs" "$TMP/static/tmp" "$TMP/static/html/c"
	echo ready >"$TMP/static/html/ready"
	cat >"$TMP/static/nginx.conf" <<EOF
worker_processes $1;
daemon off;
pid $TMP/static/nginx.pid;
error_log $TMP/static/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    open_file_cache max=$((CATEGORIES * 2 + 16));
    open_file_cache_valid 60s;
    server_tokens off;
    client_body_temp_path $TMP/static/tmp;
    proxy_temp_path $TMP/static/tmp;
    fastcgi_temp_path $TMP/static/tmp;
    uwsgi_temp_path $TMP/static/tmp;
    scgi_temp_path $TMP/static/tmp;
    server {
        listen 127.0.0.1:$PORT_STATIC;
        root $TMP/static/html;
        location /c/ { default_type application/json; }
    }
}
EOF
}

# The two proxies: deploy/nginx.conf with only what tests/ha's testNginxConf changes (no
# user; pid, logs, temporary files and the cache folder under the prefix; listen on
# loopback; one upstream server line per replica with the first line's parameters) plus
# worker_processes set to the set-up's core count ("auto" would count the machine's CPUs,
# not the pinned set). "cached" is the file as shipped; "proxy", the stack without its
# cache, also has "proxy_cache salesrank_cache;" turned into "proxy_cache off;" and nothing
# else changed. Each edited line must match exactly once, so the benchmark cannot drift
# from the file.
proxy_conf() { # proxy_conf NAME PORT PROCS CACHE_DIR (NAME alt: ALT_CONF's, lifetime ALT_VALID)
	local p=$TMP/$1 src=$ROOT/deploy/nginx.conf
	[[ $1 == alt && -n $ALT_CONF ]] && src=$ALT_CONF
	mkdir -p "$p/logs" "$p/tmp"
	awk -v p="$p" -v listen="127.0.0.1:$2" -v procs="$3" -v cache="$4" -v nocache="$([[ $1 == proxy ]] && echo 1)" \
		-v ups="127.0.0.1:$PORT_A 127.0.0.1:$PORT_B" -v valid="$([[ $1 == alt ]] && echo "$ALT_VALID")" '
		BEGIN { nu = split(ups, U, " ") }
		function done(k) { c[k]++ }
		/^[ \t]*proxy_cache_path[ \t]+\// { done("proxy_cache_path"); sub(/proxy_cache_path[ \t]+[^ \t;]+/, "proxy_cache_path " cache); print; next }
		nocache && /^[ \t]*proxy_cache[ \t]+salesrank_cache;/ { done("proxy_cache"); sub(/salesrank_cache;/, "off;"); print; next }
		valid != "" && /^[ \t]*proxy_cache_valid[ \t]+200[ \t]+[0-9]+[smh];/ { done("proxy_cache_valid"); sub(/200[ \t]+[0-9]+[smh];/, "200 " valid ";"); print; next }
		/^user[ \t]+[^;]+;/ { done("user"); next }
		/^worker_processes[ \t]+[^;]+;/ { done("worker_processes"); print "worker_processes " procs ";"; next }
		/^pid[ \t]+[^;]+;/ { done("pid"); print "pid " p "/nginx.pid;"; next }
		/^error_log[ \t]+/ { done("error_log"); sub(/error_log[ \t]+[^ \t;]+/, "error_log " p "/logs/error.log"); print; next }
		/^[ \t]*access_log[ \t]+\// { done("access_log"); sub(/access_log[ \t]+[^ \t;]+/, "access_log " p "/logs/salesrank.access.log"); print; next }
		/^[ \t]*listen[ \t]+/ { done("listen"); sub(/listen[ \t]+[^ \t;]+/, "listen " listen); print; next }
		/^http \{$/ {
			done("http"); print
			split("client_body proxy fastcgi uwsgi scgi", T, " ")
			for (t = 1; t <= 5; t++) print "    " T[t] "_temp_path " p "/tmp/" T[t] ";"
			next
		}
		/^[ \t]*server[ \t]+[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+([ \t][^;]*)?;/ {
			if (c["server"]++ == 0) {
				match($0, /^[ \t]*server[ \t]+/); indent = substr($0, 1, RLENGTH)
				rest = substr($0, RLENGTH + 1); sub(/^[^ \t;]+/, "", rest)
				for (u = 1; u <= nu; u++) print indent U[u] rest
			} else if (prev_server != NR - 1) { apart = 1 }
			prev_server = NR; next
		}
		{ print }
		END {
			split("user worker_processes pid error_log access_log listen http proxy_cache_path" (nocache ? " proxy_cache" : "") (valid != "" ? " proxy_cache_valid" : ""), K, " ")
			for (k = 1; k in K; k++) if (c[K[k]] != 1) { printf "deploy/nginx.conf: want one %s line, got %d\n", K[k], c[K[k]] > "/dev/stderr"; bad = 1 }
			if (!c["server"] || apart) { print "deploy/nginx.conf: want the upstream server lines together" > "/dev/stderr"; bad = 1 }
			exit bad
		}' "$src" >"$p/nginx.conf" || die "cannot derive the $1 configuration from $src"
	"$NGINX" -p "$p" -c "$p/nginx.conf" -e "$p/logs/error.log" -t -q 2>"$p/nginx-t.out" ||
		{ cat "$p/nginx-t.out" >&2; die "nginx -t refuses the configuration derived from $src"; }
}

# Pids of the processes whose CPU time a contender is charged with.
declare -A CPU_PIDS
# A process that exits between the glob and cat's read makes cat fail; under pipefail that
# would end the script without a word, so its status is ignored.
children() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pp="$1" '$4 == pp {print $1}'; }
# nginx's children but its cache loader, which exits about a minute after start (it has
# nothing to load: every cache folder starts empty) and would make a run's CPU unmeasurable.
nginx_children() {
	local c
	for c in $(children "$1"); do
		grep -q 'cache loader' "/proc/$c/cmdline" 2>/dev/null || printf '%s ' "$c"
	done
}

# start_proxy NAME PORT PROCS CACHE_DIR: an nginx with NAME's configuration (proxy_conf),
# under start_all's pin; its pid in PROXY_PID.
start_proxy() {
	proxy_conf "$1" "$2" "$3" "$4"
	"${pin[@]}" "$NGINX" -p "$TMP/$1" -c "$TMP/$1/nginx.conf" -e "$TMP/$1/logs/error.log" -g 'daemon off;' \
		>>"$TMP/$1.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=($PROXY_PID)
}

start_all() { # start_all PROCS PIN_CPU(optional)
	local procs=$1 pin=() a b nv st px cx ax
	[[ -n ${2:-} ]] && pin=(taskset -c "$2")
	for port in "$PORT_A" "$PORT_B"; do
		GOMAXPROCS=$procs "${pin[@]}" "$SR" serve --db "$DB" --addr "127.0.0.1:$port" --admin-addr= \
			--drain 0s --log-level warn >>"$TMP/serve-$port.log" 2>&1 &
		PIDS+=($!)
		[[ $port == "$PORT_A" ]] && a=$! || b=$!
	done
	GOMAXPROCS=$procs "${pin[@]}" "$NAIVE" --db "$DB&pool_max_conns=$NAIVE_POOL&pool_min_conns=$NAIVE_POOL&application_name=$NAIVE_APP" --addr "127.0.0.1:$PORT_NAIVE" \
		>>"$TMP/naive.log" 2>&1 &
	nv=$!
	PIDS+=($nv)
	static_conf "$procs"
	"${pin[@]}" "$NGINX" -p "$TMP/static" -c "$TMP/static/nginx.conf" -e "$TMP/static/logs/error.log" \
		>>"$TMP/static.log" 2>&1 &
	st=$!
	PIDS+=($st)
	start_proxy proxy "$PORT_PROXY" "$procs" "$TMP/proxy/cache"
	px=$PROXY_PID
	# A fresh, empty cache folder for every set-up.
	rm -rf "$CACHE_DIR/cache"
	start_proxy cached "$PORT_CACHED" "$procs" "$CACHE_DIR/cache"
	cx=$PROXY_PID
	STARTED="$a $b $nv $st $px $cx"

	wait_http "http://127.0.0.1:$PORT_A/readyz"
	wait_http "http://127.0.0.1:$PORT_B/readyz"
	wait_http "http://127.0.0.1:$PORT_NAIVE/api/v1/popular?category_id=1"
	wait_http "http://127.0.0.1:$PORT_STATIC/ready"
	wait_http "http://127.0.0.1:$PORT_PROXY/readyz"
	wait_http "http://127.0.0.1:$PORT_CACHED/readyz"
	CPU_PIDS[serve]="$a"
	CPU_PIDS[naive]="$nv"
	CPU_PIDS[static]="$st $(children "$st" | tr '\n' ' ')"
	CPU_PIDS[proxy]="$px $(nginx_children "$px") $a $b"
	CPU_PIDS[cached]="$cx $(nginx_children "$cx") $a $b"
	if [[ -n $ALT ]]; then
		rm -rf "$CACHE_DIR/alt"
		start_proxy alt "$PORT_ALT" "$procs" "$CACHE_DIR/alt"
		ax=$PROXY_PID
		STARTED+=" $ax"
		wait_http "http://127.0.0.1:$PORT_ALT/readyz"
		CPU_PIDS[alt]="$ax $(nginx_children "$ax") $a $b"
	fi
}
stop_all() {
	local p
	for p in $STARTED; do kill "$p" 2>/dev/null || true; done
	for p in $STARTED; do wait "$p" 2>/dev/null || true; done
	# All of PIDS was started by start_all and is now gone: the trap must not signal
	# these pids again, which the system may have handed to other processes since.
	PIDS=() STARTED=''
}

# fetch_all BASE PATH_PREFIX DIR: every category's page from one contender into DIR/ID;
# prints "HTTP_CODE ID" per category. One curl, one kept-alive connection.
fetch_all() {
	local id
	mkdir -p "$3"
	while read -r id; do
		printf 'url = "%s%s%s"\noutput = "%s/%s"\n' "$1" "$2" "$id" "$3" "$id"
	done <"$TMP/ids" >"$TMP/curl.cfg"
	timeout 120 curl -sS -K "$TMP/curl.cfg" -w '%{http_code} %{url_effective}\n' |
		awk '{sub(/.*[^0-9]/, "", $2); print}'
}

# Every category id gen names (1…CATEGORIES) that serve answers 200 for: the mix draws from
# these. Their default pages, fetched from serve, are the static files.
seq 1 "$CATEGORIES" >"$TMP/ids"
start_all 1
fetch_all "http://127.0.0.1:$PORT_A" "/api/v1/popular?category_id=" "$TMP/static/html/c" >"$TMP/codes" ||
	die "fetching every category from serve failed"
awk '$1 != 200 {print $2}' "$TMP/codes" | while read -r id; do rm -f "$TMP/static/html/c/$id"; done
awk '$1 == 200 {print $2}' "$TMP/codes" >"$TMP/cats"
cp "$TMP/cats" "$TMP/ids"
NCATS=$(wc -l <"$TMP/cats")
((NCATS > 0)) || die "serve answered 200 for no category"
EMPTY=$(grep -lx '\[\]' "$TMP"/static/html/c/* | wc -l || true)
# Byte-for-byte: the static files, the other replica, naive and both proxies all give
# serve's bodies, for every category in the mix (the cached proxy twice: fetched from a
# replica, then from its cache).
for c in "static http://127.0.0.1:$PORT_STATIC /c/" \
	"replica2 http://127.0.0.1:$PORT_B /api/v1/popular?category_id=" \
	"naive http://127.0.0.1:$PORT_NAIVE /api/v1/popular?category_id=" \
	"proxy http://127.0.0.1:$PORT_PROXY /api/v1/popular?category_id=" \
	"cached http://127.0.0.1:$PORT_CACHED /api/v1/popular?category_id=" \
	"cached-again http://127.0.0.1:$PORT_CACHED /api/v1/popular?category_id=" \
	${ALT:+"alt http://127.0.0.1:$PORT_ALT /api/v1/popular?category_id="}; do
	set -- $c
	fetch_all "$2" "$3" "$TMP/check/$1" >"$TMP/codes-$1" || die "fetching every category from $1 failed"
	awk -v n="$NCATS" '$1 == 200 {ok++} END {exit ok != n || NR != n}' "$TMP/codes-$1" ||
		die "$1 did not answer 200 for every category"
	diff -rq "$TMP/static/html/c" "$TMP/check/$1" >&2 || die "$1 does not serve the same bytes as serve"
done
set --
# Response sizes (headers + body) of one category's page.
TOP=$(head -1 "$TMP/cats")
hdr_bytes() { curl -sS -o /dev/null -w '%{size_header}+%{size_download}' "$1"; }
SIZES="serve $(hdr_bytes "http://127.0.0.1:$PORT_A/api/v1/popular?category_id=$TOP"), static $(hdr_bytes "http://127.0.0.1:$PORT_STATIC/c/$TOP"), proxy $(hdr_bytes "http://127.0.0.1:$PORT_PROXY/api/v1/popular?category_id=$TOP"), cached $(hdr_bytes "http://127.0.0.1:$PORT_CACHED/api/v1/popular?category_id=$TOP"), naive $(hdr_bytes "http://127.0.0.1:$PORT_NAIVE/api/v1/popular?category_id=$TOP")"
# The cached proxy answers from its cache (two requests within its validity), and the
# uncached one never does. Three tries: a stall of the machine between the two requests
# can outlast the validity.
cache_status() { curl -sS -o /dev/null -D - "$1" | awk -F': *' 'tolower($1) == "x-cache-status" {sub(/\r$/, "", $2); print $2}'; }
for try in 1 2 3; do
	cache_status "http://127.0.0.1:$PORT_CACHED/api/v1/popular?category_id=$TOP" >/dev/null
	[[ $(cache_status "http://127.0.0.1:$PORT_CACHED/api/v1/popular?category_id=$TOP") == HIT ]] && break
	((try < 3)) || die "the cached proxy did not answer a repeated request from its cache"
done
[[ -z $(cache_status "http://127.0.0.1:$PORT_PROXY/api/v1/popular?category_id=$TOP") ]] ||
	die "the uncached proxy answered from a cache"
BODIES=$(cat "$TMP"/static/html/c/* | wc -c)
stop_all
log "$NCATS categories ($EMPTY with an empty page), mean body $((BODIES / NCATS)) bytes; all contenders serve identical bodies"

# The Zipf mix, described: the share of requests of the top 1 and top 10 categories, and
# how many categories take half and 90 % of the requests.
MIXDESC=$(awk -v n="$NCATS" -v s="$ZIPF_S" 'BEGIN {
	for (k = 1; k <= n; k++) { w[k] = 1 / k ^ s; h += w[k] }
	for (k = 1; k <= n; k++) { c += w[k] / h; if (k == 1) t1 = c; if (k == 10) t10 = c
		if (!h50 && c >= 0.5) h50 = k; if (!h90 && c >= 0.9) h90 = k }
	printf "the most popular category gets %.1f %% of requests, the top 10 %.1f %%; %d categories take half, %d take 90 %%", 100 * t1, 100 * t10, h50, h90 }')

to_ms() { # wrk latency (850.00us, 1.20ms, 1.02s) in ms
	awk -v v="$1" 'BEGIN{ u = v; sub(/^[0-9.]+/, "", u); n = v + 0
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
		printf "%.3f", n }'
}
cpu_ticks() { # cpu_ticks PID…: user + system clock ticks of these processes (all threads), or NA if one is gone
	local p t=0 v
	for p in "$@"; do
		v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || { log "warning: process $p is gone; CPU not measured"; echo NA; return; }
		t=$((t + v))
	done
	echo "$t"
}
# naive's PostgreSQL backends (its pool, grown by the warm-up), when the server is local:
# their CPU is charged to naive.
pg_backends() {
	local p
	for p in $(timeout 30 "$NAIVE" --db "$PG_DSN" --exec "SELECT pid FROM pg_stat_activity WHERE application_name = '$NAIVE_APP'"); do
		[[ -r /proc/$p/stat ]] && printf '%s ' "$p"
	done
	return 0
}
NAIVE_PG=""

TCK=$(getconf CLK_TCK)
port_of() { case $1 in serve) echo "$PORT_A" ;; naive) echo "$PORT_NAIVE" ;; static) echo "$PORT_STATIC" ;; proxy) echo "$PORT_PROXY" ;; cached) echo "$PORT_CACHED" ;; alt) echo "$PORT_ALT" ;; esac; }
mode_of() { [[ $1 == static ]] && echo static || echo api; }
wrk_mix() { # wrk_MIX NAME DURATION WRK_CPU
	local pin=()
	[[ -n ${3:-} ]] && pin=(taskset -c "$3")
	"${pin[@]}" timeout "$WRK_TIMEOUT" wrk -t1 -c"$CONNS" -d"$2" --latency -s "$TMP/mix.lua" "http://127.0.0.1:$(port_of "$1")" \
		-- "$TMP/cats" "$(mode_of "$1")" "$ZIPF_S" "$SEED" "$MIX_REQUESTS"
}
# log_flushed: waits until what the proxies logged so far is in their files: deploy/nginx.conf
# buffers the access log and flushes it every second (flush=1s).
log_flushed() { sleep 1.5; }
# cache_counts NAME REQUESTS: from a cached proxy's access log of one run of REQUESTS
# requests, "HIT_PERCENT UPSTREAM_REQUESTS_PER_SECOND" (the share of requests answered from
# the cache as fresh hits, and how many requests nginx sent the replicas a second), then
# empties it. Every request but a fresh hit is logged (fresh hits only as a sample), so the
# hits are the requests the log has no other line for.
cache_counts() {
	log_flushed
	awk -v d="${DURATION%s}" -v r="$2" '/"uri":"\/api\// && !/"cache":"HIT"/ {n++; if (!/"upstream_addr":""/) u++}
		END {if (r) printf "%.1f %.0f", 100 * (r - n) / r, u / d; else print "- -"}' "$TMP/$1/logs/salesrank.access.log"
	: >"$TMP/$1/logs/salesrank.access.log"
}
# bench SETUP NAME WRK_CPU: one recorded run; appends "SETUP NAME req/s p50ms p99ms
# cpu_us_per_request socket_errors hit_percent upstream_requests_per_second" to runs (the
# last two for the cached proxies only, "-" for the others).
bench() {
	local c0 c1 reqs errs hits='- -'
	# shellcheck disable=SC2086
	c0=$(cpu_ticks ${CPU_PIDS[$2]})
	wrk_mix "$2" "$DURATION" "$3" >"$TMP/wrk.out" 2>&1 || { cat "$TMP/wrk.out" >&2; die "wrk failed against $2"; }
	# shellcheck disable=SC2086
	c1=$(cpu_ticks ${CPU_PIDS[$2]})
	grep -q 'Non-2xx' "$TMP/wrk.out" && { cat "$TMP/wrk.out" >&2; die "$2 answered with errors"; }
	errs=$(awk '/Socket errors:/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' "$TMP/wrk.out")
	errs=${errs:-0}
	((errs == 0)) || log "warning: $2: $(grep 'Socket errors' "$TMP/wrk.out")"
	reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
	# Nothing reads the uncached proxy's log: it is only kept from growing, without waiting
	# for its last second to be flushed (those lines land in the next run's file).
	[[ $2 == proxy ]] && : >"$TMP/proxy/logs/salesrank.access.log"
	[[ $2 == cached || $2 == alt ]] && hits=$(cache_counts "$2" "$reqs")
	printf '%s %s %s %s %s %s %s %s\n' "$1" "$2" \
		"$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")" \
		"$(to_ms "$(awk '$1=="50%" {print $2}' "$TMP/wrk.out")")" \
		"$(to_ms "$(awk '$1=="99%" {print $2}' "$TMP/wrk.out")")" \
		"$(awk -v a="$c0" -v b="$c1" -v t="$TCK" -v r="$reqs" 'BEGIN {if (a == "NA" || b == "NA") print "NA"; else printf "%.1f", (b - a) / t * 1e6 / r}')" \
		"$errs" "$hits" >>"$TMP/runs"
	log "$(tail -1 "$TMP/runs")"
}

: >"$TMP/runs"
# Every compared pair is adjacent (cached and static, static and serve, serve and naive;
# alt and cached) or one apart (proxy and static; two with alt) in every round.
ORDER=(proxy ${ALT:+alt} cached static serve naive)
REVERSED=()
for ((k = ${#ORDER[@]} - 1; k >= 0; k--)); do REVERSED+=("${ORDER[k]}"); done
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
for setup in $SETUPS; do
	case $setup in
	1core) start_all 1 1; WRKCPU=0 ;;
	2cores) start_all 2; WRKCPU='' ;;
	*) die "unknown set-up $setup (want 1core, 2cores)" ;;
	esac
	# Warm-up of each contender with the mix: connections, page faults, heaps, PostgreSQL's
	# cache and pgx's prepared statements; not recorded.
	for name in "${ORDER[@]}"; do wrk_mix "$name" "$WARMUP" "$WRKCPU" >/dev/null; done
	# The proxies' logs then start with the first recorded run.
	log_flushed
	for name in proxy cached ${ALT:+alt}; do : >"$TMP/$name/logs/salesrank.access.log"; done
	backends=$(pg_backends)
	[[ $(wc -w <<<"$backends") == "$NAIVE_POOL" ]] || log "warning: found $(wc -w <<<"$backends") of naive's $NAIVE_POOL PostgreSQL backends"
	CPU_PIDS[naive]+=" $backends"
	NAIVE_PG+="$setup: $(wc -w <<<"$backends") backends; "
	for ((i = 1; i <= N; i++)); do
		if ((i % 2)); then order=("${ORDER[@]}"); else order=("${REVERSED[@]}"); fi
		for name in "${order[@]}"; do bench "$setup" "$name" "$WRKCPU"; done
	done
	stop_all
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
cp "$TMP/runs" "$OUT/serve-mix-runs.txt"

median_of() { { grep -v NA || true; } | sort -g | awk '{v[NR]=$1} END {if (!NR) print "NaN"; else if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
median() { awk -v s="$1" -v n="$2" -v c="$3" '$1==s && $2==n {print $c}' "$TMP/runs" | median_of; }
verdict() { awk -v r="$1" 'BEGIN{printf "%.2f (%s)", r, r >= 0.8 ? "meets goal" : r >= 0.6 ? "meets requirement" : "FAILS requirement"}'; }
verdict_target() { awk -v r="$1" 'BEGIN{printf "%.2f (%s)", r, r >= 0.8 ? "meets target" : "misses target"}'; }
# row SETUP LABEL A B JUDGE: medians of A and B, their ratio A/B as ratio of medians and as
# median of the per-round ratios (each round's two runs are adjacent), latencies, CPU.
# JUDGE: judge (0.6 required, 0.8 goal), target (0.8) or no.
row() {
	local a b r pair
	a=$(median "$1" "$3" 3) b=$(median "$1" "$4" 3)
	r=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.4f", a / b}')
	pair=$(awk -v s="$1" -v x="$3" -v y="$4" '$1==s && $2==x {a[++i]=$3} $1==s && $2==y {b[++j]=$3}
		END {for (k = 1; k <= i; k++) print a[k]/b[k]}' "$TMP/runs" | median_of)
	case $5 in
	judge) r=$(verdict "$r") pair=$(verdict "$pair") ;;
	target) r=$(verdict_target "$r") pair=$(verdict_target "$pair") ;;
	*) r=$(printf '%.2f' "$r") pair=$(printf '%.2f' "$pair") ;;
	esac
	printf '| %s | %.0f | %.0f | %s | %s | %.2f / %.2f | %.2f / %.2f | %.1f / %.1f |\n' "$2" "$a" "$b" "$r" "$pair" \
		"$(median "$1" "$3" 4)" "$(median "$1" "$4" 4)" "$(median "$1" "$3" 5)" "$(median "$1" "$4" 5)" \
		"$(median "$1" "$3" 6)" "$(median "$1" "$4" 6)"
}
label() {
	case $1 in
	1core) echo "1 core each: servers on CPU 1, wrk on CPU 0" ;;
	2cores) echo "2 cores each, nothing pinned" ;;
	esac
}
table() { # table A B JUDGE
	local s
	for s in $SETUPS; do row "$s" "$(label "$s")" "$1" "$2" "$3"; done
}
ERRS=$(awk '{e += $7} END {print e + 0}' "$TMP/runs")
hitline() { # hitline NAME: its fresh hits and requests sent to the replicas, per set-up
	local s
	for s in $SETUPS; do
		printf '%s: %.1f %% of requests answered as fresh hits, %.0f requests/s sent to the replicas; ' \
			"$(label "$s" | cut -d: -f1)" "$(median "$s" "$1" 8)" "$(median "$s" "$1" 9)"
	done
}
HITS=$(hitline cached)
ALTSECTION=''
if [[ -n $ALT ]]; then
	ALTDESC=${ALT_CONF:+$ALT_CONF}${ALT_CONF:+${ALT_VALID:+ with }}${ALT_VALID:+a cache lifetime of $ALT_VALID in place of $(awk '/^[ \t]*proxy_cache_valid[ \t]+200[ \t]/ {sub(/;.*/, ""); print $3}' "$ROOT/deploy/nginx.conf")}
	ALTSECTION="
#### deploy/nginx.conf as shipped (cached) against $ALTDESC (alt)

| set-up | cached req/s | alt req/s | cached / alt, ratio of medians | cached / alt, median of per-round ratios | p50 ms cached / alt | p99 ms cached / alt | CPU µs/req cached / alt |
|---|---:|---:|---|---|---|---|---|
$(table cached alt no)

alt's cache (medians): $(a=$(hitline alt); echo "${a%; }").
"
fi

cat <<EOF

## The production read path under a Zipf mix of categories — $(date -u +%Y-%m-%d), $(nproc) cores

$NCATS categories of a generated week ($LINES lines, --seed $SEED), published with
\`rank --once\` into PostgreSQL; each request's category drawn from Zipf(s = $ZIPF_S) over them
($MIXDESC); default page (mean body $((BODIES / NCATS)) bytes; $EMPTY categories with \`[]\`).
The same request sequence for every contender; every contender checked to serve serve's
bytes for every category. wrk -t1 -c$CONNS -d$DURATION --latency -s (Lua mix), keep-alive,
N=$N rounds, each running $(echo "${ORDER[*]}" | sed "s/ /, /g") back to back (reversed every
other round), medians. Load average before / after: $LOAD0 / $LOAD1 ($((SECONDS - T0)) s).
Response bytes (headers+body) of category $TOP: $SIZES. Socket errors in all runs: $ERRS.

### 1. serve vs nginx static (same bytes as files /c/N), Zipf mix

| set-up | serve req/s | nginx req/s | serve / nginx, ratio of medians (≥ 0.6 required, 0.8 goal) | serve / nginx, median of per-round ratios | p50 ms serve / nginx | p99 ms serve / nginx | CPU µs/req serve / nginx |
|---|---:|---:|---|---|---|---|---|
$(table serve static judge)

### 2. nginx (deploy/nginx.conf without its cache) → 2 serve replicas vs nginx static, Zipf mix

| set-up | proxy req/s | static req/s | proxy / static, ratio of medians | proxy / static, median of per-round ratios | p50 ms proxy / static | p99 ms proxy / static | CPU µs/req proxy (nginx + replicas) / static |
|---|---:|---:|---|---|---|---|---|
$(table proxy static no)

### 3. cached nginx (deploy/nginx.conf as shipped) → 2 serve replicas vs nginx static, Zipf mix

| set-up | cached req/s | static req/s | cached / static, ratio of medians (≥ 0.8 target) | cached / static, median of per-round ratios | p50 ms cached / static | p99 ms cached / static | CPU µs/req cached (nginx + replicas) / static |
|---|---:|---:|---|---|---|---|---|
$(table cached static target)

| set-up | cached req/s | proxy req/s | cached / proxy, ratio of medians | cached / proxy, median of per-round ratios | p50 ms cached / proxy | p99 ms cached / proxy | CPU µs/req cached / proxy |
|---|---:|---:|---|---|---|---|---|
$(table cached proxy no)

The cache (on $CACHE_FS, medians): ${HITS%; }.
The rest were answered from an expired copy while one request fetched its successor
(UPDATING), or were that fetch (EXPIRED) or a key's first (MISS).
$ALTSECTION
### 4. serve (in-memory snapshot) vs naive (one PostgreSQL query per request), Zipf mix

| set-up | serve req/s | naive req/s | serve / naive, ratio of medians | serve / naive, median of per-round ratios | p50 ms serve / naive | p99 ms serve / naive | CPU µs/req serve / naive (+ its PostgreSQL backends) |
|---|---:|---:|---|---|---|---|---|
$(table serve naive no)

Set-ups: "1 core each" is GOMAXPROCS=1 (serve, each replica, naive) and 1 nginx worker,
every server process pinned to CPU 1 and wrk to CPU 0 — the proxy row is nginx and both
replicas together on that one core (the cached row too); PostgreSQL is not pinned (it
helps naive). "2 cores each" is GOMAXPROCS=2 and 2 nginx workers, nothing pinned, wrk
sharing the cores.
naive's pool: $NAIVE_POOL connections, opened at start; its PostgreSQL backends found and
charged to its CPU: ${NAIVE_PG%; } (0 when PostgreSQL is not on this host, whose CPU is then
not counted). Raw runs (set-up, contender, req/s, p50 ms, p99 ms, CPU µs/req, socket
errors, and for cached the hit % and replica requests/s): bench/out/serve-mix-runs.txt
EOF
