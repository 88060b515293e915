# shellcheck shell=bash
# Real services for Berth's tests and demo: dockerd, slapd, docker-registry,
# and a tiny local test image. Sourced by scripts/test.sh and scripts/demo.sh.
#
# Every function is idempotent: a service already answering is reused, and
# only what this shell started is recorded for `services_stop_started`.
# Waits poll a readiness condition with a deadline; nothing sleeps blindly.

BERTH_SERVICES_DIR=${BERTH_SERVICES_DIR:-/tmp/berth-services}
BERTH_LDAP_PORT=${BERTH_LDAP_PORT:-3389}
BERTH_REGISTRY_PORT=${BERTH_REGISTRY_PORT:-5000}
BERTH_LDAP_BASE=dc=berth,dc=test
BERTH_LDAP_BIND_DN=cn=admin,dc=berth,dc=test
BERTH_LDAP_PASSWORD=${BERTH_LDAP_PASSWORD:-berth-test-only}
BERTH_TEST_IMAGE=berth-test/http:1
BERTH_DOCKER_TLS_PORT=${BERTH_DOCKER_TLS_PORT:-23760}
BERTH_WEBDRIVER_PORT=${BERTH_WEBDRIVER_PORT:-9515}
# The second Docker host: its own network namespace, reached over a veth.
BERTH_NETNS=${BERTH_NETNS:-berth-h2}
BERTH_H2_HOST_SIDE=10.250.0.1
BERTH_H2_ADDR=10.250.0.2
_BERTH_FIXTURES="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures" && pwd)"
_BERTH_STARTED=()

log() { printf '\033[1m[berth]\033[0m %s\n' "$*" >&2; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 100 ms.
wait_until() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "timed out waiting for $what"
            return 1
        fi
        sleep 0.1
    done
}

services_install() {
    local pkgs=(docker.io busybox-static slapd ldap-utils docker-registry git curl iptables openssl
        iproute2 chromium chromium-driver prometheus nginx systemd debootstrap dpkg-dev python3-aiosmtpd)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

services_start_dockerd() {
    local dir=$BERTH_SERVICES_DIR/docker
    if [[ -z ${DOCKER_HOST:-} ]] && docker info >/dev/null 2>&1; then
        export DOCKER_HOST=unix:///var/run/docker.sock
        return 0
    fi
    export DOCKER_HOST=unix://$dir/docker.sock
    docker info >/dev/null 2>&1 && return 0
    mkdir -p "$dir"
    log "starting dockerd (data root $dir)"
    _dockerd_launch "$dir"
    _BERTH_STARTED+=("$dir/docker.pid")
    if ! wait_until 60 dockerd _dockerd_up_or_dead; then
        tail -20 "$dir/dockerd.log" >&2
        return 1
    fi
    if ! docker info >/dev/null 2>&1; then
        # dockerd 20.10 panics on a network store left half-written by a
        # daemon killed mid-operation; the store is a cache of networks
        # that only tests created, so start over without it.
        log "dockerd died at start ($(grep -m1 '^panic' "$dir/dockerd.log" || echo 'see log')); resetting its network store"
        rm -f "$dir/data/network/files/local-kv.db"
        _dockerd_launch "$dir"
        wait_until 60 dockerd docker info || { tail -20 "$dir/dockerd.log" >&2; return 1; }
    fi
}

# Succeeds once dockerd answers, or once it has exited (so a crash at start
# is noticed at once rather than after the whole timeout).
_dockerd_up_or_dead() {
    docker info >/dev/null 2>&1 && return 0
    local pid
    pid=$(cat "$BERTH_SERVICES_DIR/docker/docker.pid" 2>/dev/null) || return 0
    ! kill -0 "$pid" 2>/dev/null
}

_dockerd_launch() {
    local dir=$1
    _docker_tls_certs "$dir/tls"
    # There is no GPU here. dockerd accepts NVIDIA device requests only
    # when it finds `nvidia-container-runtime-hook` on its PATH at start,
    # and runc runs that hook before a GPU container starts: this stand-in
    # does nothing, so GPU containers really start and stop (with the
    # device ids Berth lent in their HostConfig), but no card is mounted.
    mkdir -p "$dir/gpu-hook"
    printf '#!/bin/sh\n# Stand-in for the NVIDIA hook (tests only): no card is given.\ncat >/dev/null\nexit 0\n' \
        >"$dir/gpu-hook/nvidia-container-runtime-hook"
    chmod +x "$dir/gpu-hook/nvidia-container-runtime-hook"
    # Berth gives every account its own bridge network; dockerd's default
    # pools hold only ~30, so hand it room for 1024 /24 networks. The TLS
    # listener (client certificates required) is what a remote endpoint
    # looks like; the tests reach it on loopback only.
    PATH="$dir/gpu-hook:$PATH" setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --host "unix://$dir/docker.sock" \
        --host "tcp://127.0.0.1:$BERTH_DOCKER_TLS_PORT" --tlsverify \
        --tlscacert "$dir/tls/ca.pem" --tlscert "$dir/tls/server-cert.pem" --tlskey "$dir/tls/server-key.pem" \
        --default-address-pool base=10.208.0.0/14,size=24 \
        --pidfile "$dir/docker.pid" >>"$dir/dockerd.log" 2>&1 </dev/null &
}

# A throw-away CA, a server certificate for 127.0.0.1 and a client
# certificate (ca.pem, cert.pem, key.pem: the layout docker and GitLab
# Runner expect), made once with openssl.
_docker_tls_certs() {
    local d=$1
    [[ -f $d/cert.pem && -f $d/server-cert.pem ]] && return 0
    mkdir -p "$d"
    (
        cd "$d" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=berth-test-ca" \
            -keyout ca-key.pem -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
            -extfile server.ext -out server-cert.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=berth" -keyout key.pem -out client.csr
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
            -extfile client.ext -out cert.pem
        chmod 600 ./*key.pem
    ) >/dev/null 2>&1
}

# Restarts the daemon behind DOCKER_HOST (tests of recovery use it): ours
# by pid file, a system one through its service manager.
services_restart_dockerd() {
    local dir=$BERTH_SERVICES_DIR/docker pid
    if [[ ${DOCKER_HOST:-} == "unix://$dir/docker.sock" ]]; then
        pid=$(cat "$dir/docker.pid")
        kill "$pid"
        wait_until 60 "dockerd to exit" bash -c "! kill -0 $pid"
        _dockerd_launch "$dir"
    else
        systemctl restart docker 2>/dev/null || service docker restart
    fi
    wait_until 60 dockerd docker info
}

_ldap_answers() {
    ldapsearch -x -LLL -H "ldap://127.0.0.1:$BERTH_LDAP_PORT" -D "$BERTH_LDAP_BIND_DN" \
        -w "$BERTH_LDAP_PASSWORD" -b "$BERTH_LDAP_BASE" -s base dn
}

services_start_slapd() {
    local dir=$BERTH_SERVICES_DIR/ldap
    export BERTH_LDAP_URL=ldap://127.0.0.1:$BERTH_LDAP_PORT
    if _ldap_answers >/dev/null 2>&1; then
        return 0
    fi
    log "starting slapd on $BERTH_LDAP_URL"
    rm -rf "$dir" && mkdir -p "$dir/data"
    cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
database mdb
suffix "$BERTH_LDAP_BASE"
rootdn "$BERTH_LDAP_BIND_DN"
rootpw $BERTH_LDAP_PASSWORD
directory $dir/data
maxsize 67108864
overlay memberof
CONF
    slapadd -q -f "$dir/slapd.conf" -l "$_BERTH_FIXTURES/base.ldif"
    slapd -f "$dir/slapd.conf" -h "$BERTH_LDAP_URL/"
    _BERTH_STARTED+=("$dir/slapd.pid")
    wait_until 30 slapd _ldap_answers
    ldapadd -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" \
        -f "$_BERTH_FIXTURES/accounts.ldif" >/dev/null
}

services_start_registry() {
    local dir=$BERTH_SERVICES_DIR/registry
    export BERTH_REGISTRY=127.0.0.1:$BERTH_REGISTRY_PORT
    curl -sf "http://$BERTH_REGISTRY/v2/" >/dev/null 2>&1 && return 0
    log "starting docker-registry on $BERTH_REGISTRY"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<CONF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $dir/data }
  delete: { enabled: true }
http:
  addr: $BERTH_REGISTRY
CONF
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    _BERTH_STARTED+=("$dir/registry.pid")
    wait_until 30 docker-registry curl -sf "http://$BERTH_REGISTRY/v2/"
}

# A FROM-scratch image with static busybox serving /www on port 8080: no
# registry is reachable here, so every test image is built locally.
services_build_test_image() {
    docker image inspect "$BERTH_TEST_IMAGE" >/dev/null 2>&1 && return 0
    log "building $BERTH_TEST_IMAGE"
    local ctx
    ctx=$(mktemp -d)
    mkdir -p "$ctx/www"
    cp /bin/busybox "$ctx/busybox"
    echo "hello from berth" >"$ctx/www/index.html"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
ENV PATH=/bin
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE
    DOCKER_BUILDKIT=0 docker build -q -t "$BERTH_TEST_IMAGE" "$ctx" >/dev/null 2>&1
    rm -rf "$ctx"
    docker image inspect "$BERTH_TEST_IMAGE" >/dev/null
}

# kubernetes-validate (PyPI, pinned): the Kubernetes OpenAPI schemas of
# every release the manifests are checked against. In its own venv.
BERTH_KUBE_VALIDATE_VERSION=1.37.0
services_install_kube_validate() {
    local venv=${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}/kubernetes-validate-$BERTH_KUBE_VALIDATE_VERSION
    if [[ ! -x $venv/bin/kubernetes-validate ]]; then
        log "installing kubernetes-validate $BERTH_KUBE_VALIDATE_VERSION"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
            python3 -m venv "$venv"
        fi
        "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$BERTH_KUBE_VALIDATE_VERSION"
    fi
    export BERTH_KUBE_VALIDATE=$venv/bin/kubernetes-validate
}

# services_set_password ACCOUNT PASSWORD: the account's directory password
# (the fixture LDIF sets alice's and bob's; this sets them again when slapd
# was started before they were in it).
services_set_password() {
    ldapmodify -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >/dev/null <<LDIF
dn: uid=$1,ou=people,$BERTH_LDAP_BASE
changetype: modify
replace: userPassword
userPassword: $2
LDIF
}

# A second dockerd, the fleet's other host: its own network namespace (two
# daemons in one namespace fight over iptables), data root, exec root and
# socket, reached from here at $BERTH_H2_ADDR over a veth pair. It gets the
# test image too. Exports BERTH_DOCKER2_HOST and BERTH_DOCKER2_ADDR.
services_start_dockerd2() {
    local dir=$BERTH_SERVICES_DIR/docker2
    export BERTH_DOCKER2_HOST=unix://$dir/docker.sock BERTH_DOCKER2_ADDR=$BERTH_H2_ADDR
    if ! ip netns list | grep -qw "$BERTH_NETNS"; then
        ip netns add "$BERTH_NETNS"
        ip link add "$BERTH_NETNS-a" type veth peer name "$BERTH_NETNS-b"
        ip link set "$BERTH_NETNS-b" netns "$BERTH_NETNS"
        ip addr add "$BERTH_H2_HOST_SIDE/24" dev "$BERTH_NETNS-a"
        ip link set "$BERTH_NETNS-a" up
        ip netns exec "$BERTH_NETNS" ip addr add "$BERTH_H2_ADDR/24" dev "$BERTH_NETNS-b"
        ip netns exec "$BERTH_NETNS" ip link set "$BERTH_NETNS-b" up
        ip netns exec "$BERTH_NETNS" ip link set lo up
        ip netns exec "$BERTH_NETNS" ip route add default via "$BERTH_H2_HOST_SIDE"
    fi
    if ! DOCKER_HOST=$BERTH_DOCKER2_HOST docker info >/dev/null 2>&1; then
        mkdir -p "$dir"
        log "starting a second dockerd in network namespace $BERTH_NETNS ($BERTH_H2_ADDR)"
        _dockerd2_launch "$dir"
        _BERTH_STARTED+=("$dir/docker.pid")
        if ! wait_until 60 "the second dockerd" env DOCKER_HOST="$BERTH_DOCKER2_HOST" docker info; then
            tail -20 "$dir/dockerd.log" >&2
            return 1
        fi
    fi
    DOCKER_HOST=$BERTH_DOCKER2_HOST services_build_test_image
}

_dockerd2_launch() {
    local dir=$1
    # nsenter, not `ip netns exec`: the latter remounts /sys and hides the
    # cgroup hierarchy dockerd needs.
    nsenter --net="/var/run/netns/$BERTH_NETNS" setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
        --host "unix://$dir/docker.sock" --default-address-pool base=10.216.0.0/14,size=24 \
        --pidfile "$dir/docker.pid" >>"$dir/dockerd.log" 2>&1 </dev/null &
}

# Stops or starts the second dockerd (host-failure tests).
services_stop_dockerd2() {
    local dir=$BERTH_SERVICES_DIR/docker2 pid
    pid=$(cat "$dir/docker.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    wait_until 60 "the second dockerd to exit" bash -c "! kill -0 $pid"
}

# chromedriver for the console's browser tests (headless Chromium; as root
# Chromium needs --no-sandbox, which the tests pass).
services_start_webdriver() {
    local dir=$BERTH_SERVICES_DIR/webdriver
    export BERTH_WEBDRIVER=http://127.0.0.1:$BERTH_WEBDRIVER_PORT
    curl -sf "$BERTH_WEBDRIVER/status" >/dev/null 2>&1 && return 0
    log "starting chromedriver on $BERTH_WEBDRIVER"
    mkdir -p "$dir"
    chromedriver --port="$BERTH_WEBDRIVER_PORT" >"$dir/chromedriver.log" 2>&1 &
    echo $! >"$dir/chromedriver.pid"
    _BERTH_STARTED+=("$dir/chromedriver.pid")
    wait_until 30 chromedriver curl -sf "$BERTH_WEBDRIVER/status"
}

services_up() {
    services_install
    services_start_dockerd
    services_start_slapd
    services_start_registry
    services_build_test_image
    services_start_dockerd2
    services_start_webdriver
    export BERTH_SERVICES_DIR BERTH_LDAP_BASE BERTH_LDAP_BIND_DN BERTH_LDAP_PASSWORD BERTH_TEST_IMAGE
    # The TLS listener exists when this script started dockerd.
    if [[ ${DOCKER_HOST:-} == "unix://$BERTH_SERVICES_DIR/docker/docker.sock" ]]; then
        export BERTH_DOCKER_TLS="tcp://127.0.0.1:$BERTH_DOCKER_TLS_PORT"
        export BERTH_DOCKER_TLS_DIR=$BERTH_SERVICES_DIR/docker/tls
    fi
}

# Stops what this shell started, newest first.
services_stop_started() {
    local i pidfile pid
    for ((i = ${#_BERTH_STARTED[@]} - 1; i >= 0; i--)); do
        pidfile=${_BERTH_STARTED[i]}
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || true
        wait_until 30 "exit of $pidfile" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    done
    _BERTH_STARTED=()
}

# The previous release's `reconciler`, for the upgrade test: built once
# from the commit RELEASES names (not a checkout: `git archive` of that
# commit) into the tools cache. Exports BERTH_PREVIOUS_RECONCILER.
BERTH_PREVIOUS_RELEASE=${BERTH_PREVIOUS_RELEASE:-v0.1.0}
services_build_previous_release() {
    local root commit tools out src start=$SECONDS
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    commit=$(awk -v r="$BERTH_PREVIOUS_RELEASE" '$1 == r { print $2 }' "$root/RELEASES")
    [[ -n $commit ]] || { log "RELEASES names no $BERTH_PREVIOUS_RELEASE"; return 1; }
    tools=${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools}
    out=$tools/berth-$BERTH_PREVIOUS_RELEASE-${commit:0:12}
    export BERTH_PREVIOUS_RECONCILER=$out/reconciler
    [[ -x $BERTH_PREVIOUS_RECONCILER ]] && return 0
    if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
        git -C "$root" fetch -q origin "$commit" ||
            { log "commit $commit of $BERTH_PREVIOUS_RELEASE is not in this clone"; return 1; }
    fi
    log "building $BERTH_PREVIOUS_RELEASE's reconciler (${commit:0:12}) for the upgrade test"
    src=$out.src
    rm -rf "$src" && mkdir -p "$src" "$out"
    git -C "$root" archive "$commit" | tar -x -C "$src" || return 1
    (cd "$src" && BERTH_GIT_REVISION=$BERTH_PREVIOUS_RELEASE CARGO_TARGET_DIR="$out/target" \
        cargo build -q --locked -p berth-reconciler) || return 1
    cp "$out/target/debug/reconciler" "$BERTH_PREVIOUS_RECONCILER"
    rm -rf "$src" "$out/target"
    log "$BERTH_PREVIOUS_RELEASE built in $((SECONDS - start)) s"
}

# cargo-deb, which builds the Debian package the packaging test installs.
BERTH_CARGO_DEB_VERSION=3.8.0
services_install_cargo_deb() {
    if [[ $(cargo deb --version 2>/dev/null) == "cargo-deb $BERTH_CARGO_DEB_VERSION" ]]; then
        return 0
    fi
    log "installing cargo-deb $BERTH_CARGO_DEB_VERSION"
    cargo install -q --locked cargo-deb --version "=$BERTH_CARGO_DEB_VERSION"
}

# A Debian base for Berth's own container image, made from Debian's
# packages since no Docker Hub is reachable: debootstrap's minbase with git
# and CA certificates, `docker import`ed. The root filesystem is cached
# with the tools. Exports BERTH_BASE_IMAGE.
BERTH_BASE_IMAGE=berth-test/debian-base:bookworm
services_build_base_image() {
    export BERTH_BASE_IMAGE
    docker image inspect "$BERTH_BASE_IMAGE" >/dev/null 2>&1 && return 0
    local tools=${BERTH_TOOLS_DIR:-$HOME/.cache/berth-tools} root
    local tar=$tools/debian-bookworm-minbase-git.tar
    if [[ ! -s $tar ]]; then
        command -v debootstrap >/dev/null ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
        log "making a Debian base image with debootstrap (bookworm, minbase, git)"
        mkdir -p "$tools"
        root=$(mktemp -d)
        debootstrap --variant=minbase --include=git,ca-certificates bookworm "$root" \
            http://deb.debian.org/debian >"$tools/debootstrap.log" 2>&1 ||
            { tail -5 "$tools/debootstrap.log" >&2; rm -rf "$root"; return 1; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
            "$root"/usr/share/doc/* "$root"/usr/share/man/*
        tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
        rm -rf "$root"
    fi
    docker import "$tar" "$BERTH_BASE_IMAGE" >/dev/null
}

# mdBook 0.4 and mdbook-linkcheck 0.7.7 for the documentation site
# (mdbook-linkcheck does not work with mdbook 0.5).
BERTH_MDBOOK_VERSION=0.4.52
BERTH_LINKCHECK_VERSION=0.7.7
services_install_mdbook() {
    if [[ $(mdbook --version 2>/dev/null) != "mdbook v$BERTH_MDBOOK_VERSION" ]]; then
        log "installing mdbook $BERTH_MDBOOK_VERSION"
        cargo install -q --locked mdbook --version "=$BERTH_MDBOOK_VERSION"
    fi
    if ! command -v mdbook-linkcheck >/dev/null ||
        [[ $(mdbook-linkcheck --version 2>/dev/null) != *"$BERTH_LINKCHECK_VERSION"* ]]; then
        log "installing mdbook-linkcheck $BERTH_LINKCHECK_VERSION"
        cargo install -q --locked mdbook-linkcheck --version "=$BERTH_LINKCHECK_VERSION"
    fi
}
