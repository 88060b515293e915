#!/usr/bin/env bash
# Cold convergence over two Docker hosts against one (issue 14), same run:
# ACCOUNTS × 3 containers applied by `reconciler apply` onto the test
# dockerd alone, cleaned, then onto it and the second dockerd (its own
# network namespace) as two endpoints; placement spreads the accounts.
# Both daemons share this machine's 2 cores, so the gain is what a second
# dockerd's own locking and bookkeeping buys, not a second machine's CPUs.
# Usage: bench/fleet.sh [ACCOUNTS=200]. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

N=${1:-200}
B=${BERTH_BENCH_DIR:-/tmp/berth-bench-fleet}
export BERTH_LDAP_PASSWORD

services_install
services_start_dockerd
services_start_slapd
services_build_test_image
services_start_dockerd2
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
cleanup() {
    for host in "$DOCKER_HOST" "$BERTH_DOCKER2_HOST"; do
        DOCKER_HOST=$host docker ps -aq --filter label=berth.owner | xargs -r env DOCKER_HOST="$host" docker rm -f >/dev/null 2>&1 || true
        DOCKER_HOST=$host docker network ls -q --filter label=berth.owner | xargs -r env DOCKER_HOST="$host" docker network rm >/dev/null 2>&1 || true
    done
    rm -rf "$B/state"
}
trap 'cleanup; services_stop_started' EXIT
cleanup

bench_accounts "$B" "$N"
bench_site "$B/site-one.yaml" "$B/repos" "$B/state" 30000
bench_site "$B/site-two.yaml" "$B/repos" "$B/state" 30000
# The second endpoint beside the first.
sed -i "s|^    - { name: local, .*|&\n    - { name: h2, endpoint: \"$BERTH_DOCKER2_HOST\", bind_address: 0.0.0.0, host_ports: { first: 32000, last: 32999 } }|" "$B/site-two.yaml"

run() { # run SITE LABEL
    local t
    t=$(now)
    "$R" --config "$1" apply >"$B/apply-$2.log" 2>&1 || true
    RESULT=$(elapsed "$t")
    local one two
    one=$(docker ps -q --filter label=berth.owner | wc -l)
    two=$(DOCKER_HOST=$BERTH_DOCKER2_HOST docker ps -q --filter label=berth.owner | wc -l)
    log "$2: $RESULT s, running: $one on the test dockerd, $two on the second"
    [[ $((one + two)) == $((N * 3)) ]] || { log "expected $((N * 3)) running"; exit 1; }
}
log "cold apply of $((N * 3)) containers onto one dockerd"
run "$B/site-one.yaml" one
ONE=$RESULT
cleanup
log "cold apply of $((N * 3)) containers onto two dockerds"
run "$B/site-two.yaml" two
TWO=$RESULT
awk -v a="$ONE" -v b="$TWO" -v n=$((N * 3)) 'BEGIN { printf "one host %.2f s (%.2f /s), two hosts %.2f s (%.2f /s): %.2fx\n", a, n / a, b, n / b, a / b }'
