#!/usr/bin/env bash
# Runs Berth for real on this machine: starts dockerd and slapd (sample
# accounts alice, bob, carol, root-admin, disabled dave) and a department
# registry that trusts Berth's token service, starts `reconciler serve`,
# pushes alice's base image, pushes a sample workspace.yaml and web/Dockerfile
# to alice's bare repository, delivers a GitLab push event for it with curl
# (as GitLab would), and shows the image Berth built running and answering.
#   scripts/demo.sh          set up and run
#   scripts/demo.sh --kube   the same, plus a Kubernetes control plane built
#                            from the Kubernetes Go modules (needs Go; about
#                            6 minutes the first time) and a notebook of
#                            alice's on it
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
# Berth's own identity at the demo registry.
export BERTH_REGISTRY_USER=berth-bot BERTH_REGISTRY_PASSWORD=${BERTH_REGISTRY_PASSWORD:-demo-registry-secret}
# The admin API (read model, audit stream) for `status/audit --server`.
export BERTH_ADMIN_TOKEN=${BERTH_ADMIN_TOKEN:-demo-admin-token}
# Fixed: scripts/demo/workspace.yaml and web/Dockerfile name it.
DEMO_REGISTRY=127.0.0.1:5005
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

KUBE=0
if [[ ${1:-} == --kube ]]; then
    KUBE=1
    source scripts/lib/kube.sh
fi

if [[ ${1:-} == push ]]; then
    deliver
    exit 0
fi

if [[ ${1:-} == stop ]]; then
    [[ -f $DEMO/serve.pid ]] && kill "$(cat "$DEMO/serve.pid")" 2>/dev/null || true
    [[ -f $DEMO/registry.pid ]] && kill "$(cat "$DEMO/registry.pid")" 2>/dev/null || true
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
services_set_password alice alice-demo
services_set_password bob bob-demo
((KUBE)) && services_start_kube
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
$( ((KUBE)) && echo "  kubernetes: { kubeconfig: $BERTH_KUBECONFIG, ingress_domain: apps.berth.test, http_ports: [8888] }")
registry:
  host: $DEMO_REGISTRY
  insecure: true
  username_env: BERTH_REGISTRY_USER
  password_env: BERTH_REGISTRY_PASSWORD
  token: {}
public_url: http://$LISTEN
admin_token_env: BERTH_ADMIN_TOKEN
# The demo's images are busybox without /bin/sh.
console: { shell: ["/bin/busybox", "sh"] }
policy:
  allowed_registries: [docker.io]
  quotas:
    students: { containers: 4, cpus: 2, memory: 1Gi, registry: 1Gi }
    staff: { containers: 20, cpus: 8, memory: 8Gi }
repositories:
  local: { root: $DEMO/repos }
state_dir: $DEMO/state
YAML

# The department registry: docker-registry with `auth: token`, trusting the
# key Berth generates in its state directory.
if ! curl -s -o /dev/null "http://$DEMO_REGISTRY/v2/"; then
    mkdir -p "$DEMO/registry"
    {
        printf 'version: 0.1\nlog: { level: warn }\nstorage:\n  filesystem: { rootdirectory: %s }\n  delete: { enabled: true }\nhttp:\n  addr: %s\n' \
            "$DEMO/registry/data" "$DEMO_REGISTRY"
        "$R" --config "$SITE" registry-config
    } >"$DEMO/registry/config.yml"
    log "starting the department registry on $DEMO_REGISTRY (auth: token → http://$LISTEN/registry/token)"
    setsid docker-registry serve "$DEMO/registry/config.yml" >"$DEMO/registry/registry.log" 2>&1 </dev/null &
    echo $! >"$DEMO/registry.pid"
    wait_until 30 "the demo registry" bash -c "curl -s -o /dev/null -w '%{http_code}' http://$DEMO_REGISTRY/v2/ | grep -q 401"
fi

if [[ -f $DEMO/serve.pid ]] && kill -0 "$(cat "$DEMO/serve.pid")" 2>/dev/null; then
    kill "$(cat "$DEMO/serve.pid")"
    wait_until 30 "the previous server to stop" bash -c "! kill -0 $(cat "$DEMO/serve.pid")"
fi
log "starting reconciler serve on $LISTEN (log: $DEMO/serve.log)"
BERTH_LOG=info setsid "$R" --config "$SITE" serve --listen "$LISTEN" >"$DEMO/serve.log" 2>&1 </dev/null &
echo $! >"$DEMO/serve.pid"
wait_until 30 "reconciler serve" curl -sf "http://$LISTEN/healthz"

# alice pushes her base image from her "laptop", logged in with her
# department password (the token service checks it against LDAP).
laptop=$DEMO/alice-laptop
mkdir -p "$laptop"
echo alice-demo | docker --config "$laptop" login "$DEMO_REGISTRY" -u alice --password-stdin >/dev/null 2>"$DEMO/login.err" || { cat "$DEMO/login.err"; exit 1; }
docker tag "$BERTH_TEST_IMAGE" "$DEMO_REGISTRY/alice/base:1"
docker --config "$laptop" push -q "$DEMO_REGISTRY/alice/base:1" >/dev/null
log "alice logged in to $DEMO_REGISTRY with her LDAP password and pushed alice/base:1"

repo=$DEMO/repos/alice/workspace.git
if [[ ! -d $repo ]]; then
    git init -q --bare -b main "$repo"
    git init -q -b main "$work"
    git -C "$work" remote add origin "$repo"
fi
cp scripts/demo/workspace.yaml "$work/workspace.yaml"
if ((KUBE)); then
    # On the simulated nodes nothing is pulled or run: Kubernetes schedules
    # the pod and kwok reports it Ready.
    cat >>"$work/workspace.yaml" <<'YAML'
  - name: notebook
    image: 127.0.0.1:5005/alice/base:1
    backend: kubernetes
    command: ["/bin/busybox", "httpd", "-f", "-p", "8888"]
    ports: [8888]
    resources: { cpus: 0.25, memory: 128Mi }
YAML
fi
mkdir -p "$work/web"
cp scripts/demo/web/Dockerfile "$work/web/Dockerfile"
git -C "$work" add -A
git -C "$work" -c user.name="Alice Liddell" -c user.email=alice@berth.test commit -q --allow-empty -m "demo: web server built from web/Dockerfile"
git -C "$work" push -q origin HEAD:main
log "pushed alice's workspace.yaml and web/Dockerfile as alice@berth.test"
deliver
running() { "$R" --config "$SITE" status --account alice --output json | grep -q '"state": "running"'; }
wait_until 120 "Berth to build alice's image and run alice--web" running
log "reconciler status"
"$R" --config "$SITE" status
port=$("$R" --config "$SITE" status --account alice --output json |
    sed -n 's/.*"\(127\.0\.0\.1:[0-9]*\)->8080".*/\1/p' | head -1)
wait_until 10 "alice--web to answer" curl -sf "http://$port/"
log "curl http://$port/ → $(curl -s "http://$port/")"
cat <<MSG

Berth is serving on http://$LISTEN (pid $(cat "$DEMO/serve.pid"), log $DEMO/serve.log)
and running alice's workspace.

  The student console: http://$LISTEN/  — log in as alice, password alice-demo
  (workspace, logs, terminal, files, images, downloads; bob / bob-demo too).

Try:
  export DOCKER_HOST=$DOCKER_HOST BERTH_LDAP_PASSWORD=$BERTH_LDAP_PASSWORD
  $R --config $SITE status
  export BERTH_ADMIN_TOKEN=$BERTH_ADMIN_TOKEN
  $R status --server http://$LISTEN --watch        # redraws as pushes are reconciled
  $R audit --server http://$LISTEN --follow        # each audit line as it is written
  curl -s http://$LISTEN/metrics
  edit $work/workspace.yaml, then:
    git -C $work -c user.name=Alice -c user.email=alice@berth.test commit -qam change
    git -C $work push -q origin HEAD:main && scripts/demo.sh push
  docker stop alice--web     # and the next resync (1 min) starts it again
  $R --config $SITE build-log --account alice     # how her image was built
  $R --config $SITE registry-token create --account alice --name laptop
      # then on a laptop: docker login $DEMO_REGISTRY -u alice  (the token as password)
Stop everything with: scripts/demo.sh stop
MSG
if ((KUBE)); then
    wait_until 120 "alice's notebook Deployment to be ready" bash -c \
        "'$R' --config '$SITE' status --account alice --output json | grep -q '\"ready\": \"1/1\"'"
    "$R" --config "$SITE" status --account alice
    cat <<MSG
Kubernetes (a control plane on https://127.0.0.1:$BERTH_KUBE_API_PORT, nodes simulated by kwok):
  alice's notebook runs in namespace berth-alice (ready 1/1 above):
  $R --config $SITE kubeconfig --account alice > alice.kubeconfig   # her kubectl access
  admin kubeconfig: $BERTH_KUBECONFIG
MSG
fi
