//! The `reconciler` binary: parse arguments, call the library, map the
//! outcome to an exit code (0 ok, 1 changes/invalid, 2 error).

use std::process::ExitCode;

fn main() -> ExitCode {
    berth_reconciler::edges::cli::main()
}
