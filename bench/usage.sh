#!/usr/bin/env bash
# Benchmark of usage accounting (issue 28), release build, one run:
#  1. The cost of sampling: C running Berth containers (default 600, three
#     per account), `serve` sampling every 20 s for 2 minutes, against the
#     same `serve` sampling once an hour, in the same run. serve's CPU time
#     (from /proc) and its Docker API calls (a counting proxy) per minute.
#  2. The store after a generated year: 1 000 accounts with a container
#     running every hour of 365 days (the worst case: every hourly and daily
#     row present), its size on disk.
#  3. `reconciler usage --by account` over a month of those 1 000 accounts.
# Usage: bench/usage.sh [CONTAINERS]. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

C=${1:-600}
B=${BERTH_BENCH_DIR:-/tmp/berth-bench-usage}
WINDOW=120
EVERY=30
services_install
services_start_dockerd
services_start_slapd
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
export BERTH_LDAP_PASSWORD
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    docker ps -aq --filter label=berth.bench-usage | xargs -r docker rm -f >/dev/null 2>&1 || true
    services_stop_started
}
trap cleanup EXIT

# The accounts exist in the directory (no repositories): serve leaves
# their containers alone (an unknown account's would be stopped).
log "creating $((C / 3)) LDAP accounts"
for ((i = 0; i < C / 3; i++)); do
    a=$(account $i)
    printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Bench\nmail: %s@berth.test\n\n' \
        "$a" "$BERTH_LDAP_BASE" "$a" "$a" "$a"
done | ldapadd -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >/dev/null 2>&1 || true
for ((i = 0; i < C / 3; i++)); do
    printf 'dn: cn=students,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=%s,ou=people,%s\n\n' \
        "$BERTH_LDAP_BASE" "$(account $i)" "$BERTH_LDAP_BASE"
done | ldapmodify -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >/dev/null 2>&1 || true
log "starting $C containers ($((C / 3)) accounts × 3, 0.01 CPU each)"
for ((i = 0; i < C; i++)); do
    printf '%s %s\n' "$(account $((i / 3)))" "$i"
done | xargs -P 8 -n 2 sh -c 'docker run -d -q --network none --label berth.owner=$1 --label berth.bench-usage=1 --label berth.name=c$2 --cpus 0.01 --memory 16m "$0" /bin/busybox sleep 36000 >/dev/null' "$BERTH_TEST_IMAGE"

REAL=${DOCKER_HOST#unix://}
python3 bench/docker-count-proxy.py "$B/docker.sock" "$REAL" "$B/docker-calls" &
PIDS+=($!)
wait_until 10 "the counting proxy" test -S "$B/docker.sock"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
calls() { cat "$B/docker-calls" 2>/dev/null || echo 0; }

# One window of serve sampling every $1: CPU seconds and Docker calls.
window() {
    local every=$1 state=$B/state-$1
    rm -rf "$state" && mkdir -p "$state"
    bench_site "$B/site-$every.yaml" "$B/repos" "$state" 44000 "resync_interval: 1h
"
    sed -i "s|^policy:|policy:\n  usage: { sample_every: $every }\n  storage: { measure_every: 1h }|" "$B/site-$every.yaml"
    DOCKER_HOST=unix://$B/docker.sock BERTH_LOG=warn,berth_reconciler=info,berth_reconciler::edges::server::background=debug "$R" --config "$B/site-$every.yaml" serve --listen 127.0.0.1:18300 >"$B/serve-$every.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_until 30 serve curl -sf -o /dev/null http://127.0.0.1:18300/healthz
    # Start-up (the read model, the first measurement and round) is left out.
    sleep 15
    local t0 c0
    t0=$(cpu_ticks "$pid") c0=$(calls)
    sleep "$WINDOW"
    local t1 c1
    t1=$(cpu_ticks "$pid") c1=$(calls)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$(( t1 - t0 )) $(( c1 - c0 ))"
}
hz=$(getconf CLK_TCK)
log "serve sampling every $EVERY s for $WINDOW s"
read -r busy_ticks busy_calls < <(window "${EVERY}s")
log "serve sampling every hour for $WINDOW s (the baseline)"
read -r idle_ticks idle_calls < <(window 1h)
per_min() { awk -v v="$1" -v w="$WINDOW" 'BEGIN { printf "%.1f", v * 60 / w }'; }
rounds=$((WINDOW / EVERY))
cost_cpu=$(awk -v b="$busy_ticks" -v i="$idle_ticks" -v hz="$hz" -v r="$rounds" 'BEGIN { printf "%.3f", (b - i) / hz / r }')
share=$(awk -v c="$cost_cpu" 'BEGIN { printf "%.2f", 100 * c / 60 }')
rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM usage_cursors").fetchone()[0])' "$B/state-${EVERY}s/berth.sqlite3")

log "generating a year of rollups for 1 000 accounts"
cp -r "$B/state-${EVERY}s" "$B/state-year"
python3 - "$B/state-year/berth.sqlite3" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time()) // 3600 * 3600
hourly, daily = [], []
for a in range(1000):
    account = f"year{a:04d}"
    for d in range(365):
        daily.append((account, now - now % 86400 - d * 86400, 1.0, 2.0, 0.5, 0.25, 0.0))
    for h in range(35 * 24):
        hourly.append((account, now - h * 3600, 1.0, 2.0, 0.5, 0.25, 0.0))
db.execute("DELETE FROM usage_hourly")
db.execute("DELETE FROM usage_daily")
columns = "(account, at, cpu_used, cpu_reserved, memory_reserved, memory_used, gpu_reserved)"
db.executemany(f"INSERT INTO usage_daily {columns} VALUES (?,?,?,?,?,?,?)", daily)
db.executemany(f"INSERT INTO usage_hourly {columns} VALUES (?,?,?,?,?,?,?)", hourly)
db.commit()
db.execute("VACUUM")
db.close()
PY
size=$(du -m "$B/state-year/berth.sqlite3" | cut -f1)
bench_site "$B/site-year.yaml" "$B/repos" "$B/state-year" 44000
month_from=$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m-%d)
month_to=$(date -u +%Y-%m-01)
times=()
for _ in 1 2 3 4 5; do
    t=$(date +%s.%N)
    "$R" --config "$B/site-year.yaml" usage --from "$month_from" --to "$month_to" --output json >"$B/report.json"
    times+=("$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')")
done
report=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
lines=$(grep -o '"key"' "$B/report.json" | wc -l)

cat <<TABLE | tee "$B/results.md"

| usage accounting | result |
|---|---|
| containers sampled | $C running ($rows followed) |
| one round of $C containers (serve's log) | $(grep -o 'usage sampled endpoint=local containers=[0-9]* seconds=[0-9.]*' "$B/serve-${EVERY}s.log" | tail -1 | grep -o 'seconds=[0-9.]*' | cut -d= -f2) s |
| serve CPU per round, above the hourly baseline | $cost_cpu s (sampling every minute: $share % of one core) |
| Docker API calls per minute, sampling every $EVERY s / every hour | $(per_min "$busy_calls") / $(per_min "$idle_calls") |
| store after a generated year, 1 000 accounts busy every hour | $size MiB (365 daily + 840 hourly rows per account) |
| \`reconciler usage\` over a month, 1 000 accounts (median of 5, incl. process start) | $report s ($lines lines) |
TABLE
