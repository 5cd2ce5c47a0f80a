//! `depot-proxy`: the HTTP front door. See `depot_http_proxy::startup`.

fn main() -> std::process::ExitCode {
    depot_http_proxy::startup::proxy_main()
}
