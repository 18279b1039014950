#!/usr/bin/env bash
# bench/incremental.sh — how fast does the incremental ranker keep a week of sales current at
# the seed's scale (10 M products, 1,000 categories, ≈ 233 M lines a week)?
#
# Builds bench/incremental (a program inside the main module that drives ranker.Ranker
# directly), which generates once (cached in bench/out/incremental/) hour-partitioned logs
# with internal/loggen — the week before a fixed cutoff T, the hours after it, and one folder
# per minute after those — and, in a temporary folder with a fileblob bucket and SQLite:
#   1. the first run over the week (empty db);
#   2. HOURS hourly steps with the same Ranker: land the next hour, Run(T + k·1h);
#   4. a fresh process rebuilds the window from the stored partial sums at the same cutoff;
#   3. a ranker refreshed every minute (minute buckets, its own db): its first run, then
#      MINUTES steps that each land one minute and Run(cutoff + k·1m);
# reporting wall time, the ranker's own breakdown, peak RSS (VmHWM, reset before each step),
# partial rows/bytes and the database size as a markdown table, with the targets of issue 3.
# Below --fraction 0.1 it also checks every snapshot against a from-scratch count.
#
# Usage: bench/incremental.sh                     (the seed's scale: ~11 GB of logs, ~10 min)
#        FRACTION=0.02 bench/incremental.sh       (a quick run, with the extrapolation printed)
# Knobs (environment): FRACTION, HOURS, MINUTES, PARTS, SEED, CUTOFF, TOP, PROFILE=1 (CPU
# profiles of each step in bench/out/incremental/prof-*.pprof), KEEP_DATA=0 (delete the
# generated logs afterwards), TIMEOUT (seconds for the whole run), FULL_RANKS=1 (the rankers
# also publish full ranks, as `rank --full-ranks`; RETAIN then defaults to rank's 720h),
# RETAIN (how long every whole hour's snapshot is kept), KEEP_RUN=1 (keep the run folder
# with its databases, e.g. to serve one), LOG_LEVEL=debug (the rankers' logs on stderr, with the
# time each phase of a step begins).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
OUT=$ROOT/bench/out/incremental
mkdir -p "$OUT"

FRACTION=${FRACTION:-1.0}
HOURS=${HOURS:-3}
MINUTES=${MINUTES:-5}
PARTS=${PARTS:-1}
SEED=${SEED:-1}
CUTOFF=${CUTOFF:-2026-11-08T00:00:00Z}
TOP=${TOP:-100}
PROFILE=${PROFILE:-0}
KEEP_DATA=${KEEP_DATA:-1}
TIMEOUT=${TIMEOUT:-2400}
FULL_RANKS=${FULL_RANKS:-0}
if [[ $FULL_RANKS == 1 ]]; then RETAIN=${RETAIN:-720h}; else RETAIN=${RETAIN:-0s}; fi
KEEP_RUN=${KEEP_RUN:-0}
LOG_LEVEL=${LOG_LEVEL:-warn}

log() { printf '%s\n' "incremental.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# Room: the week takes ≈ 11 GB × FRACTION, the two databases ≈ 2 GB × FRACTION.
NEED_KB=$(awk -v f="$FRACTION" 'BEGIN{printf "%d", f * 14 * 1024 * 1024}')
AVAIL_KB=$(df -Pk "$OUT" | awk 'NR==2 {print $4}')
FTAG=$(awk -v f="$FRACTION" 'BEGIN{printf "%g", f}') # as the program names its cache folders
if ! ls -d "$OUT"/week-*-f"$FTAG"-seed"$SEED"-parts"$PARTS" >/dev/null 2>&1 && ((AVAIL_KB < NEED_KB)); then
	die "need ~$((NEED_KB / 1024 / 1024)) GB free under $OUT for FRACTION=$FRACTION, have $((AVAIL_KB / 1024 / 1024)) GB"
fi

log "building bench/incremental"
timeout 600 go build -o "$OUT/incremental" ./bench/incremental

ARGS=(--fraction "$FRACTION" --hours "$HOURS" --minutes "$MINUTES" --parts "$PARTS" --seed "$SEED"
	--cutoff "$CUTOFF" --top "$TOP" --out "$OUT")
[[ $PROFILE == 1 ]] && ARGS+=(--cpuprofile "$OUT/prof-f$FTAG")
[[ $KEEP_DATA == 1 ]] || ARGS+=(--keep-data=false)
[[ $FULL_RANKS == 1 ]] && ARGS+=(--full-ranks)
[[ $KEEP_RUN == 1 ]] && ARGS+=(--keep-run)
ARGS+=(--retain "$RETAIN" --log-level "$LOG_LEVEL")
rm -f "$OUT"/prof-f"$FTAG"-*.pprof
REPORT=$OUT/report-f$FTAG.md
[[ $FULL_RANKS == 1 ]] && REPORT=$OUT/report-f$FTAG-full.md
log "running: incremental ${ARGS[*]} (report: $REPORT)"
{
	printf 'Working tree: %s' "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
		printf ' + uncommitted changes to %s' "$(git status --porcelain --untracked-files=no | awk '{print $2}' | paste -sd ' ')"
	fi
	printf '\n'
	timeout "$TIMEOUT" "$OUT/incremental" "${ARGS[@]}"
} | tee "$REPORT"
