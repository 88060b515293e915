#!/usr/bin/env bash
# Benchmark of issue 12, all on loopback, one run:
#   1. registry tokens issued per second by `reconciler serve` for a student
#      logging in with the LDAP password: with the bind cache (the default,
#      one bind a minute) and without it (`bind_cache: 0s`, one LDAP bind
#      per token); wrk, 2 threads, 16 connections, 10 s each;
#   2. a small image built through Berth (`apply` of a revision whose only
#      change is the build's context: tar from git, Dockerfile check, build,
#      push, pin) against `docker build` + `docker push` of the same context
#      by hand, on the same dockerd and registry; 5 rounds each, alternating,
#      every round with new content so neither side hits the build cache.
# Usage: bench/registry.sh. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

B=${BERTH_BENCH_DIR:-/tmp/berth-bench-registry}
LISTEN=127.0.0.1:18090
REG=127.0.0.1:18091
export BERTH_LDAP_PASSWORD BERTH_REGISTRY_USER=berth-bot BERTH_REGISTRY_PASSWORD=bench-registry-secret

services_install
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
services_start_dockerd
services_start_slapd
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos/alice" "$B/state" "$B/registry" "$B/docker"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    services_stop_started
}
trap cleanup EXIT

services_set_password alice alice-demo

site() {
    bench_site "$B/site.yaml" "$B/repos" "$B/state" 41000 "registry:
  host: $REG
  insecure: true
  username_env: BERTH_REGISTRY_USER
  password_env: BERTH_REGISTRY_PASSWORD
  token: {}
login: { bind_cache: $1, account_failures: 1000, address_failures: 1000000 }
public_url: http://$LISTEN
resync_interval: 1h
"
}
site 1m
{
    printf 'version: 0.1\nlog: { level: error }\nstorage:\n  filesystem: { rootdirectory: %s }\n  delete: { enabled: true }\nhttp:\n  addr: %s\n' "$B/registry/data" "$REG"
    "$R" --config "$B/site.yaml" registry-config
} >"$B/registry/config.yml"
docker-registry serve "$B/registry/config.yml" >"$B/registry/log" 2>&1 &
PIDS+=($!)
wait_until 20 "the registry" bash -c "curl -s -o /dev/null -w '%{http_code}' http://$REG/v2/ | grep -q 401"

start_serve() {
    "$R" --config "$B/site.yaml" serve --listen "$LISTEN" --workers 2 >"$B/serve.log" 2>&1 &
    SERVE=$!
    PIDS+=("$SERVE")
    wait_until 20 "reconciler serve" curl -sf "http://$LISTEN/healthz"
}
AUTH="Authorization: Basic $(printf 'alice:alice-demo' | base64)"
TOKEN_URL="http://$LISTEN/registry/token?service=$REG&scope=repository%3Aalice%2Ftools%3Apull%2Cpush"
tokens() {
    curl -sf -H "$AUTH" "$TOKEN_URL" | grep -q '"token"' || { echo "token request failed"; exit 1; }
    wrk -t2 -c16 -d10s -H "$AUTH" "$TOKEN_URL" >"$B/wrk-$1.txt"
    awk '/Requests\/sec/ { print $2 }' "$B/wrk-$1.txt"
}

log "1. tokens/s with the bind cache"
start_serve
CACHED=$(tokens cached)
kill "$SERVE"; wait "$SERVE" 2>/dev/null || true
log "1. tokens/s with an LDAP bind per token"
site 0s
start_serve
UNCACHED=$(tokens uncached)
log "tokens/s: cached $CACHED, one bind each $UNCACHED"

log "2. a small image: Berth vs docker build + docker push"
echo alice-demo | docker --config "$B/docker" login "$REG" -u alice --password-stdin >/dev/null 2>&1
docker tag "$BERTH_TEST_IMAGE" "$REG/alice/base:1"
docker --config "$B/docker" push -q "$REG/alice/base:1" >/dev/null
repo=$B/repos/alice/workspace.git work=$B/work
git init -q --bare -b main "$repo"
git init -q -b main "$work"
git -C "$work" remote add origin "$repo"
mkdir -p "$work/ctx/files"
cat >"$work/workspace.yaml" <<YAML
version: 1
images:
  build:
    - { name: tools, context: ctx }
YAML
# A context of a few hundred small files, like a student's tools directory.
for i in $(seq 1 300); do head -c 2048 /dev/urandom | base64 >"$work/ctx/files/f$i.txt"; done
dockerfile() {
    printf 'FROM %s/alice/base:1\nCOPY files /files\nRUN ["/bin/busybox", "sh", "-c", "echo %s > /www/round.txt"]\n' "$REG" "$1" >"$work/ctx/Dockerfile"
}
ms() { echo $(($(date +%s%N) / 1000000)); }
berth=() hand=()
for round in 1 2 3 4 5; do
    dockerfile "berth-$round-$RANDOM"
    git -C "$work" add -A
    git -C "$work" -c user.name=Alice -c user.email=alice@berth.test commit -qm "round $round"
    git -C "$work" push -q origin HEAD:main
    t0=$(ms)
    "$R" --config "$B/site.yaml" apply --account alice >/dev/null
    berth+=($(($(ms) - t0)))

    dockerfile "hand-$round-$RANDOM"
    t0=$(ms)
    DOCKER_BUILDKIT=0 docker build -q -t "$REG/alice/hand:$round" "$work/ctx" >/dev/null
    docker --config "$B/docker" push -q "$REG/alice/hand:$round" >/dev/null
    hand+=($(($(ms) - t0)))
done
"$R" --config "$B/site.yaml" audit --account alice | grep -c image-built >"$B/built.txt"
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
BM=$(median "${berth[@]}") HM=$(median "${hand[@]}")
log "build+push ms, Berth: ${berth[*]} (median $BM); by hand: ${hand[*]} (median $HM); images built by Berth: $(cat "$B/built.txt")"
awk -v b="$BM" -v h="$HM" 'BEGIN { printf "Berth / by hand: %.2fx\n", b / h }'
