//! The real `depot-proxy` entry point, built in this package so that the
//! integration tests get its path from cargo (`CARGO_BIN_EXE_*`).

fn main() -> std::process::ExitCode {
    depot_http_proxy::startup::proxy_main()
}
