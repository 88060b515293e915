#!/usr/bin/env bash
# Benchmark of the student console (issue 13), on loopback, one run: 200
# logged-in sessions polling their workspace page with wrk (2 threads, 200
# connections, 10 s): pages/s, p50/p99 latency, RSS of `serve`, and the
# Docker API requests made meanwhile (counted by a proxy in front of
# dockerd: the page must read the in-memory read model, never Docker).
# Usage: bench/console.sh. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

B=${BERTH_BENCH_DIR:-/tmp/berth-bench-console}
LISTEN=127.0.0.1:18095
SESSIONS=200
export BERTH_LDAP_PASSWORD

services_install
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
services_start_dockerd
services_start_slapd
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    docker ps -aq --filter label=berth.owner=alice | xargs -r docker rm -f >/dev/null 2>&1 || true
    services_stop_started
}
trap cleanup EXIT

services_set_password alice alice-demo

# Every Docker call of serve goes through the counting proxy.
REAL=${DOCKER_HOST#unix://}
python3 bench/docker-count-proxy.py "$B/docker.sock" "$REAL" "$B/docker-calls" &
PIDS+=($!)
wait_until 10 "the counting proxy" test -S "$B/docker.sock"
bench_site "$B/site.yaml" "$B/repos" "$B/state" 42000 "resync_interval: 5m
login: { account_failures: 1000, address_failures: 100000 }
"
repo=$B/repos/alice/workspace.git work=$B/work
git init -q --bare -b main "$repo"
git init -q -b main "$work"
git -C "$work" remote add origin "$repo"
cat >"$work/workspace.yaml" <<YAML
version: 1
containers:
  - { name: web, image: "$BERTH_TEST_IMAGE", ports: [8080] }
  - { name: worker, image: "$BERTH_TEST_IMAGE" }
YAML
git -C "$work" add -A
git -C "$work" -c user.name=Alice -c user.email=alice@berth.test commit -qm workspace
git -C "$work" push -q origin HEAD:main
DOCKER_HOST=unix://$B/docker.sock "$R" --config "$B/site.yaml" apply >/dev/null

DOCKER_HOST=unix://$B/docker.sock "$R" --config "$B/site.yaml" serve --listen "$LISTEN" --workers 2 >"$B/serve.log" 2>&1 &
SERVE=$!
PIDS+=("$SERVE")
wait_until 20 "reconciler serve" curl -sf "http://$LISTEN/healthz"
log "logging in $SESSIONS sessions"
: >"$B/cookies"
for _ in $(seq 1 "$SESSIONS"); do
    curl -s -o /dev/null -D - -d 'username=alice&password=alice-demo' "http://$LISTEN/login" |
        sed -n 's/^set-cookie: berth_session=\([0-9a-f]*\);.*/\1/p' >>"$B/cookies"
done
[[ $(wc -l <"$B/cookies") -eq $SESSIONS ]] || { echo "logins failed"; exit 1; }
curl -sf -b "berth_session=$(head -1 "$B/cookies")" "http://$LISTEN/" | grep -q alice--web || { echo "the page lacks alice--web"; exit 1; }

rss() { awk '/VmRSS/ { print $2 }' "/proc/$SERVE/status"; }
RSS0=$(rss)
CALLS0=$(cat "$B/docker-calls")
log "wrk: $SESSIONS sessions, 2 threads, 10 s"
COOKIES=$B/cookies wrk -t2 -c"$SESSIONS" -d10s --latency -s bench/console.lua "http://$LISTEN" >"$B/wrk.txt"
CALLS1=$(cat "$B/docker-calls")
RSS1=$(rss)
RPS=$(awk '/Requests\/sec/ { print $2 }' "$B/wrk.txt")
P50=$(awk '$1 == "50%" { print $2 }' "$B/wrk.txt")
P99=$(awk '$1 == "99%" { print $2 }' "$B/wrk.txt")
NON2XX=$(awk '/Non-2xx/ { print $5 }' "$B/wrk.txt")
log "pages/s $RPS, p50 $P50, p99 $P99, non-2xx ${NON2XX:-0}, RSS $RSS0 → $RSS1 KiB, Docker API requests during the run: $((CALLS1 - CALLS0)) in 10 s ($CALLS0 before it: apply and start-up, so the proxy does count)"
