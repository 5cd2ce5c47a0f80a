//! The real `depot` CLI entry point, built in this package so that the
//! integration tests get its path from cargo (`CARGO_BIN_EXE_*`).

fn main() -> std::process::ExitCode {
    depot_broker::cli::cli_main()
}
