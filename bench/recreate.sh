#!/usr/bin/env bash
# Recreate benchmark (issue 14): where a recreate's time goes on this
# dockerd, then the downtime of a changed container under `serve --watch`
# (push -> running, and the window between the old container's last answer
# and the new one's first) against `docker rm -f` + `docker run` by hand,
# same run, alternating rounds. See bench/recreate.py.
# Usage: bench/recreate.sh [ROUNDS]. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

ROUNDS=${1:-20}
B=${BERTH_BENCH_DIR:-/tmp/berth-bench-recreate}
LISTEN=127.0.0.1:18097
export BERTH_LDAP_PASSWORD

services_install
services_start_dockerd
services_start_slapd
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
SERVE=
cleanup() {
    [[ -n $SERVE ]] && kill "$SERVE" 2>/dev/null || true
    docker rm -f berth-bench-hand >/dev/null 2>&1 || true
    docker ps -aq --filter label=berth.owner=alice | xargs -r docker rm -f >/dev/null 2>&1 || true
    services_stop_started
}
trap cleanup EXIT

bench_site "$B/site.yaml" "$B/repos" "$B/state" 43000 "resync_interval: 1h
"
repo=$B/repos/alice/workspace.git work=$B/work
git init -q --bare -b main "$repo"
git init -q -b main "$work"
git -C "$work" remote add origin "$repo"
printf 'version: 1\ncontainers:\n  - { name: web, image: "%s", ports: [8080] }\n' "$BERTH_TEST_IMAGE" >"$work/workspace.yaml"
git -C "$work" add -A
git -C "$work" -c user.name=Alice -c user.email=alice@berth.test commit -qm start
git -C "$work" push -q origin HEAD:main
"$R" --config "$B/site.yaml" apply >/dev/null
"$R" --config "$B/site.yaml" serve --listen "$LISTEN" --workers 2 --watch "$B/repos" >"$B/serve.log" 2>&1 &
SERVE=$!
wait_until 20 "reconciler serve" curl -sf "http://$LISTEN/healthz"
python3 bench/recreate.py "$R" "$B/site.yaml" "$work" "$BERTH_TEST_IMAGE" "$ROUNDS"
