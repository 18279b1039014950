#!/usr/bin/env bash
# deploy/rolling-restart.sh — restart the salesrank-serve@PORT replicas one at a time, with
# no failed request (a new binary, a changed environment file).
#
#   sudo deploy/rolling-restart.sh            # every enabled salesrank-serve@* unit
#   sudo deploy/rolling-restart.sh 8081 8082  # these ports
#
# For each replica: systemctl restart (SIGTERM: /readyz answers 503 for --drain while it
# still serves, then it finishes requests in flight and exits 0; systemd starts it again),
# wait until /readyz answers 200 (snapshot loaded), then wait nginx's fail_timeout so that
# nginx, which took the replica out when its listener closed, sends it requests again
# before the next one goes down. Stops at the first replica that does not come back.
# tests/ha/TestRollingRestart runs the same procedure under load.
set -euo pipefail

FAIL_TIMEOUT=${FAIL_TIMEOUT:-2}   # seconds; deploy/nginx.conf's fail_timeout
READY_TIMEOUT=${READY_TIMEOUT:-60}

ports=("$@")
if ((${#ports[@]} == 0)); then
	mapfile -t ports < <(systemctl list-units --plain --no-legend --state=active 'salesrank-serve@*.service' |
		sed -n 's/^salesrank-serve@\([0-9]*\)\.service.*/\1/p')
fi
((${#ports[@]})) || { echo "rolling-restart: no salesrank-serve@PORT unit is running" >&2; exit 1; }

for port in "${ports[@]}"; do
	echo "rolling-restart: restarting salesrank-serve@$port"
	systemctl restart "salesrank-serve@$port.service"
	for ((i = 0; ; i++)); do
		if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz"; then
			break
		fi
		if ((i >= READY_TIMEOUT * 10)); then
			echo "rolling-restart: salesrank-serve@$port not ready after ${READY_TIMEOUT}s; stopping here" >&2
			systemctl status --no-pager "salesrank-serve@$port.service" >&2 || true
			exit 1
		fi
		sleep 0.1
	done
	echo "rolling-restart: salesrank-serve@$port ready; waiting ${FAIL_TIMEOUT}s for nginx to take it back"
	sleep "$FAIL_TIMEOUT"
done
echo "rolling-restart: done (${#ports[@]} replicas)"
