//! The real `depot-broker` entry point, built in this package so that the
//! integration tests get its path from cargo (`CARGO_BIN_EXE_*`).

fn main() -> std::process::ExitCode {
    depot_broker::run::broker_main()
}
