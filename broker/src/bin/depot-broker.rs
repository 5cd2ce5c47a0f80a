//! `depot-broker`: the broker process. See `depot_broker::run`.

/// jemalloc, configured in `.cargo/config.toml` to hand freed pages back
/// within a second: with glibc's allocator the broker's RSS stayed at two to
/// three times its live heap (sled's buffers churn through many sizes on
/// many threads), 257 MiB after 10 M stored messages against 81 MiB on
/// jemalloc, before the memory work that `benches/RESULTS.md` tells.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    depot_broker::run::broker_main()
}
