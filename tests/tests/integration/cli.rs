//! The `depot` CLI against a real broker, as an operator would use it.

use std::io::Write;

use serde_json::Value;

use crate::harness::TestBroker;

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "depot failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn stations_produce_and_fetch_from_the_cli() {
    let broker = TestBroker::start();
    let created = stdout(&broker.cli(&[
        "stations",
        "create",
        "cli.orders",
        "--retention-age",
        "3d",
        "--idempotency-window",
        "5m",
    ]));
    assert!(
        created.contains("cli.orders") && created.contains("3days"),
        "{created}"
    );

    let stored = stdout(&broker.cli(&[
        "produce",
        "cli.orders",
        "--header",
        "source=cli",
        "--msg-id",
        "o-1",
        r#"{"id":1}"#,
    ]));
    assert_eq!(stored.trim(), "stored at offset 0");
    let duplicate =
        stdout(&broker.cli(&["--json", "produce", "cli.orders", "--msg-id", "o-1", "{}"]));
    let duplicate: Value = serde_json::from_str(&duplicate).unwrap();
    assert_eq!(
        duplicate,
        serde_json::json!({"offset": 0, "duplicate": true})
    );
    stdout(&broker.cli(&["produce", "cli.orders", "plain words"]));

    let fetched = stdout(&broker.cli(&["--json", "fetch", "cli.orders"]));
    let lines: Vec<Value> = fetched
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["payload"], r#"{"id":1}"#);
    assert_eq!(lines[0]["headers"]["source"], "cli");
    assert_eq!(lines[0]["content_type"], "application/json");
    assert_eq!(lines[1]["payload"], "plain words");
    assert_eq!(lines[1]["content_type"], "text/plain");

    let listed = stdout(&broker.cli(&["--json", "stations", "list"]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "cli.orders");
    assert_eq!(listed[0]["message_count"], 2);
    assert_eq!(listed[0]["first_offset"], 0);
    assert_eq!(listed[0]["last_offset"], 1);
    // The table says the same, under headers that say what each column is.
    let table = stdout(&broker.cli(&["stations", "list"]));
    let cells = |line: &str| -> Vec<String> {
        line.split(['│', '┆'])
            .map(|cell| cell.trim().to_owned())
            .filter(|cell| !cell.is_empty())
            .collect()
    };
    let mut lines = table.lines().filter(|line| line.starts_with('│'));
    let header = cells(lines.next().unwrap());
    let row = cells(lines.next().unwrap());
    let column = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
    assert_eq!(column("messages"), "2", "{table}");
    assert_eq!(column("first"), "0", "{table}");
    assert_eq!(column("last"), "1", "{table}");

    stdout(&broker.cli(&[
        "stations",
        "update",
        "cli.orders",
        "--retention-messages",
        "100",
    ]));
    let info = stdout(&broker.cli(&["--json", "stations", "info", "cli.orders"]));
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["settings"]["retention_messages"], 100);
    assert_eq!(info["settings"]["idempotency_window_ms"], 300_000);

    stdout(&broker.cli(&["stations", "delete", "cli.orders"]));
    let gone = broker.cli(&["stations", "info", "cli.orders"]);
    assert!(!gone.status.success());
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr).trim(),
        "depot: station not found: cli.orders"
    );
}

#[test]
fn produce_a_file_of_json_lines() {
    let broker = TestBroker::start();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..1234 {
        writeln!(file, r#"{{"event":{i}}}"#).unwrap();
    }
    let path = file.path().to_str().unwrap();
    let summary = stdout(&broker.cli(&["--json", "produce", "bulk", "--file", path]));
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["sent"], 1234);
    assert_eq!(summary["failed"], 0);
    let page = stdout(&broker.cli(&["--json", "fetch", "bulk", "--from", "1233", "--count", "5"]));
    let last: Value = serde_json::from_str(page.trim()).unwrap();
    assert_eq!(last["offset"], 1233);
    assert_eq!(last["payload"], r#"{"event":1233}"#);
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let broker = TestBroker::start();
    let bad = broker.cli(&["stations", "create", "Not Valid"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("^[a-z0-9][a-z0-9._-]{0,127}$"), "{stderr}");

    let wrong_password = std::process::Command::new(crate::harness::CLI_BIN)
        .args(["stations", "list"])
        .env("DEPOT_BROKER", broker.addr.to_string())
        .env("DEPOT_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!wrong_password.status.success());
    assert!(String::from_utf8_lossy(&wrong_password.stderr).contains("authentication failed"));
}

#[test]
fn tail_prints_new_messages_as_they_arrive() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let broker = TestBroker::start();
    stdout(&broker.cli(&["produce", "tailed", "\"before\""]));
    let mut tail = Command::new(crate::harness::CLI_BIN)
        .args(["--json", "tail", "tailed"])
        .env("DEPOT_BROKER", broker.addr.to_string())
        .env("DEPOT_PASSWORD", crate::harness::ROOT_PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    // tail subscribes from the newest message on; produce until one shows up
    // (the first produce may race the subscription).
    let reader = std::thread::spawn(move || lines.next().unwrap().unwrap());
    for i in 0.. {
        stdout(&broker.cli(&["produce", "tailed", &format!("{{\"after\":{i}}}")]));
        if reader.is_finished() {
            break;
        }
        assert!(i < 100, "tail printed nothing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let line: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert!(line["offset"].as_u64().unwrap() >= 1, "{line}");
    assert!(
        line["payload"].as_str().unwrap().starts_with("{\"after\":"),
        "{line}"
    );
    tail.kill().unwrap();
    tail.wait().unwrap();
}

#[test]
fn fetch_waits_for_the_first_message_with_wait() {
    let broker = TestBroker::start();
    stdout(&broker.cli(&["stations", "create", "cli.later"]));
    std::thread::scope(|scope| {
        let waiting =
            scope.spawn(|| stdout(&broker.cli(&["--json", "fetch", "cli.later", "--wait", "20s"])));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(!waiting.is_finished(), "fetch answered before a message");
        stdout(&broker.cli(&["produce", "cli.later", r#"{"late":true}"#]));
        let fetched = waiting.join().unwrap();
        let message: Value = serde_json::from_str(fetched.trim()).unwrap();
        assert_eq!(message["payload"], r#"{"late":true}"#);
    });
    // Nothing at the offset: nothing printed once the wait is over.
    let none = stdout(&broker.cli(&["fetch", "cli.later", "--from", "1", "--wait", "300ms"]));
    assert_eq!(none, "");
}
