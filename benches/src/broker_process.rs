//! The broker under test as a child process (this same executable, hidden
//! `broker` subcommand), so its resident memory is its own.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

pub struct BrokerProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl BrokerProcess {
    pub fn start(data: &Path, password: &str, extra: &[String]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("broker")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("DEPOT_ROOT_PASSWORD", password)
            .env("DEPOT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the broker: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(addr) = line.strip_prefix("depot-broker listening on ") {
                let addr = addr.trim().parse().map_err(|e| format!("{e}"))?;
                std::thread::spawn(move || for _ in lines {});
                return Ok(Self { child, addr });
            }
        }
        Err("the broker exited before listening".into())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set size of a process in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
