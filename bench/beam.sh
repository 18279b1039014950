#!/usr/bin/env bash
# bench/beam.sh — the embedded engine against Apache Beam, on the same logs, side by side.
#
# Builds salesrank, salesrank-beam and Beam's Prism job server, generates once (cached in
# bench/out/) a week of logs as hourly objects (salesrank gen --out: 168 objects, the layout
# a log shipper leaves) for each size in SIZES, checks once per size that all three publish
# the same snapshot, then runs N alternating rounds of
#   (a) embedded   salesrank rank --once
#   (b) prism      salesrank-beam rank --once                     (Prism in this process)
#   (c) jobserver  salesrank-beam rank --once --runner universal --endpoint … --environment_type LOOPBACK
#                  (Prism's job server as its own process: the path of a Flink or Spark job
#                  server; LOOPBACK runs the SDK workers in the launcher)
# each a first incremental run into a fresh SQLite file (count, commit 168 hourly partials,
# rank, publish), under GNU time, and prints a markdown table of the medians: wall seconds,
# lines a second, peak RSS of the launcher, and for (c) the job server's peak RSS over all
# its rounds.
#
# Usage: bench/beam.sh            (N=1 SIZES=1000000 bench/beam.sh for a quick look)
# Knobs (environment): N, SIZES, SEED, START, END, NOW, TIMEOUT (seconds per command).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"

N=${N:-3}
SIZES=${SIZES:-"1000000 10000000"}
SEED=${SEED:-1}
START=${START:-2026-11-01T00:00:00Z}
END=${END:-2026-11-08T00:00:00Z}
NOW=${NOW:-2026-11-08T00:00:00Z}
TIMEOUT=${TIMEOUT:-1200}

log() { printf '%s\n' "beam.sh: $*" >&2; }
die() { log "$*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/salesrank-beambench.XXXXXX")
PRISM_PID=
cleanup() {
	[[ -n $PRISM_PID ]] && kill "$PRISM_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

if [[ ! -x /usr/bin/time ]]; then
	[[ $(id -u) == 0 ]] || die "GNU time is missing; install the Debian package 'time'"
	log "installing GNU time"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
command -v sqlite3 >/dev/null || die "need sqlite3 (Debian package sqlite3) to compare the snapshots"

log "building salesrank, salesrank-beam and prism"
timeout "$TIMEOUT" go build -o "$OUT/salesrank" ./cmd/salesrank
timeout "$TIMEOUT" go build -C beam -o "$OUT/salesrank-beam" ./cmd/salesrank-beam
timeout "$TIMEOUT" go build -C beam -o "$OUT/prism" github.com/apache/beam/sdks/v2/go/cmd/prism
SR=$OUT/salesrank
SRB=$OUT/salesrank-beam

# The job server, once for the whole run.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18073)
"$OUT/prism" --job_port="$PORT" --serve_http=false --log_level=warn >"$TMP/prism.log" 2>&1 &
PRISM_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

# run NAME LOGS DB: one contender's run; appends "wall lines rss_kb" to $TMP/NAME.
run() {
	local name=$1 logs=$2 db=$3
	local -a cmd
	case $name in
	embedded) cmd=("$SR" rank) ;;
	prism) cmd=("$SRB" rank --staging "$TMP/staging") ;;
	jobserver) cmd=("$SRB" rank --staging "$TMP/staging" --runner universal --endpoint "127.0.0.1:$PORT" --environment_type LOOPBACK) ;;
	esac
	rm -f "$db" "$db"-*
	/usr/bin/time -v -o "$TMP/time" timeout "$TIMEOUT" "${cmd[@]}" --once --logs "$logs" --db "$db" --now "$NOW" \
		>"$TMP/sum.json" 2>"$TMP/run.log" || { tail -5 "$TMP/run.log" >&2; die "$name failed"; }
	local wall rss lines
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$TMP/time")
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$TMP/time")
	lines=$(grep -o '"lines_read":[0-9]*' "$TMP/sum.json" | tail -1 | cut -d: -f2)
	echo "$wall $lines $rss" >>"$TMP/$name"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

snapshot() {
	sqlite3 "$1" "SELECT category_id, rank, product_id, total_sold FROM snapshot_sales_rank
		WHERE snapshot_id = (SELECT max(id) FROM snapshots) ORDER BY 1, 2" | md5sum | cut -d' ' -f1
}

echo "| lines | contender | wall s (median) | lines/s | launcher peak RSS | job server peak RSS |"
echo "|---|---|---|---|---|---|"
for LINES in $SIZES; do
	LOGS=$OUT/hourly-$LINES-seed$SEED
	GENARGS="--lines $LINES --seed $SEED --start $START --end $END --parts 1"
	if [[ ! -d $LOGS || "$(cat "$LOGS.args" 2>/dev/null)" != "$GENARGS" ]]; then
		log "generating $LOGS ($GENARGS)"
		rm -rf "$LOGS" "$LOGS.args"
		# shellcheck disable=SC2086
		timeout "$TIMEOUT" "$SR" gen --out "$LOGS.tmp" $GENARGS >&2
		mv "$LOGS.tmp" "$LOGS"
		printf '%s' "$GENARGS" >"$LOGS.args"
	fi
	rm -f "$TMP"/embedded "$TMP"/prism "$TMP"/jobserver
	log "$LINES lines: checking that the three publish the same snapshot"
	for c in embedded prism jobserver; do
		run "$c" "$LOGS" "$TMP/check-$c.db"
		snapshot "$TMP/check-$c.db" >"$TMP/check-$c.md5"
	done
	cmp -s "$TMP/check-embedded.md5" "$TMP/check-prism.md5" && cmp -s "$TMP/check-embedded.md5" "$TMP/check-jobserver.md5" ||
		die "$LINES lines: the engines published different snapshots"
	rm -f "$TMP"/embedded "$TMP"/prism "$TMP"/jobserver
	order=(embedded prism jobserver)
	for r in $(seq "$N"); do
		log "$LINES lines: round $r of $N (${order[*]})"
		for c in "${order[@]}"; do run "$c" "$LOGS" "$TMP/$c.db"; done
		order=("${order[2]}" "${order[1]}" "${order[0]}")
	done
	jsrss=$(awk '/VmHWM/ {print $2}' "/proc/$PRISM_PID/status")
	for c in embedded prism jobserver; do
		wall=$(cut -d' ' -f1 "$TMP/$c" | median)
		lines=$(head -1 "$TMP/$c" | cut -d' ' -f2)
		rss=$(cut -d' ' -f3 "$TMP/$c" | median)
		js=""
		[[ $c == jobserver ]] && js="$((jsrss / 1024)) MiB"
		printf '| %s | %s | %.2f | %.0f | %d MiB | %s |\n' "$LINES" "$c" "$wall" "$(echo "$lines / $wall" | bc -l)" "$((rss / 1024))" "$js"
	done
done
