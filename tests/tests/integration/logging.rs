//! Logs: `DEPOT_LOG_FORMAT=json` gives one JSON object per line, and no
//! secret reaches them.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{BROKER_BIN, ROOT_PASSWORD};

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    let data = TempDir::new().unwrap();
    let mut broker = Command::new(BROKER_BIN)
        .arg("--data")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("DEPOT_ROOT_PASSWORD", ROOT_PASSWORD)
        .env("DEPOT_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(broker.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("depot-broker ready");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(!lines.is_empty());
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["timestamp"].is_string(), "{line}");
        assert!(entry["level"].is_string(), "{line}");
        assert!(
            !line.contains(ROOT_PASSWORD),
            "a secret in the logs: {line}"
        );
    }
    let ready: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(ready["fields"]["message"], "depot-broker ready");
    assert!(
        ready["fields"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}
