#!/usr/bin/env bash
# bench/rank.sh — how fast does "salesrank rank --once" rank a week of sales, next to DuckDB
# doing the same query on the same file?
#
# Builds salesrank and bench/duckdb's duckrank, generates once (cached in bench/out/) a
# 10 M-line log over a fixed week, checks once that both give the same top-K rows, then
# runs N paired, alternating rounds of
#   (a) salesrank rank --once --full --full-ranks=false --top 10 on a folder holding only that
#       file, into a fresh SQLite db (process start to exit: parse, count, rank, publish the
#       top lists: what DuckDB's query computes);
#   (b) duckrank on the same file (read_csv, window filter, group by, row_number, fetch);
#   (c) wc -l on the same file (the floor: reading the bytes from the page cache once);
#   (d) salesrank's incremental first run on an empty db (--full-ranks=false), and (a) with
#       the full ranks rank publishes by default (every product's rank), both beside (a);
# each under GNU time for peak RSS, and prints a markdown table of the medians.
#
# Usage: bench/rank.sh            (N=3 bench/rank.sh for fewer rounds)
# Knobs (environment): N, LINES, SEED, START, END, NOW, TOP, TIMEOUT (seconds per command).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
mkdir -p "$OUT"

N=${N:-5}
LINES=${LINES:-10000000}
SEED=${SEED:-1}
START=${START:-2026-11-01T00:00:00Z}
END=${END:-2026-11-08T00:00:00Z}
NOW=${NOW:-2026-11-08T00:00:00Z} # cutoff = END: the window is exactly the generated week
TOP=${TOP:-10}
TIMEOUT=${TIMEOUT:-600}

log() { printf '%s\n' "rank.sh: $*" >&2; }
die() { log "$*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/salesrank-rankbench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# GNU time: the shell keyword cannot report peak RSS.
if [[ ! -x /usr/bin/time ]]; then
	[[ $(id -u) == 0 ]] || die "GNU time is missing; install the Debian package 'time'"
	log "installing GNU time"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
command -v sqlite3 >/dev/null || command -v python3 >/dev/null ||
	die "need sqlite3 or python3 to read salesrank's snapshot for the correctness check"

log "building salesrank and duckrank"
timeout "$TIMEOUT" go build -o "$OUT/salesrank" ./cmd/salesrank
(cd bench/duckdb && CGO_ENABLED=1 timeout "$TIMEOUT" go build -o "$OUT/duckrank" .)
SR=$OUT/salesrank
DUCK=$OUT/duckrank

# The data: generated once, reused while the flags that made it are the same.
DATA=$OUT/sales-$LINES-seed$SEED.tsv
GENARGS="--lines $LINES --seed $SEED --start $START --end $END"
if [[ ! -s $DATA || "$(cat "$DATA.args" 2>/dev/null)" != "$GENARGS" ]]; then
	log "generating $DATA ($GENARGS)"
	rm -f "$DATA" "$DATA.args"
	# shellcheck disable=SC2086
	timeout "$TIMEOUT" "$SR" gen --out-file "$DATA.tmp" $GENARGS >&2
	mv "$DATA.tmp" "$DATA"
	printf '%s' "$GENARGS" >"$DATA.args"
fi
# salesrank reads a folder: give it one that holds only this file (a hard link, no copy).
LOGS=$OUT/logs-$LINES-seed$SEED
mkdir -p "$LOGS"
find "$LOGS" -mindepth 1 -delete
ln "$DATA" "$LOGS/sales.tsv" 2>/dev/null || cp "$DATA" "$LOGS/sales.tsv"
BYTES=$(stat -c %s "$DATA")

# Correctness, once: salesrank's published snapshot must equal DuckDB's top-K rows.
log "checking that salesrank and DuckDB publish the same top $TOP rows"
timeout "$TIMEOUT" "$SR" rank --once --full --top "$TOP" --logs "$LOGS" --db "$TMP/check.db" --now "$NOW" \
	>"$TMP/check.json" 2>"$TMP/check.log" || { cat "$TMP/check.log" >&2; die "salesrank rank failed"; }
timeout "$TIMEOUT" "$DUCK" --file "$DATA" --now "$NOW" --top "$TOP" --print | grep -v '^{' >"$TMP/duck.tsv"
Q="SELECT r.category_id, r.rank, r.product_id, r.total_sold
   FROM snapshot_sales_rank r JOIN snapshots s ON s.id = r.snapshot_id
   WHERE s.id = (SELECT id FROM snapshots ORDER BY cutoff DESC, id DESC LIMIT 1)
   ORDER BY r.category_id, r.rank"
if command -v sqlite3 >/dev/null; then
	sqlite3 -separator $'\t' "$TMP/check.db" "$Q" >"$TMP/salesrank.tsv"
else
	python3 -c 'import sqlite3,sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(*r, sep="\t")' "$TMP/check.db" "$Q" >"$TMP/salesrank.tsv"
fi
ROWS=$(wc -l <"$TMP/duck.tsv")
if ! cmp -s "$TMP/salesrank.tsv" "$TMP/duck.tsv"; then
	diff "$TMP/salesrank.tsv" "$TMP/duck.tsv" | head -20 >&2
	die "MISMATCH: salesrank's snapshot differs from DuckDB's top $TOP (see the diff above)"
fi
[[ $ROWS -gt 0 ]] || die "both engines ranked nothing: check NOW against the data's time range"
log "check OK: $ROWS identical rows ($(grep -o '"lines_read":[0-9]*' "$TMP/check.json"))"

# Timing. Wall seconds come from a nanosecond clock around the command (GNU time's %e has
# only 10 ms resolution, too coarse for wc -l); peak RSS (KiB) from GNU time's %M.
# measure NAME CMD... appends "NAME seconds rss_kib" to $TMP/runs.
measure() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s%N)
	timeout "$TIMEOUT" /usr/bin/time -f '%e %M' -o "$TMP/time.out" "$@" >"$TMP/$name.stdout" 2>"$TMP/$name.stderr" ||
		{ cat "$TMP/$name.stderr" >&2; die "$name failed: $*"; }
	t1=$(date +%s%N)
	printf '%s %s %s\n' "$name" "$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.3f", d/1e9}')" \
		"$(awk '{print $2}' "$TMP/time.out")" >>"$TMP/runs"
}
run_salesrank() {
	rm -f "$TMP"/bench.db*
	measure salesrank "$SR" rank --once --full --full-ranks=false --top "$TOP" --logs "$LOGS" --db "$TMP/bench.db" --now "$NOW"
}
# The same with every product's rank published too, as rank does by default.
run_fullranks() {
	rm -f "$TMP"/full.db*
	measure fullranks "$SR" rank --once --full --top "$TOP" --logs "$LOGS" --db "$TMP/full.db" --now "$NOW"
}
# The incremental ranker's first run on an empty database: it also sums per hour, encodes
# and commits the hourly partial sums and the manifest (a one-off run then ranks the hourly
# sums without building the window that a scheduler's runs keep).
run_incremental() {
	rm -f "$TMP"/incr.db*
	measure incremental "$SR" rank --once --full-ranks=false --top "$TOP" --logs "$LOGS" --db "$TMP/incr.db" --now "$NOW"
}
run_duckdb() { measure duckdb "$DUCK" --file "$DATA" --now "$NOW" --top "$TOP"; }
run_wc() { measure wc wc -l "$DATA"; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming the page cache"
cat "$DATA" >/dev/null
: >"$TMP/runs"
for ((i = 1; i <= N; i++)); do
	# Alternate who goes first, so neither always runs on a warmer (or hotter) machine.
	# salesrank --full runs next to both contenders it is compared with: DuckDB and the
	# incremental first run.
	if ((i % 2)); then run_duckdb; run_salesrank; run_incremental; else run_incremental; run_salesrank; run_duckdb; fi
	run_wc
	run_fullranks
	log "round $i/$N: $(tail -5 "$TMP/runs" | tr '\n' ' ')"
done
cp "$TMP/runs" "$OUT/rank-runs.txt"
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

median() { # median NAME COLUMN
	awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'
}
ST=$(median salesrank 2) SM=$(median salesrank 3)
DT=$(median duckdb 2) DM=$(median duckdb 3)
WT=$(median wc 2) WM=$(median wc 3)
IT=$(median incremental 2) IM=$(median incremental 3)
FT=$(median fullranks 2) FM=$(median fullranks 3)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
# With paired runs, the median of the per-round ratios cancels load that hits both members
# of a round; the ratio of the fastest runs shows each at its least disturbed.
pair() { # pair A B: the median over the rounds of A's time / B's
	awk -v a="$1" -v b="$2" '$1==a {x[++i]=$2} $1==b {y[++j]=$2}
		END {for (k = 1; k <= i; k++) print x[k]/y[k]}' "$TMP/runs" | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) printf "%.2f", v[(NR+1)/2]; else printf "%.2f", (v[NR/2]+v[NR/2+1])/2}'
}
PAIR=$(pair salesrank duckdb) IPAIR=$(pair incremental salesrank)
best() { awk -v n="$1" '$1==n {print $2}' "$TMP/runs" | sort -g | head -1; }
BR=$(ratio "$(best salesrank)" "$(best duckdb)")
TR=$(ratio "$ST" "$DT") MR=$(ratio "$SM" "$DM") WR=$(ratio "$ST" "$WT") IR=$(ratio "$IT" "$ST") FR=$(ratio "$FT" "$ST")
DUCKVER=$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/duckdb/duckdb-go/v2") print $(i+1)}' bench/duckdb/go.mod)
verdict() { awk -v r="$1" -v t="$2" 'BEGIN{ print (r <= t ? "meets" : "MISSES") }'; }

cat <<EOF

## salesrank rank vs DuckDB — $(date -u +%Y-%m-%d), $(nproc) cores, N=$N paired alternating runs, medians

File: $(basename "$DATA"), $LINES lines, $((BYTES / 1000000)) MB, window [$START, $END), top $TOP per category ($ROWS rows); page cache warm.
Load average before / after: $LOAD0 / $LOAD1 (anything else running shares the $(nproc) cores).

| command | wall s (median) | peak RSS MiB (median) | lines/s |
|---|---:|---:|---:|
| salesrank rank --once --full --full-ranks=false --top $TOP (start to exit, incl. SQLite publish) | $ST | $(awk -v k="$SM" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v l="$LINES" -v s="$ST" 'BEGIN{printf "%.2f M", l/s/1e6}') |
| duckrank (duckdb-go $DUCKVER, all cores) | $DT | $(awk -v k="$DM" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v l="$LINES" -v s="$DT" 'BEGIN{printf "%.2f M", l/s/1e6}') |
| salesrank rank --once --full-ranks=false --top $TOP, incremental, empty db (also commits 168 hourly partials) | $IT | $(awk -v k="$IM" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v l="$LINES" -v s="$IT" 'BEGIN{printf "%.2f M", l/s/1e6}') |
| salesrank rank --once --full --top $TOP, with full ranks (rank's default) | $FT | $(awk -v k="$FM" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v l="$LINES" -v s="$FT" 'BEGIN{printf "%.2f M", l/s/1e6}') |
| wc -l (reading the file once) | $WT | $(awk -v k="$WM" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v l="$LINES" -v s="$WT" 'BEGIN{printf "%.0f M", l/s/1e6}') |

| ratio | value | target | goal | |
|---|---:|---:|---:|---|
| time salesrank / DuckDB (ratio of medians) | $TR | ≤ 1.0; ≤ 0.6 (issue 11) | ≤ 0.5 | $(verdict "$TR" 1.0) 1.0, $(verdict "$TR" 0.6) 0.6 |
| time salesrank / DuckDB (median of the $N per-round ratios) | $PAIR | ≤ 1.0 | ≤ 0.5 | $(verdict "$PAIR" 1.0) target |
| time salesrank / DuckDB (fastest run of each: $(best salesrank) s / $(best duckdb) s) | $BR | ≤ 1.0 | ≤ 0.5 | |
| peak RSS salesrank / DuckDB | $MR | ≤ 1.5 | | $(verdict "$MR" 1.5) target |
| time salesrank / wc -l | $WR | | | |
| time incremental first run / salesrank --full (ratio of medians) | $IR | ≤ 1.3 (issue 11) | | $(verdict "$IR" 1.3) |
| time incremental first run / salesrank --full (median of the $N per-round ratios) | $IPAIR | ≤ 1.3 (issue 11) | | $(verdict "$IPAIR" 1.3) |
| time with full ranks / without | $FR | | | |

Raw runs (name, wall s, peak RSS KiB): bench/out/rank-runs.txt
EOF
