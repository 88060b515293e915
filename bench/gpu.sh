#!/usr/bin/env bash
# GPU lending over a simulated week (issue 29): 200 accounts in four
# groups (20 heavy users) competing for 16 cards on two hosts, the clock
# injected and every tick Berth's own `lending::step`; the same arrivals
# under fair share and under first come, first served, in the same run.
# Prints a Markdown table: utilisation, asks served, Jain's index of
# card-hours per account, waits per group.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release -p berth-core --example gpu_week
