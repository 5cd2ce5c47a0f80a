//! `depot-broker`: the broker process. See `depot_broker::run`.

fn main() -> std::process::ExitCode {
    depot_broker::run::broker_main()
}
