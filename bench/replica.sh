#!/usr/bin/env bash
# bench/replica.sh — how much memory does a replica need to hold full ranks at the seed's
# scale, while it serves and while a new hour's full ranks load?
#
# Works on a run folder kept by bench/incremental.sh (a day of hourly snapshots with full
# ranks; made here if none is given). On a copy of its database:
#   1. starts "salesrank serve" and waits for /readyz: RSS after loading, and the peak
#      while loading (the current full ranks, and the ranks of a day before);
#   2. asks every category's top list and every product rank of category 1's top list:
#      the peak while serving them;
#   3. publishes the next hour ("rank --once --now LATEST+1h" over the run's logs, a fresh
#      ranker process beside the replica): both sets then change, as at every whole hour;
#      the replica's peak from then until it serves the new snapshot's full ranks, and its
#      RSS 5 s later.
# RSS and its peak are the kernel's (VmRSS, VmHWM in /proc/PID/status; the peak is reset
# between phases). Prints a markdown table.
#
# Usage: bench/replica.sh [RUN]     (RUN: HOURS=24 FULL_RANKS=1 KEEP_RUN=1 bench/incremental.sh's folder)
# Knobs (environment): N (rounds: the replica is restarted on a fresh copy each; default 3),
# PORT, BIN (a salesrank binary to measure, e.g. one built from another commit; default: this
# tree's), GOGC and GOMEMLIMIT (passed on to the replica).
# Only 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out/replica
mkdir -p "$OUT"
N=${N:-3}
PORT=${PORT:-18481}

log() { printf '%s\n' "replica.sh: $*" >&2; }
die() { log "$*"; exit 1; }

RUN=${1:-}
if [[ -z $RUN ]]; then
	log "no run folder given: making one (HOURS=24 FULL_RANKS=1 KEEP_RUN=1 bench/incremental.sh, ~10 min at fraction 1)"
	RUN=$(HOURS=24 MINUTES=1 FULL_RANKS=1 KEEP_RUN=1 TIMEOUT=3600 bench/incremental.sh 2>&1 | tee "$OUT/incremental.log" |
		sed -n 's/^incremental: kept the run folder.*: //p')
fi
[[ -f $RUN/salesrank.db && -d $RUN/logs ]] || die "$RUN is not a run folder of bench/incremental.sh (no salesrank.db and logs/)"

BIN=${BIN:-}
if [[ -z $BIN ]]; then
	log "building salesrank"
	timeout 600 go build -o "$OUT/salesrank" ./cmd/salesrank
	BIN=$OUT/salesrank
fi

SERVE_PID=
cleanup() {
	[[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null || true
	rm -f "$OUT"/copy.db*
}
trap cleanup EXIT

mib() { awk -v k="$1" '$1 == k":" {printf "%d", $2 / 1024}' "/proc/$SERVE_PID/status"; }
reset_peak() { echo 5 >"/proc/$SERVE_PID/clear_refs"; }
header() { curl -fsS -o /dev/null -D - "$2" | tr -d '\r' | awk -v h="$1" 'tolower($1) == tolower(h)":" {print $2}'; }

printf '| round | ready after | RSS after load | peak while loading | peak while serving | peak while a new hour loads | new hour served after | RSS 5 s later |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq "$N"); do
	cp "$RUN/salesrank.db" "$OUT/copy.db"
	[[ -f $RUN/salesrank.db-wal ]] && cp "$RUN/salesrank.db-wal" "$OUT/copy.db-wal"
	start=$(date +%s.%N)
	"$BIN" serve --db "sqlite:$OUT/copy.db" --addr "127.0.0.1:$PORT" --admin-addr "" --log-level error &
	SERVE_PID=$!
	until curl -fs "127.0.0.1:$PORT/readyz" >/dev/null; do
		kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited"
		awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN{exit !(n - s > 300)}' && die "serve not ready after 300 s"
		sleep 0.05
	done
	ready=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f s", e - s}')
	rss_load=$(mib VmRSS) peak_load=$(mib VmHWM)

	reset_peak
	base=http://127.0.0.1:$PORT/api/v1
	cats=$(curl -fsS "$base/categories?limit=10000" | grep -o '"category_id":"[0-9]*"' | grep -o '[0-9]*')
	for c in $cats; do printf 'url = "%s"\noutput = "/dev/null"\n' "$base/popular?category_id=$c"; done >"$OUT/urls"
	curl -fsS "$base/popular?category_id=1&limit=100" | grep -o '"product_id":"[0-9]*"' | grep -o '[0-9]*' |
		while read -r p; do printf 'url = "%s"\noutput = "/dev/null"\n' "$base/products/$p/ranks"; done >>"$OUT/urls"
	curl -fsS -K "$OUT/urls"
	peak_serve=$(mib VmHWM)

	end=$(header X-Window-End "$base/popular?category_id=1")
	next=$(date -u -d "$end + 1 hour" +%Y-%m-%dT%H:%M:%SZ)
	reset_peak
	t0=$(date +%s.%N)
	timeout 600 "$BIN" rank --once --logs "$RUN/logs" --db "sqlite:$OUT/copy.db" --now "$next" --log-level warn >/dev/null
	until [[ $(header X-Window-End "$base/products/1/ranks") == "$next" ]]; do
		awk -v s="$t0" -v n="$(date +%s.%N)" 'BEGIN{exit !(n - s > 900)}' && die "the new hour not served after 900 s"
		sleep 0.05
	done
	served=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f s", e - s}')
	peak_hour=$(mib VmHWM)
	sleep 5
	rss_after=$(mib VmRSS)
	printf '| %d | %s | %d MiB | %d MiB | %d MiB | **%d MiB** | %s | %d MiB |\n' "$round" "$ready" \
		"$rss_load" "$peak_load" "$peak_serve" "$peak_hour" "$served" "$rss_after"
	kill "$SERVE_PID"
	wait "$SERVE_PID" 2>/dev/null || true
	SERVE_PID=
done
