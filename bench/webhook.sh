#!/usr/bin/env bash
# Benchmark of `reconciler serve` (issue 4), all on loopback, one run:
#   1. webhook ingress: wrk posting valid, authenticated push events with
#      fresh delivery ids over 200 accounts, 10 s; requests/s and RSS;
#   2. a flood of 1 000 000 such events: peak RSS and reconciles run;
#   3. push → container running latency for one account with a cached
#      image, 100 pushes, p50 and p99.
# Usage: bench/webhook.sh. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

B=${BERTH_BENCH_DIR:-/tmp/berth-bench-webhook}
LISTEN=127.0.0.1:18080
export BERTH_LDAP_PASSWORD BERTH_WEBHOOK_SECRET=bench-secret BERTH_ACCOUNTS=200

services_install
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
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
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
SERVE_PID=
cleanup() {
    [[ -n $SERVE_PID ]] && kill "$SERVE_PID" 2>/dev/null || true
    docker ps -aq --filter label=berth.owner | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter label=berth.owner | xargs -r docker network rm >/dev/null 2>&1 || true
    services_stop_started
}
trap cleanup EXIT

bench_site "$B/site.yaml" "$B/repos" "$B/state" 40000 "gitlab:
  webhook_secret_env: BERTH_WEBHOOK_SECRET
resync_interval: 1h
"

start_serve() {
    "$R" --config "$B/site.yaml" serve --listen "$LISTEN" --workers 8 >"$B/serve.log" 2>&1 &
    SERVE_PID=$!
    wait_until 20 "reconciler serve" curl -sf "http://$LISTEN/healthz"
}
rss() { awk '/VmRSS/ { print $2 }' "/proc/$SERVE_PID/status"; }
metric() { curl -s "http://$LISTEN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

start_serve
RSS0=$(rss)
log "1. ingress: wrk, 2 threads, 64 connections, 10 s"
wrk -t2 -c64 -d10s -s bench/push.lua "http://$LISTEN" >"$B/wrk1.txt"
RPS=$(awk '/Requests\/sec/ { print $2 }' "$B/wrk1.txt")
NON2XX=$(awk '/Non-2xx/ { print $5 }' "$B/wrk1.txt")
RSS1=$(rss)
log "ingress: $RPS req/s, RSS ${RSS0} → ${RSS1} KiB, non-2xx: ${NON2XX:-0}"

log "2. flood of 1 000 000 events over $BERTH_ACCOUNTS accounts"
peak=$RSS1
before=$(metric 'berth_webhook_events_total{outcome="queued"}')
recon0=$(metric berth_reconcile_duration_seconds_count)
t=$(date +%s.%N)
wrk -t2 -c64 -d300s -s bench/push.lua "http://$LISTEN" >"$B/wrk2.txt" &
WRK=$!
while kill -0 "$WRK" 2>/dev/null; do
    sleep 1
    r=$(rss); ((r > peak)) && peak=$r
    q=$(metric 'berth_webhook_events_total{outcome="queued"}')
    if (($(printf "%.0f" "${q:-0}") - $(printf "%.0f" "${before:-0}") >= 1000000)); then kill "$WRK" 2>/dev/null || true; fi
done
wait "$WRK" 2>/dev/null || true
FLOOD_S=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
EVENTS=$(($(printf '%.0f' "$(metric 'berth_webhook_events_total{outcome="queued"}')") - $(printf '%.0f' "$before")))
RECONCILES=$(($(printf '%.0f' "$(metric berth_reconcile_duration_seconds_count)") - $(printf '%.0f' "$recon0")))
DEPTH=$(metric berth_queue_depth)
log "flood: $EVENTS events in $FLOOD_S s, peak RSS $peak KiB, $RECONCILES reconciles, queue depth after: $DEPTH"

log "3. push → running latency, 100 pushes"
a=bench0000
# The flood above named bench0000…0199 before any existed in the directory:
# each lookup found nobody. Berth believes that for 10 s only (before, for
# the site's whole cache_ttl, so the first push below was refused and the
# wait never ended), so the first push is retried until it is accepted.
printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: B\nmail: %s@berth.test\n\n' "$a" "$BERTH_LDAP_BASE" "$a" "$a" "$a" |
    ldapadd -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >"$B/ldapadd.log" 2>&1 ||
    grep -q "Already exists" "$B/ldapadd.log" || { cat "$B/ldapadd.log" >&2; exit 1; }
printf 'dn: cn=students,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=%s,ou=people,%s\n' "$BERTH_LDAP_BASE" "$a" "$BERTH_LDAP_BASE" |
    ldapmodify -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >"$B/ldapmodify.log" 2>&1 ||
    grep -q "Type or value exists" "$B/ldapmodify.log" || { cat "$B/ldapmodify.log" >&2; exit 1; }
repo=$B/repos/$a/workspace.git work=$B/work
git init -q --bare -b main "$repo"
git init -q -b main "$work"
: >"$B/latency.txt"
running_with() { # running_with N: the container runs with N=$1
    local s
    s=$(docker inspect -f '{{.State.Running}} {{.Config.Env}}' "$a--web" 2>/dev/null) || return 1
    [[ $s == "true "*"N=$1 "* || $s == "true "*"N=$1]" ]]
}
push_hook() { # push_hook SHA UUID
    local body='{"object_kind":"push","after":"'$1'","ref":"refs/heads/main","checkout_sha":"'$1'","user_id":1,"user_username":"'$a'","project_id":1,"project":{"path_with_namespace":"'$a'/workspace","default_branch":"main"}}'
    curl -s -o /dev/null -X POST "http://$LISTEN/hooks/gitlab" -H "X-Gitlab-Token: $BERTH_WEBHOOK_SECRET" \
        -H "X-Gitlab-Event: Push Hook" -H "X-Gitlab-Event-UUID: $2" --data-binary "$body"
}
for i in $(seq 0 100); do
    printf 'version: 1\ncontainers:\n  - { name: web, image: %s, env: { N: "%s" }, resources: { cpus: 0.1, memory: 32Mi } }\n' "$BERTH_TEST_IMAGE" "$i" >"$work/workspace.yaml"
    git -C "$work" add -A
    git -C "$work" -c user.name=B -c user.email="$a@berth.test" commit -qm "n=$i"
    git -C "$work" push -q "$repo" HEAD:main
    sha=$(git -C "$work" rev-parse HEAD)
    t0=$(date +%s%N)
    push_hook "$sha" "lat-$i"
    deadline=$((SECONDS + 30)) retry=$((SECONDS + 2))
    until running_with "$i"; do
        if ((SECONDS >= deadline)); then
            log "push $i of $a not running after 30 s; see $B/serve.log"
            exit 1
        fi
        # Only the first push may meet a directory answer from the flood.
        if ((i == 0 && SECONDS >= retry)); then
            push_hook "$sha" "lat-$i-$SECONDS"
            retry=$((SECONDS + 2))
        fi
        sleep 0.005
    done
    # The first push creates network and container; it is not a "cached" push.
    ((i > 0)) && echo $((($(date +%s%N) - t0) / 1000000)) >>"$B/latency.txt"
done
P50=$(sort -n "$B/latency.txt" | awk '{ v[NR] = $1 } END { print v[int(NR * 0.50 + 0.5)] }')
P99=$(sort -n "$B/latency.txt" | awk '{ v[NR] = $1 } END { print v[int(NR * 0.99 + 0.5)] }')

log "3b. baseline: the same recreate by hand, docker rm -f + docker run, 30 times"
docker network create --label berth-bench latency-net >/dev/null
docker run -d --name latency-raw --network latency-net "$BERTH_TEST_IMAGE" >/dev/null
: >"$B/raw.txt"
for i in $(seq 1 30); do
    t0=$(date +%s%N)
    docker rm -f latency-raw >/dev/null
    docker run -d --name latency-raw --network latency-net --memory 32m -e "N=$i" "$BERTH_TEST_IMAGE" >/dev/null
    echo $((($(date +%s%N) - t0) / 1000000)) >>"$B/raw.txt"
done
docker rm -f latency-raw >/dev/null && docker network rm latency-net >/dev/null
RAW50=$(sort -n "$B/raw.txt" | awk '{ v[NR] = $1 } END { print v[int(NR * 0.50 + 0.5)] }')
log "raw recreate p50 $RAW50 ms"
log "latency over $(wc -l <"$B/latency.txt") pushes: p50 $P50 ms, p99 $P99 ms"

cat <<TABLE | tee "$B/results.md"

Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; wrk and the server share the machine.

| measurement | result | target |
|---|---|---|
| webhook ingress (wrk -t2 -c64, 10 s, valid authenticated pushes, 200 accounts) | $RPS req/s, RSS $RSS0 → $RSS1 KiB | ≥ 10 000 req/s, flat RSS |
| flood of $EVENTS events over 200 accounts ($FLOOD_S s) | peak RSS $peak KiB; $RECONCILES reconciles; queue depth after: $DEPTH | ≤ 1 in flight per account, bounded memory |
| push → container running, cached image, $(wc -l <"$B/latency.txt") pushes | p50 $P50 ms, p99 $P99 ms | p50 ≤ 300 ms, p99 ≤ 1 s |
| baseline: \`docker rm -f\` + \`docker run\` of the same container by hand | p50 $RAW50 ms | |
TABLE
