#!/usr/bin/env bash
# Builds the documentation site (mdBook) into target/book: generates the
# site.yaml and workspace.yaml references from the JSON Schema and the
# command-line reference from the CLI's help, then `mdbook build`, whose
# linkcheck backend fails on a broken link. Needs mdbook 0.4 and
# mdbook-linkcheck 0.7.7 (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
R=${BERTH_RECONCILER:-target/debug/reconciler}
[[ -x $R ]] || cargo build -q -p berth-reconciler
mkdir -p docs/reference
"$R" schema --site --markdown >docs/reference/site-yaml.md
"$R" schema --markdown >docs/reference/workspace-yaml.md
"$R" man --markdown docs/reference 2>/dev/null
mdbook build docs
