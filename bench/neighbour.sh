#!/usr/bin/env bash
# Noisy-neighbour benchmark (issue 21), all on loopback, one run, release
# build: N victim accounts (default 50, three containers each) push at once,
# three rounds, and their push → running latency is taken from dockerd's
# start events; `serve`'s peak RSS (VmHWM) and CPU are sampled. Twice, each
# with a fresh `serve`: quiet, then while one attacker does everything at
# once: a push every second of a new 10^7-path git tree bomb as a build
# context, a container printing without newlines followed in 20 log tabs,
# and 20 terminals each running a printing loop (bench/neighbour.py).
# Targets: attacked p99 ≤ 1.5 × quiet p99, attacked peak RSS < 150 MiB.
# Usage: bench/neighbour.sh [N]. Cleans up after itself. A victims' round
# that does not finish within 180 s ends the run (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

N=${1:-50}
B=${BERTH_BENCH_DIR:-/tmp/berth-bench-neighbour}
LISTEN=127.0.0.1:18100
export BERTH_LDAP_PASSWORD BERTH_WEBHOOK_SECRET=bench-secret

services_install
services_start_dockerd
services_start_slapd
services_start_registry
services_build_test_image
# BERTH_BENCH_RECONCILER: another build to measure (an earlier release).
if [[ -n ${BERTH_BENCH_RECONCILER:-} ]]; then
    R=$BERTH_BENCH_RECONCILER
else
    cargo build -q --release -p berth-reconciler
    R=$PWD/target/release/reconciler
fi
rm -rf "$B" && mkdir -p "$B/repos" "$B/state" "$B/work"
SERVE_PID= BG=()
cleanup() {
    [[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null || true
    for p in "${BG[@]}"; do kill "$p" 2>/dev/null || true; done
    docker ps -aq --filter label=berth.owner | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter label=berth.owner | xargs -r docker network rm >/dev/null 2>&1 || true
    services_stop_started
}
trap cleanup EXIT

bench_site "$B/site.yaml" "$B/repos" "$B/state" 43000 "gitlab:
  webhook_secret_env: BERTH_WEBHOOK_SECRET
registry: { host: $BERTH_REGISTRY, insecure: true }
resync_interval: 1h
"

# Victims bench0000… and the attacker after them, whose workspace is one
# container that prints without newlines at 0.2 CPU.
bench_accounts "$B" $((N + 1))
M=$(account "$N")
services_set_password "$M" attacker-pw
noisy="while true; do /bin/busybox head -c 20000 /dev/zero | /bin/busybox tr '\\\\0' x; /bin/busybox sleep 0.02; done"
printf 'version: 1\ncontainers:\n  - { name: noisy, image: %s, command: ["/bin/busybox", "sh", "-c", "%s"], resources: { cpus: 0.2, memory: 64Mi } }\n' \
    "$BERTH_TEST_IMAGE" "$noisy" >"$B/work/$M/workspace.yaml"
git -C "$B/work/$M" add -A
git -C "$B/work/$M" -c user.name=B -c user.email="$M@berth.test" commit -qm noisy
git -C "$B/work/$M" push -q "$B/repos/$M/workspace.git" HEAD:main

start_serve() { # start_serve LABEL
    "$R" --config "$B/site.yaml" serve --listen "$LISTEN" --workers 8 >"$B/$1-serve.log" 2>&1 &
    SERVE_PID=$!
    wait_until 20 "reconciler serve" curl -sf "http://$LISTEN/healthz"
}
stop_serve() {
    kill "$SERVE_PID" && wait "$SERVE_PID" || true
    SERVE_PID=
}

# With a webhook secret, revisions are accepted from authenticated pushes
# only (`apply` leaves them waiting): a first, unmeasured round of pushes
# creates every container, so both runs below measure recreates alike.
log "warm-up: $((N * 3 + 1)) containers created by pushes"
start_serve warm
sha=$(git -C "$B/work/$M" rev-parse HEAD)
curl -sf -o /dev/null -X POST "http://$LISTEN/hooks/gitlab" -H "X-Gitlab-Token: $BERTH_WEBHOOK_SECRET" \
    -H "X-Gitlab-Event: Push Hook" -H "X-Gitlab-Event-UUID: warm-$M" --data-binary \
    '{"object_kind":"push","after":"'"$sha"'","ref":"refs/heads/main","checkout_sha":"'"$sha"'","user_id":1,"user_username":"'"$M"'","project_id":1,"project":{"path_with_namespace":"'"$M"'/workspace","default_branch":"main"}}'
python3 bench/neighbour.py victims --listen "$LISTEN" --dir "$B" --accounts "$N" --rounds 1 \
    --image "$BERTH_TEST_IMAGE" --tag warm --out "$B/warm-latency.txt"
wait_until 60 "the attacker's noisy container" bash -c "docker inspect -f '{{.State.Running}}' $M--noisy | grep -q true"
stop_serve

# run LABEL ATTACK: one measured run with a fresh serve.
run() {
    local label=$1 attack=$2 stop=$B/$1.stop
    rm -f "$stop"
    start_serve "$label"
    python3 bench/neighbour.py sample --pid "$SERVE_PID" --stop-file "$stop" --out "$B/$label-serve.json" &
    BG+=($!)
    local sampler=$!
    if ((attack)); then
        python3 bench/neighbour.py attacker --listen "$LISTEN" --account "$M" --password attacker-pw \
            --container "$M--noisy" --work "$B/work/$M" --repo "$B/repos/$M/workspace.git" \
            --image "$BERTH_TEST_IMAGE" --registry "$BERTH_REGISTRY" --stop-file "$stop" \
            --out "$B/$label-attacker.json" &
        BG+=($!)
        local attacker=$!
        # A warm-up: the attack is in full swing before the victims push.
        sleep 15
    fi
    log "$label: $N accounts push, 3 rounds"
    python3 bench/neighbour.py victims --listen "$LISTEN" --dir "$B" --accounts "$N" --rounds 3 \
        --image "$BERTH_TEST_IMAGE" --tag "$label" --out "$B/$label-latency.txt"
    touch "$stop"
    ((attack)) && wait "$attacker"
    wait "$sampler"
    stop_serve
}

pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p + 0.5); if (i < 1) i = 1; print v[i] }'; }
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

run quiet 0
run attacked 1

Q50=$(pct "$B/quiet-latency.txt" 0.50) Q99=$(pct "$B/quiet-latency.txt" 0.99)
A50=$(pct "$B/attacked-latency.txt" 0.50) A99=$(pct "$B/attacked-latency.txt" 0.99)
QRSS=$(($(field "$B/quiet-serve.json" peak_rss_kib) / 1024)) ARSS=$(($(field "$B/attacked-serve.json" peak_rss_kib) / 1024))
qcpu() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"{d['cpu_s']:.1f} s over {d['wall_s']:.0f} s (peak {d['peak_cores']:.2f} cores)\")" "$1"; }
RATIO=$(awk -v a="$A99" -v q="$Q99" 'BEGIN { printf "%.2f", a / q }')

cat <<TABLE | tee "$B/results.md"

Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; serve, dockerd, slapd, the attacker and the victims' driver share it.
$N victim accounts × 3 rounds = $(wc -l <"$B/quiet-latency.txt") pushes per run, each push posted for all accounts at once.
Attacker: $(cat "$B/attacked-attacker.json")

| measure | quiet | attacked | target |
|---|---|---|---|
| push → running p50 | $Q50 ms | $A50 ms | |
| push → running p99 | $Q99 ms | $A99 ms | attacked ≤ 1.5 × quiet: **${RATIO}×** |
| serve peak RSS (VmHWM) | $QRSS MiB | $ARSS MiB | < 150 MiB |
| serve CPU | $(qcpu "$B/quiet-serve.json") | $(qcpu "$B/attacked-serve.json") | |
TABLE
