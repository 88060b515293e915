//! Fuzz target: any bytes given to the workspace parser must produce a value
//! or diagnostics, never a panic, hang or unbounded allocation.
//! Run with `cargo +nightly fuzz run parse_workspace` from `spec/`; the
//! corpus in `corpus/parse_workspace` is replayed by `cargo test` in CI.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ws) = berth_spec::parse_workspace(data) {
        // A spec that parsed must also survive the policy-free accessors.
        for c in &ws.containers {
            let _ = c.state();
            let _ = berth_spec::ImageRef::parse(&c.image);
        }
    }
});
