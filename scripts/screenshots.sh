#!/usr/bin/env bash
# Refreshes docs/screenshots/ from the screenshots the console's browser
# and CLI tests save under target/screenshots/ (run scripts/test.sh, or
# `cargo test -p berth-tests --test console` with the services up, first).
set -euo pipefail
cd "$(dirname "$0")/.."
src=target/screenshots
[[ -d $src ]] || { echo "no $src: run the console tests first" >&2; exit 1; }
mkdir -p docs/screenshots
for f in login workspace workspace-rejected logs terminal files images volumes usage admin-usage gpu-waiting admin-gpus downloads cli-diff cli-apply; do
    cp "$src/$f.png" "docs/screenshots/$f.png"
done
echo "docs/screenshots/ refreshed from $src"
