#!/usr/bin/env bash
# Benchmark of measuring students' volumes (issue 27): VOLUMES Berth
# volumes of FILES small files each, plus CONTAINERS stopped Berth
# containers, on the test dockerd. Times Berth's measurement
# (`reconciler volumes --measure`: Docker's `GET /system/df` walk, the
# container list, the store write) against a baseline walking the same
# files with `du` on the host, in the same run; also the raw df call.
# Median of 5 each. Usage: bench/storage.sh [VOLUMES] [FILES] [CONTAINERS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

B=${BERTH_BENCH_DIR:-/tmp/berth-bench-storage}
VOLUMES=${1:-100}
FILES=${2:-500}
CONTAINERS=${3:-50}
services_install
services_start_dockerd
services_start_slapd
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
export BERTH_LDAP_PASSWORD
cleanup() {
    docker ps -aq --filter label=berth.bench-storage | xargs -r docker rm -f >/dev/null
    docker volume ls -q --filter label=berth.bench-storage | xargs -r docker volume rm >/dev/null
    services_stop_started
}
trap cleanup EXIT

log "making $VOLUMES volumes of $FILES files (4 KiB each) and $CONTAINERS stopped containers"
mounts=()
for ((v = 0; v < VOLUMES; v++)); do
    name=$(printf 'berth-bench%04d--data' "$v")
    docker volume create --label "berth.owner=$(account "$v")" --label berth.bench-storage=1 "$name" >/dev/null
    mounts+=(-v "$name:/v/$v")
done
docker run --rm --label berth.bench-storage=1 "${mounts[@]}" "$BERTH_TEST_IMAGE" \
    /bin/busybox sh -c "for d in /v/*; do i=0; while [ \$i -lt $FILES ]; do /bin/busybox dd if=/dev/zero of=\$d/f\$i bs=4096 count=1 2>/dev/null; i=\$((i + 1)); done; done"
for ((c = 0; c < CONTAINERS; c++)); do
    docker create --label "berth.owner=$(account $((c % VOLUMES)))" --label berth.bench-storage=1 \
        -v "$(printf 'berth-bench%04d--data' $((c % VOLUMES))):/data" "$BERTH_TEST_IMAGE" >/dev/null
done
bench_site "$B/site.yaml" "$B/repos" "$B/state" 42000

root=$(docker info -f '{{.DockerRootDir}}')
socket=${DOCKER_HOST#unix://}
api=$(docker version -f '{{.Server.APIVersion}}')
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
berth=() walk=() du_=() df=()
for _ in 1 2 3 4 5; do
    t=$(date +%s.%N)
    "$R" --config "$B/site.yaml" volumes --measure >"$B/volumes.txt" 2>"$B/measure.log"
    berth+=("$(elapsed "$t")")
    walk+=("$(grep -o 'in [0-9.]* s' "$B/measure.log" | tail -1 | cut -d' ' -f2)")
    t=$(date +%s.%N)
    du -s --apparent-size "$root"/volumes/berth-bench*--data/_data >/dev/null
    du_+=("$(elapsed "$t")")
    df+=("$(curl -s --unix-socket "$socket" -o /dev/null -w '%{time_total}' "http://docker/v$api/system/df?type=volume")")
done
b=$(printf '%s\n' "${berth[@]}" | median)
w=$(printf '%s\n' "${walk[@]}" | median)
d=$(printf '%s\n' "${du_[@]}" | median)
r=$(printf '%s\n' "${df[@]}" | median)
measured=$(grep -c 'berth-bench' "$B/volumes.txt" || true)
cat <<TABLE | tee "$B/results.md"

| measuring volumes ($VOLUMES volumes × $FILES files, $CONTAINERS stopped containers; dockerd API $api) | median of 5 |
|---|---|
| Berth's measurement of the host (\`GET /system/df\` + container list + store write) | $w s |
| \`reconciler volumes --measure\`, whole process | $b s |
| raw \`GET /system/df?type=volume\` (curl) | $r s |
| baseline: \`du -s\` of the same volumes' directories on the host | $d s |
| ratio Berth measurement / du | $(awk -v a="$w" -v b="$d" 'BEGIN { printf "%.1f×", a / b }') |
| volumes measured | $measured |
TABLE
