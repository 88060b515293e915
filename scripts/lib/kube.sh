# shellcheck shell=bash
# A real Kubernetes control plane for Berth's tests and demo, on loopback:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from
# their Go modules (scripts/kube/: wrappers only, no Kubernetes source), and
# nodes simulated by kwok so Deployments get scheduled, Ready pods. Sourced
# after services.sh (uses log, wait_until, _BERTH_STARTED).
#
# Binaries are cached outside the clone, keyed by the wrappers' go.mod/go.sum
# and the Go version: a warm start builds nothing. Every start of the control
# plane begins from an empty etcd, so a run never sees a previous run's
# namespaces; an API server already answering is reused as it is.

BERTH_KUBE_VERSION=v1.37.2
BERTH_KWOK_VERSION=v0.8.0
BERTH_KUBE_API_PORT=${BERTH_KUBE_API_PORT:-26443}
BERTH_ETCD_PORT=${BERTH_ETCD_PORT:-23790}
BERTH_KUBE_NODES=${BERTH_KUBE_NODES:-2}
# Berth never deletes claims and no provisioner exists here: the harness
# makes this many 1 GiB volumes for the tests' claims to bind to.
BERTH_KUBE_VOLUMES=${BERTH_KUBE_VOLUMES:-48}
# No VCS stamp, no paths, no symbols: the same wrappers give the same
# binaries, a third smaller.
_BERTH_KUBE_GOFLAGS=(-trimpath -buildvcs=false "-ldflags=-s -w")
_BERTH_KUBE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../kube" && pwd)"

# kube_build: builds (or finds) the binaries; exports BERTH_KUBE_BIN.
kube_build() {
    if ! command -v go >/dev/null; then
        log "Go is needed to build the test control plane (go 1.26 or newer); see docs/kubernetes.md"
        return 1
    fi
    local tools=${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}
    local key
    key=$( (cat "$_BERTH_KUBE_SRC"/etcd/go.{mod,sum} "$_BERTH_KUBE_SRC"/k8s/go.{mod,sum} \
        "$_BERTH_KUBE_SRC"/*/main.go "$_BERTH_KUBE_SRC"/k8s/cmd/*/main.go
        echo "$BERTH_KWOK_VERSION ${_BERTH_KUBE_GOFLAGS[*]}"
        go version) | sha256sum | cut -c1-12)
    export BERTH_KUBE_BIN=$tools/kube-$BERTH_KUBE_VERSION-$key
    local b missing=0
    for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
        [[ -x $BERTH_KUBE_BIN/$b ]] || missing=1
    done
    ((missing == 0)) && return 0
    local tmp=$BERTH_KUBE_BIN.tmp start=$SECONDS
    rm -rf "$tmp" && mkdir -p "$tmp"
    log "building the control plane ($BERTH_KUBE_VERSION, etcd, kwok $BERTH_KWOK_VERSION) into $BERTH_KUBE_BIN"
    (cd "$_BERTH_KUBE_SRC/etcd" && go build "${_BERTH_KUBE_GOFLAGS[@]}" -o "$tmp/etcd" .) || return 1
    (cd "$_BERTH_KUBE_SRC/k8s" && go build "${_BERTH_KUBE_GOFLAGS[@]}" -o "$tmp/" ./cmd/...) || return 1
    GOBIN=$tmp go install "${_BERTH_KUBE_GOFLAGS[@]}" "sigs.k8s.io/kwok/cmd/kwok@$BERTH_KWOK_VERSION" || return 1
    # kwok's stages (what a fake node and pod go through) come from its module.
    local stages
    stages=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$BERTH_KWOK_VERSION/kustomize/stage
    for b in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
        pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
        cat "$stages/$b.yaml" && echo "---"
    done >"$tmp/kwok-stages.yaml" || return 1
    mv "$tmp" "$BERTH_KUBE_BIN"
    log "control plane built in $((SECONDS - start)) s"
}

# _kube_pki DIR: a CA, the API server's serving certificate, client
# certificates for the admin and the two controllers, and the service
# account signing key. Made once per directory.
_kube_pki() {
    local d=$1
    [[ -s $d/sa.pub ]] && return 0
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=berth-test-kubernetes-ca" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >server.ext
        _kube_cert apiserver "/CN=kube-apiserver" server.ext
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        _kube_cert admin "/O=system:masters/CN=berth-test-admin" client.ext
        _kube_cert controller-manager "/CN=system:kube-controller-manager" client.ext
        _kube_cert scheduler "/CN=system:kube-scheduler" client.ext
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    )
}

_kube_cert() {
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null &&
        openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile "$3" -out "$1.crt" 2>/dev/null
}

# _kube_kubeconfig DIR USER: a kubeconfig for USER's client certificate.
_kube_kubeconfig() {
    cat >"$1/$2.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: berth-test
  cluster:
    server: https://127.0.0.1:$BERTH_KUBE_API_PORT
    certificate-authority: $1/ca.crt
users:
- name: $2
  user:
    client-certificate: $1/$2.crt
    client-key: $1/$2.key
contexts:
- name: berth-test
  context: { cluster: berth-test, user: $2 }
current-context: berth-test
EOF
}

# kube_api METHOD PATH [CURL ARGS...]: the API server as its admin.
kube_api() {
    local d=$BERTH_SERVICES_DIR/kube/pki method=$1 path=$2
    shift 2
    curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
        -X "$method" "https://127.0.0.1:$BERTH_KUBE_API_PORT$path" "$@"
}

_kube_ready() {
    [[ $(kube_api GET /readyz) == ok ]]
}

# _kube_start NAME ARGS...: one control-plane process, logged and recorded.
_kube_start() {
    local name=$1 dir=$BERTH_SERVICES_DIR/kube
    shift
    setsid "$BERTH_KUBE_BIN/$name" "$@" >"$dir/$name.log" 2>&1 </dev/null &
    echo $! >"$dir/$name.pid"
    _BERTH_STARTED+=("$dir/$name.pid")
}

# services_start_kube: the whole control plane, nodes and volumes. Exports
# BERTH_KUBECONFIG (the admin's kubeconfig) for the tests.
services_start_kube() {
    local dir=$BERTH_SERVICES_DIR/kube
    local pki=$dir/pki
    # An admin's own cluster (kind, k3s, the department's) takes the place
    # of this one when BERTH_KUBECONFIG names it.
    if [[ -n ${BERTH_KUBECONFIG:-} && $BERTH_KUBECONFIG != "$pki/admin.kubeconfig" ]]; then
        log "Kubernetes tests use the cluster of BERTH_KUBECONFIG=$BERTH_KUBECONFIG"
        return 0
    fi
    export BERTH_KUBECONFIG=$pki/admin.kubeconfig
    if [[ -s $pki/ca.crt ]] && _kube_ready; then
        return 0
    fi
    kube_build || { log "could not build the control plane"; return 1; }
    _kube_pki "$pki" || { log "could not make the control plane's certificates"; return 1; }
    local u
    for u in admin controller-manager scheduler; do _kube_kubeconfig "$pki" "$u"; done
    # A previous run's processes (its shell was killed) hold the ports.
    local p
    for p in "$dir"/*.pid; do
        [[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null || true
    done
    wait_until 30 "the old control plane to exit" bash -c "! ss -ltn | grep -q ':$BERTH_KUBE_API_PORT '" || true
    rm -rf "$dir/etcd"
    log "starting a Kubernetes $BERTH_KUBE_VERSION control plane on 127.0.0.1:$BERTH_KUBE_API_PORT"
    # No fsync: the data lives as long as the run.
    _kube_start etcd --name berth-test --data-dir "$dir/etcd" --unsafe-no-fsync \
        --listen-client-urls "http://127.0.0.1:$BERTH_ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$BERTH_ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((BERTH_ETCD_PORT + 10))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((BERTH_ETCD_PORT + 10))" \
        --initial-cluster "berth-test=http://127.0.0.1:$((BERTH_ETCD_PORT + 10))" \
        --listen-metrics-urls "" --log-level warn
    wait_until 60 etcd curl -sf "http://127.0.0.1:$BERTH_ETCD_PORT/health" ||
        { tail -20 "$dir/etcd.log" >&2; return 1; }
    _kube_start kube-apiserver \
        --etcd-servers "http://127.0.0.1:$BERTH_ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$BERTH_KUBE_API_PORT" \
        --endpoint-reconciler-type none \
        --cert-dir "$dir/apiserver" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --client-ca-file "$pki/ca.crt" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-cluster-ip-range 10.96.0.0/16 \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction,ResourceQuota,LimitRanger,ServiceAccount,PodSecurity \
        --profiling=false
    wait_until 120 kube-apiserver _kube_ready || { tail -30 "$dir/kube-apiserver.log" >&2; return 1; }
    _kube_start kube-controller-manager \
        --kubeconfig "$pki/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$pki/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
        --use-service-account-credentials \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --profiling=false
    _kube_start kube-scheduler \
        --kubeconfig "$pki/scheduler.kubeconfig" \
        --authentication-kubeconfig "$pki/scheduler.kubeconfig" \
        --authorization-kubeconfig "$pki/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
        --profiling=false
    _kube_start kwok --kubeconfig "$pki/admin.kubeconfig" --config "$BERTH_KUBE_BIN/kwok-stages.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-ip 10.244.0.1 --cidr 10.244.0.0/16 --node-lease-duration-seconds 40
    _kube_nodes "$BERTH_KUBE_NODES" || { log "could not create kwok's nodes"; return 1; }
    _kube_volumes "$BERTH_KUBE_VOLUMES" || { log "could not create the volumes"; return 1; }
    # The controllers are up when they made the default ServiceAccount of a
    # namespace, and the scheduler when kwok's nodes are Ready to it.
    wait_until 90 "the default ServiceAccount" kube_api GET /api/v1/namespaces/default/serviceaccounts/default ||
        { tail -30 "$dir/kube-controller-manager.log" >&2; return 1; }
    wait_until 60 "kwok's nodes to be Ready" _kube_nodes_ready ||
        { tail -30 "$dir/kwok.log" >&2; return 1; }
}

_kube_nodes() {
    local i
    for ((i = 0; i < $1; i++)); do
        kube_api POST /api/v1/nodes -H 'Content-Type: application/yaml' --data-binary @- >/dev/null <<EOF || return 1
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: { kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0" }
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    type: kwok
status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
EOF
    done
}

_kube_nodes_ready() {
    local nodes
    nodes=$(kube_api GET /api/v1/nodes) || return 1
    [[ $(grep -c '"type": "Ready"' <<<"$nodes") -ge $BERTH_KUBE_NODES ]] &&
        ! grep -A1 '"type": "Ready"' <<<"$nodes" | grep -q '"status": "False"'
}

_kube_volumes() {
    local i
    for ((i = 0; i < $1; i++)); do
        kube_api POST /api/v1/persistentvolumes -H 'Content-Type: application/yaml' --data-binary @- >/dev/null <<EOF || return 1
apiVersion: v1
kind: PersistentVolume
metadata: { name: berth-test-pv-$i, labels: { berth-test: volume } }
spec:
  capacity: { storage: 1Gi }
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: { path: /tmp/berth-kube-volumes/pv-$i }
EOF
    done
}
