#!/usr/bin/env bash
# Runs Berth for real on this machine: starts dockerd and slapd (sample
# accounts alice, bob, carol, root-admin, disabled dave), pushes a sample
# workspace.yaml to alice's bare repository, starts `reconciler serve`,
# delivers a GitLab push event for it with curl (as GitLab would), and shows
# alice's container running and answering HTTP.
#   scripts/demo.sh          set up and run
#   scripts/demo.sh push     deliver a push event for alice's current head
#   scripts/demo.sh stop     stop the server, containers and services
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh

DEMO=${BERTH_DEMO_DIR:-/tmp/berth-demo}
SITE=$DEMO/site.yaml
LISTEN=${BERTH_DEMO_LISTEN:-127.0.0.1:8080}
export BERTH_LDAP_PASSWORD
export BERTH_WEBHOOK_SECRET=${BERTH_WEBHOOK_SECRET:-demo-secret}
work=$DEMO/work/alice

# push_event SHA: a GitLab push event (as documented) for alice/workspace.
push_event() {
    cat <<JSON
{"object_kind":"push","event_name":"push","before":"0000000000000000000000000000000000000000",
 "after":"$1","ref":"refs/heads/main","checkout_sha":"$1","user_id":2,"user_name":"Alice Liddell",
 "user_username":"alice","user_email":"","project_id":1,
 "project":{"id":1,"name":"workspace","path_with_namespace":"alice/workspace","default_branch":"main"},
 "commits":[],"total_commits_count":1}
JSON
}

deliver() {
    local sha
    sha=$(git -C "$work" rev-parse HEAD)
    log "POST http://$LISTEN/hooks/gitlab (push of $sha by alice)"
    push_event "$sha" | curl -sS -o /dev/null -w '  → HTTP %{http_code}\n' -X POST "http://$LISTEN/hooks/gitlab" \
        -H "X-Gitlab-Token: $BERTH_WEBHOOK_SECRET" -H "X-Gitlab-Event: Push Hook" \
        -H "X-Gitlab-Event-UUID: demo-$sha-$RANDOM" -H "Content-Type: application/json" --data-binary @-
}

if [[ ${1:-} == push ]]; then
    deliver
    exit 0
fi

if [[ ${1:-} == stop ]]; then
    [[ -f $DEMO/serve.pid ]] && kill "$(cat "$DEMO/serve.pid")" 2>/dev/null || true
    services_start_dockerd >/dev/null 2>&1 || true
    ids=$(docker ps -aq --filter label=berth.owner 2>/dev/null || true)
    [[ -n $ids ]] && docker rm -f $ids >/dev/null
    for f in "$BERTH_SERVICES_DIR"/*/*.pid; do
        [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true
    done
    rm -rf "$DEMO"
    log "demo stopped (volumes kept; services stopped)"
    exit 0
fi

services_install
services_start_dockerd
services_start_slapd
services_build_test_image
log "building reconciler"
cargo build -q -p berth-reconciler
R=$PWD/target/debug/reconciler

mkdir -p "$DEMO/repos/alice" "$DEMO/state"
cat >"$SITE" <<YAML
# GitLab's API is not reachable here: webhooks are taken (secret from
# BERTH_WEBHOOK_SECRET) but no commit statuses are posted.
gitlab:
  webhook_secret_env: BERTH_WEBHOOK_SECRET
resync_interval: 1m
ldap:
  url: $BERTH_LDAP_URL
  insecure: true
  bind_dn: $BERTH_LDAP_BIND_DN
  bind_password_env: BERTH_LDAP_PASSWORD
  base_dn: ou=people,$BERTH_LDAP_BASE
  disabled: { group: disabled }
  allowed_groups: [students, staff, admins]
  admin_group: admins
backends:
  docker:
    - { name: local, endpoint: env, bind_address: 127.0.0.1, host_ports: { first: 20000, last: 20999 } }
policy:
  allowed_registries: [docker.io]
  quotas:
    students: { containers: 4, cpus: 2, memory: 1Gi }
    staff: { containers: 20, cpus: 8, memory: 8Gi }
repositories:
  local: { root: $DEMO/repos }
state_dir: $DEMO/state
YAML

repo=$DEMO/repos/alice/workspace.git
if [[ ! -d $repo ]]; then
    git init -q --bare -b main "$repo"
    git init -q -b main "$work"
    git -C "$work" remote add origin "$repo"
fi
cp scripts/demo/workspace.yaml "$work/workspace.yaml"
git -C "$work" add -A
git -C "$work" -c user.name="Alice Liddell" -c user.email=alice@berth.test commit -q --allow-empty -m "demo: web server"
git -C "$work" push -q origin HEAD:main
log "pushed alice's workspace.yaml as alice@berth.test"

if [[ -f $DEMO/serve.pid ]] && kill -0 "$(cat "$DEMO/serve.pid")" 2>/dev/null; then
    kill "$(cat "$DEMO/serve.pid")"
    wait_until 30 "the previous server to stop" bash -c "! kill -0 $(cat "$DEMO/serve.pid")"
fi
log "starting reconciler serve on $LISTEN (log: $DEMO/serve.log)"
BERTH_LOG=info setsid "$R" --config "$SITE" serve --listen "$LISTEN" >"$DEMO/serve.log" 2>&1 </dev/null &
echo $! >"$DEMO/serve.pid"
wait_until 30 "reconciler serve" curl -sf "http://$LISTEN/healthz"
deliver
running() { "$R" --config "$SITE" status --account alice --output json | grep -q '"state": "running"'; }
wait_until 60 "alice--web to run" running
log "reconciler status"
"$R" --config "$SITE" status
port=$("$R" --config "$SITE" status --account alice --output json |
    sed -n 's/.*"\(127\.0\.0\.1:[0-9]*\)->8080".*/\1/p' | head -1)
wait_until 10 "alice--web to answer" curl -sf "http://$port/"
log "curl http://$port/ → $(curl -s "http://$port/")"
cat <<MSG

Berth is serving on http://$LISTEN (pid $(cat "$DEMO/serve.pid"), log $DEMO/serve.log)
and running alice's workspace. Try:
  export DOCKER_HOST=$DOCKER_HOST BERTH_LDAP_PASSWORD=$BERTH_LDAP_PASSWORD
  $R --config $SITE status
  curl -s http://$LISTEN/metrics
  edit $work/workspace.yaml, then:
    git -C $work -c user.name=Alice -c user.email=alice@berth.test commit -qam change
    git -C $work push -q origin HEAD:main && scripts/demo.sh push
  docker stop alice--web     # and the next resync (1 min) starts it again
Stop everything with: scripts/demo.sh stop
MSG
