//! `depot`: the admin CLI. See `depot_broker::cli`.

fn main() -> std::process::ExitCode {
    depot_broker::cli::cli_main()
}
