#!/usr/bin/env bash
# Runs Berth for real on this machine: starts dockerd and slapd (sample
# accounts alice, bob, carol, root-admin, disabled dave), pushes a sample
# workspace.yaml to alice's bare repository, reconciles it, and shows alice's
# container running and answering HTTP. `scripts/demo.sh stop` tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh

DEMO=${BERTH_DEMO_DIR:-/tmp/berth-demo}
SITE=$DEMO/site.yaml
export BERTH_LDAP_PASSWORD

if [[ ${1:-} == stop ]]; then
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
ldap:
  url: $BERTH_LDAP_URL
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
work=$DEMO/work/alice
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

log "reconciler diff"
"$R" --config "$SITE" diff || true
log "reconciler apply"
"$R" --config "$SITE" apply
log "reconciler status"
"$R" --config "$SITE" status
port=$("$R" --config "$SITE" status --account alice --output json |
    sed -n 's/.*"\(127\.0\.0\.1:[0-9]*\)->8080".*/\1/p' | head -1)
wait_until 10 "alice-web to answer" curl -sf "http://$port/"
log "curl http://$port/ → $(curl -s "http://$port/")"
cat <<MSG

Berth is running alice's workspace. Try:
  export DOCKER_HOST=$DOCKER_HOST BERTH_LDAP_PASSWORD=$BERTH_LDAP_PASSWORD
  $R --config $SITE status
  docker stop alice-web && $R --config $SITE apply     # self-heal
  edit $work/workspace.yaml, commit as alice@berth.test, push, then diff/apply
Stop everything with: scripts/demo.sh stop
MSG
