#!/usr/bin/env bash
# Benchmark of the image catalogue (issue 6): a registry holding 1 000 images
# (50 accounts × 20 tags, made cheaply: one push per repository, then tags
# added by PUTting the same manifest), read by `reconciler images`.
# Reports time per refresh (median of 5) and registry requests made.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source bench/lib.sh

B=${BERTH_BENCH_DIR:-/tmp/berth-bench-catalogue}
REPOS=${1:-50}
TAGS=${2:-20}
services_install
services_start_dockerd
services_start_slapd
services_start_registry
services_build_test_image
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state"
trap services_stop_started EXIT
export BERTH_LDAP_PASSWORD

export MT=application/vnd.docker.distribution.manifest.v2+json
log "filling the registry: $REPOS repositories × $TAGS tags"
for ((r = 0; r < REPOS; r++)); do
    repo=$(printf 'bench%04d/img' "$r")
    docker tag "$BERTH_TEST_IMAGE" "$BERTH_REGISTRY/$repo:t0" >/dev/null
    echo "$BERTH_REGISTRY/$repo:t0"
done | xargs -P 8 -n 1 docker push -q >/dev/null
manifest=$(curl -sf -H "Accept: $MT" "http://$BERTH_REGISTRY/v2/bench0000/img/manifests/t0")
for ((r = 0; r < REPOS; r++)); do
    for ((t = 1; t < TAGS; t++)); do
        printf '%s %s\n' "$(printf 'bench%04d/img' "$r")" "t$t"
    done
done | MANIFEST=$manifest xargs -P 8 -n 2 sh -c \
    'curl -sf -o /dev/null -X PUT -H "Content-Type: $MT" --data-binary "$MANIFEST" "http://$BERTH_REGISTRY/v2/$1/manifests/$2"' _
# (xargs hands each "repository tag" pair to sh as $1 $2; every tag gets the same manifest)
bench_site "$B/site.yaml" "$B/repos" "$B/state" 41000 "registry: { host: \"$BERTH_REGISTRY\", insecure: true }
"
times=()
for _ in 1 2 3 4 5; do
    t=$(date +%s.%N)
    BERTH_LOG=info "$R" --config "$B/site.yaml" images --output json >"$B/images.json" 2>"$B/images.log"
    times+=("$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
count=$(grep -o '"reference"' "$B/images.json" | wc -l)
requests=$(grep -o 'registry_requests=[0-9]*' "$B/images.log" | tail -1 | cut -d= -f2)
cat <<TABLE | tee "$B/results.md"

| catalogue refresh | result |
|---|---|
| images in the registry | $count ($REPOS repositories × $TAGS tags) |
| time per refresh (\`reconciler images\`, median of 5, incl. process start) | $median s |
| registry requests per refresh | $requests (1 catalog page, 1 tag list per repository, 1 manifest per image) |
TABLE
