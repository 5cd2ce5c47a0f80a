//! `depot-proxy`: the HTTP front door. See `depot_http_proxy::startup`.

/// The same allocator as `depot-broker` (why: see there); with no
/// `--broker`, this process is the broker too.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    depot_http_proxy::startup::proxy_main()
}
