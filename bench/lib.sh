# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced after scripts/lib/services.sh).

# bench_site FILE ROOT STATE FIRST_PORT [EXTRA_YAML]: a site.yaml for the
# benchmark accounts (group `students`), one local dockerd with 1 000 host
# ports from FIRST_PORT, repositories under ROOT, state in STATE. EXTRA_YAML
# (e.g. a `gitlab:` or `registry:` section) goes on top.
bench_site() {
    local file=$1 root=$2 state=$3 first=$4 extra=${5:-}
    cat >"$file" <<YAML
${extra}ldap:
  url: $BERTH_LDAP_URL
  insecure: true
  bind_dn: $BERTH_LDAP_BIND_DN
  bind_password_env: BERTH_LDAP_PASSWORD
  base_dn: ou=people,$BERTH_LDAP_BASE
  allowed_groups: [students]
  cache_ttl: 5m
backends:
  docker:
    - { name: local, endpoint: env, host_ports: { first: $first, last: $((first + 999)) } }
policy:
  allowed_registries: [docker.io]
  quotas:
    students: { containers: 4, cpus: 4, memory: 4Gi }
repositories:
  local: { root: $root }
state_dir: $state
YAML
}

# account N: the benchmark's account name number N.
account() { printf 'bench%04d' "$1"; }

# bench_accounts DIR COUNT: LDAP accounts bench0000… in `students`, each
# with a workspace repository (three containers of the test image with a
# port) under DIR/repos, pushed from DIR/work.
bench_accounts() {
    local dir=$1 count=$2 i a repo work ws
    log "creating $count LDAP accounts and workspace repositories"
    for ((i = 0; i < count; i++)); do
        a=$(account $i)
        printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: Bench\nmail: %s@berth.test\n\n' \
            "$a" "$BERTH_LDAP_BASE" "$a" "$a" "$a"
    done | ldapadd -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >/dev/null 2>&1 || true
    # One change per member: with -c, an existing membership fails alone.
    for ((i = 0; i < count; i++)); do
        printf 'dn: cn=students,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=%s,ou=people,%s\n\n' \
            "$BERTH_LDAP_BASE" "$(account $i)" "$BERTH_LDAP_BASE"
    done | ldapmodify -c -x -H "$BERTH_LDAP_URL" -D "$BERTH_LDAP_BIND_DN" -w "$BERTH_LDAP_PASSWORD" >/dev/null 2>&1 || true
    ws=$(
        printf 'version: 1\ncontainers:\n'
        for c in a b c; do
            printf '  - { name: %s, image: %s, ports: [8080], resources: { cpus: 0.1, memory: 64Mi } }\n' "$c" "$BERTH_TEST_IMAGE"
        done
    )
    for ((i = 0; i < count; i++)); do
        a=$(account $i)
        repo=$dir/repos/$a/workspace.git work=$dir/work/$a
        git init -q --bare -b main "$repo"
        git init -q -b main "$work"
        echo "$ws" >"$work/workspace.yaml"
        git -C "$work" add -A
        git -C "$work" -c user.name=B -c user.email="$a@berth.test" commit -qm ws
        git -C "$work" push -q "$repo" HEAD:main
    done
}
