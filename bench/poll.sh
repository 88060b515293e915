#!/usr/bin/env bash
# Benchmark of polling (issue 23): the cost of one `repositories.gitlab.poll`
# round over N workspace repositories (default 1 000), all on loopback, one
# run. A stand-in GitLab (bench/poll.py) serves the REST endpoints and git's
# smart HTTP through the real `git http-backend`. Measured, 3 runs each,
# median: `reconciler gitlab poll`
#   1. quiet: every branch where Berth accepted it (the usual round);
#   2. all moved: every branch moved, so GitLab is asked who pushed each;
# and, as the baseline in the same run, the same N `git ls-remote --symref
# URL HEAD` with the same token header, 16 at a time (`xargs -P16`).
# Usage: bench/poll.sh [N]. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh

N=${1:-1000}
B=${BERTH_BENCH_DIR:-/tmp/berth-bench-poll}
PORT=18190
TOKEN=bench-token
export BERTH_GITLAB_TOKEN=$TOKEN

services_install
cargo build -q --release -p berth-reconciler
R=$PWD/target/release/reconciler
rm -rf "$B" && mkdir -p "$B/repos" "$B/state" "$B/work"
GL_PID=
cleanup() {
    [[ -n $GL_PID ]] && kill "$GL_PID" 2>/dev/null || true
    rm -rf "$B"
}
trap cleanup EXIT

log "$N repositories (one history, $N paths to it)"
git init -q --bare -b main "$B/origin.git"
git init -q -b main "$B/work"
printf 'version: 1\ncontainers: []\n' >"$B/work/workspace.yaml"
git -C "$B/work" add -A
git -C "$B/work" -c user.name=B -c user.email=b@berth.test commit -qm ws
git -C "$B/work" push -q "$B/origin.git" HEAD:main
SHA=$(git -C "$B/work" rev-parse HEAD)
for ((i = 0; i < N; i++)); do
    a=$(printf 'u%04d' "$i")
    mkdir -p "$B/repos/$a"
    ln -s "$B/origin.git" "$B/repos/$a/workspace.git"
done

python3 bench/poll.py "$PORT" "$B/repos" "$N" "$SHA" "$TOKEN" &
GL_PID=$!
wait_until 20 "the stand-in GitLab" curl -sf "http://127.0.0.1:$PORT/stats"

cat >"$B/site.yaml" <<YAML
gitlab:
  url: http://127.0.0.1:$PORT
  token_env: BERTH_GITLAB_TOKEN
ldap:
  url: ldap://127.0.0.1:1
  insecure: true
  base_dn: ou=people,dc=berth,dc=test
  allowed_groups: [students]
backends:
  docker:
    - { name: local, endpoint: env, host_ports: { first: 40000, last: 40999 } }
policy:
  quotas: {}
repositories:
  gitlab: { groups: [students], poll: 3m }
state_dir: $B/state
YAML

# measure CMD…: runs CMD, prints "wall_ms cpu_s peak_rss_kib" (CPU and RSS
# of CMD and every process it waited for: git, git-remote-http).
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = (time.monotonic() - t) * 1000
if r.returncode != 0:
    sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
    sys.exit(1)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.0f} {u.ru_utime + u.ru_stime:.2f} {u.ru_maxrss}")
PY
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
three() { # three LABEL CMD…: three runs; prints median wall ms, cpu s, rss
    local label=$1 i out walls=() cpus=() rsss=()
    shift
    for i in 1 2 3; do
        out=$(measure "$@")
        walls+=("$(cut -d' ' -f1 <<<"$out")")
        cpus+=("$(cut -d' ' -f2 <<<"$out")")
        rsss+=("$(cut -d' ' -f3 <<<"$out")")
    done
    printf '%s %s %s %s\n' "$label" \
        "$(printf '%s\n' "${walls[@]}" | median)" \
        "$(printf '%s\n' "${cpus[@]}" | median)" \
        "$(printf '%s\n' "${rsss[@]}" | median)"
}

log "discovering the $N projects (setup, not measured)"
"$R" --config "$B/site.yaml" gitlab poll --discover >"$B/discover.txt"
head -1 "$B/discover.txt" >&2

log "all moved: Berth's rounds"
MOVED=$(three moved "$R" --config "$B/site.yaml" gitlab poll)
"$R" --config "$B/site.yaml" gitlab poll | tail -1 >&2

log "quiet: Berth's rounds (every account's accepted revision is the head)"
python3 - "$B/state/berth.sqlite3" "$N" "$SHA" <<'PY'
import sqlite3, sys, time
db, n, sha = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(db)
c.executemany(
    "INSERT OR REPLACE INTO accepted (account, repository, revision, at) VALUES (?, 'workspace', ?, ?)",
    [(f"u{i:04d}", sha, int(time.time())) for i in range(n)],
)
c.commit()
PY
QUIET=$(three quiet "$R" --config "$B/site.yaml" gitlab poll)
"$R" --config "$B/site.yaml" gitlab poll | tail -1 >&2

log "baseline: $N × git ls-remote, 16 at a time"
HEADER="Authorization: Basic $(printf 'oauth2:%s' "$TOKEN" | base64 -w0)"
for ((i = 0; i < N; i++)); do printf 'http://127.0.0.1:%s/u%04d/workspace.git\n' "$PORT" "$i"; done >"$B/urls"
export HEADER
BASE=$(three baseline sh -c 'xargs -P16 -I{} git -c "http.extraHeader=$HEADER" ls-remote --symref {} HEAD >/dev/null <"$0"' "$B/urls")
STATS=$(curl -s "http://127.0.0.1:$PORT/stats")

read -r _ qw qc qr <<<"$QUIET"
read -r _ mw mc mr <<<"$MOVED"
read -r _ bw bc br <<<"$BASE"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<EOF

One poll round over $N repositories ($(nproc) cores), median of 3:
| round | wall | CPU (Berth + git) | peak RSS | vs baseline |
|---|---|---|---|---|
| baseline: $N × \`git ls-remote\`, \`xargs -P16\` | $bw ms | $bc s | $((br / 1024)) MiB | 1.00× |
| Berth, quiet (nothing moved) | $qw ms | $qc s | $((qr / 1024)) MiB | $(ratio "$qw" "$bw")× |
| Berth, all $N moved (+ $N event lookups) | $mw ms | $mc s | $((mr / 1024)) MiB | $(ratio "$mw" "$bw")× |
Requests the stand-in GitLab answered over the whole run: $STATS
EOF
