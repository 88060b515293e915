#!/usr/bin/env bash
# One command for every test: installs and starts the real services the
# tests need (dockerd, slapd, docker-registry, a local test image, a
# Kubernetes control plane with simulated nodes), runs
# format and lint checks and the whole cargo test suite, then stops what it
# started. Idempotent; safe to run again while services are up.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/services.sh
source scripts/lib/kube.sh

trap services_stop_started EXIT
start=$SECONDS
services_up
services_install_kube_validate
# A real control plane (built from the Kubernetes Go modules on the first
# run, then cached): see docs/kubernetes.md.
services_start_kube
# The previous release, for the upgrade test (built once, then cached).
services_build_previous_release
services_install_cargo_deb
services_build_base_image
services_install_mdbook

# Tests that need a service fail (not skip) when this is set.
export BERTH_E2E_REQUIRED=1

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo test"
cargo test --workspace --no-fail-fast
log "the documentation site (links checked)"
scripts/book.sh
log "all tests passed in $((SECONDS - start)) s"
