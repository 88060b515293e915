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
