#!/usr/bin/env bash
# Benchmark of the Docker reconciler against baselines measured in the same
# run on the same dockerd (see bench/RESULTS.md for the latest numbers):
#   1. cold convergence of 200 accounts × 3 containers: `reconciler apply`
#      vs raw `docker run` at 8-way parallelism (the single-dockerd limit);
#   2. no-op `reconciler apply` vs `docker-compose up -d`, one compose
#      project per account (the shape of doco-cd / Komodo), sequential and
#      4-way parallel;
#   3. `reconciler diff` over 17 / 67 / 200 / 267 accounts (≈ 50 / 200 / 600
#      / 800 containers).
# Usage: bench/docker-reconciler.sh [ACCOUNTS=200]. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

N=${1:-200}
EXTRA=$((N / 3))          # accounts added for the 800-container diff
B=${BERTH_BENCH_DIR:-/tmp/berth-bench}
PAR=8
export BERTH_LDAP_PASSWORD

services_install
command -v docker-compose >/dev/null || apt-get install -y -qq docker-compose >/dev/null
services_start_dockerd
services_start_slapd
services_build_test_image
# BERTH_BENCH_BINARY runs another build (e.g. an older one, for a
# same-run comparison) instead of building this tree.
if [[ -n ${BERTH_BENCH_BINARY:-} ]]; then
    R=$BERTH_BENCH_BINARY
else
    cargo build -q --release -p berth-reconciler
    R=$PWD/target/release/reconciler
fi
rm -rf "$B" && mkdir -p "$B"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cleanup() {
    docker ps -aq --filter label=berth.owner | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker ps -aq --filter label=berth-bench | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter label=berth.owner | xargs -r docker network rm >/dev/null 2>&1 || true
    docker network ls -q --filter label=berth-bench | xargs -r docker network rm >/dev/null 2>&1 || true
}
trap 'cleanup; services_stop_started' EXIT
cleanup

bench_accounts "$B" $((N + EXTRA))

# One repository root per measured size, sharing the same bare repos.
site() { # site NAME ACCOUNTS
    local root=$B/root-$1
    mkdir -p "$root"
    for ((i = 0; i < $2; i++)); do ln -sfn "$B/repos/$(account $i)" "$root/$(account $i)"; done
    bench_site "$B/site-$1.yaml" "$root" "$B/state" 30000
}
site all $((N + EXTRA))
site main "$N"
site s50 $(((50 + 2) / 3))
site s200 $(((200 + 2) / 3))

declare -A RESULT
log "baseline: $((N * 3)) × docker run, $PAR in parallel (with a network per account)"
t=$(now)
for ((i = 0; i < N; i++)); do echo "$(account $i)"; done | xargs -P "$PAR" -I{} sh -c '
    docker network create --label berth-bench {} >/dev/null
    for c in a b c; do
        docker run -d --label berth-bench --name {}-$c --network {} --memory 64m --cpus 0.1 \
            -p 127.0.0.1::8080 '"$BERTH_TEST_IMAGE"' >/dev/null
    done'
RESULT[raw_cold]=$(elapsed "$t")
log "raw docker run: ${RESULT[raw_cold]} s"
cleanup

log "berth: cold apply of $N accounts"
t=$(now)
"$R" --config "$B/site-main.yaml" apply >"$B/apply.log" 2>&1 || true
RESULT[berth_cold]=$(elapsed "$t")
log "berth cold apply: ${RESULT[berth_cold]} s"
running=$(docker ps -q --filter label=berth.owner | wc -l)
[[ $running == $((N * 3)) ]] || { log "expected $((N * 3)) running, found $running"; grep -v ': create' "$B/apply.log" | head >&2; exit 1; }

noop=()
for _ in 1 2 3 4 5; do
    t=$(now)
    "$R" --config "$B/site-main.yaml" apply >/dev/null
    noop+=("$(elapsed "$t")")
done
RESULT[berth_noop]=$(printf '%s\n' "${noop[@]}" | median)
log "berth no-op apply (median of 5): ${RESULT[berth_noop]} s"

log "berth: adding $EXTRA accounts for the 800-container diff"
"$R" --config "$B/site-all.yaml" apply >/dev/null
for s in s50 s200 main all; do
    runs=()
    for _ in 1 2 3 4 5; do
        t=$(now)
        "$R" --config "$B/site-$s.yaml" diff >/dev/null
        runs+=("$(elapsed "$t")")
    done
    RESULT[diff_$s]=$(printf '%s\n' "${runs[@]}" | median)
    log "diff $s (median of 5): ${RESULT[diff_$s]} s"
done
"$R" --config "$B/site-all.yaml" diff >/dev/null && log "diff: no changes after convergence"
cleanup

log "docker-compose: $N projects × 3 services (cold, 4 in parallel)"
for ((i = 0; i < N; i++)); do
    a=$(account $i)
    mkdir -p "$B/compose/$a"
    {
        echo "version: '2.4'"
        echo "services:"
        for c in a b c; do
            printf '  %s:\n    image: %s\n    mem_limit: 64m\n    cpus: 0.1\n    ports: ["127.0.0.1::8080"]\n    labels: [berth-bench]\n' "$c" "$BERTH_TEST_IMAGE"
        done
    } >"$B/compose/$a/docker-compose.yml"
done
compose_all() { # PARALLELISM
    for ((i = 0; i < N; i++)); do echo "$B/compose/$(account $i)"; done |
        xargs -P "$1" -I{} sh -c 'cd {} && docker-compose up -d >/dev/null 2>&1'
}
t=$(now)
compose_all 4
RESULT[compose_cold4]=$(elapsed "$t")
t=$(now)
compose_all 1
RESULT[compose_noop1]=$(elapsed "$t")
t=$(now)
compose_all 4
RESULT[compose_noop4]=$(elapsed "$t")
log "compose cold (4 parallel) ${RESULT[compose_cold4]} s, no-op sequential ${RESULT[compose_noop1]} s, no-op 4 parallel ${RESULT[compose_noop4]} s"
# `docker-compose down` stops each httpd with a 10 s grace (busybox as PID 1
# ignores SIGTERM): half an hour for 600 containers. Remove them instead.
docker ps -aq --filter label=com.docker.compose.project | xargs -r docker rm -f >/dev/null 2>&1 || true
docker network ls -q --filter label=com.docker.compose.project | xargs -r docker network rm >/dev/null 2>&1 || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<TABLE | tee "$B/results.md"

Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; dockerd $(docker version -f '{{.Server.Version}}') (API $(docker version -f '{{.Server.APIVersion}}')); $((N * 3)) containers in $N accounts.

| measurement | Berth | baseline | ratio |
|---|---|---|---|
| cold convergence, $((N * 3)) containers | ${RESULT[berth_cold]} s ($(ratio $((N * 3)) "${RESULT[berth_cold]}") /s) | raw docker run ×$PAR: ${RESULT[raw_cold]} s ($(ratio $((N * 3)) "${RESULT[raw_cold]}") /s) | $(ratio "${RESULT[raw_cold]}" "${RESULT[berth_cold]}")× the raw rate |
| no-op, $N accounts | ${RESULT[berth_noop]} s | compose, sequential: ${RESULT[compose_noop1]} s | $(ratio "${RESULT[compose_noop1]}" "${RESULT[berth_noop]}")× faster |
| no-op, $N accounts | ${RESULT[berth_noop]} s | compose, 4 parallel: ${RESULT[compose_noop4]} s | $(ratio "${RESULT[compose_noop4]}" "${RESULT[berth_noop]}")× faster |
| diff, ≈50 containers (17 accounts) | ${RESULT[diff_s50]} s | | |
| diff, ≈200 containers (67 accounts) | ${RESULT[diff_s200]} s | | |
| diff, $((N * 3)) containers ($N accounts) | ${RESULT[diff_main]} s | target ≤ 1 s | |
| diff, $(((N + EXTRA) * 3)) containers ($((N + EXTRA)) accounts) | ${RESULT[diff_all]} s | | |

compose cold start (4 parallel, for reference): ${RESULT[compose_cold4]} s.
TABLE
