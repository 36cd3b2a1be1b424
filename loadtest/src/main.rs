//! `weir-loadtest`: the OTLP load generator and capacity-planning harness. Its generator, open/closed
//! loop and sweep modes arrive with their own issue; until then the binary says so instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "weir-loadtest {}: the load generator is not built yet (tracked in its own issue); \
         use `cargo bench -p weir-benches` for in-process measurements",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
