//! Servers under test as child processes, so their memory is their own and
//! they get their own threads, as in production: Depot's servers are the
//! shipped binaries built next to this one (`depot-broker`, `depot-proxy`),
//! so what is measured, their RSS included, is what an operator runs; the
//! bare ceiling servers are this executable's hidden subcommands.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

/// Which executable a child server runs.
#[derive(Debug, Clone, Copy)]
pub enum Program {
    /// This executable, with one of its hidden subcommands (the ceilings).
    Bench,
    /// A shipped Depot binary from the same build directory.
    Shipped(&'static str),
}

impl Program {
    fn path(self) -> Result<PathBuf, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        match self {
            Program::Bench => Ok(exe),
            Program::Shipped(name) => {
                let path = exe.with_file_name(name);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(format!(
                        "{} not found: build Depot's servers with the benchmark, \
                         `cargo build --release --bins` (the benchmark runs the shipped binaries)",
                        path.display()
                    ))
                }
            }
        }
    }
}

pub struct ChildServer {
    child: Child,
    /// The addresses announced as `<name> listening on ADDR`, in order.
    pub addrs: Vec<SocketAddr>,
}

impl ChildServer {
    /// Runs `program <args>` and waits for each named server to listen.
    pub fn start(
        program: Program,
        args: &[String],
        env: &[(&str, &str)],
        names: &[&str],
    ) -> Result<Self, String> {
        let mut command = Command::new(program.path()?);
        command
            .args(args)
            .env("DEPOT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {args:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = Vec::new();
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            let prefix = format!("{} listening on ", names[addrs.len()]);
            if let Some(addr) = line.strip_prefix(&prefix) {
                addrs.push(addr.trim().parse().map_err(|e| format!("{e}"))?);
                if addrs.len() == names.len() {
                    std::thread::spawn(move || for _ in lines {});
                    return Ok(Self { child, addrs });
                }
            }
        }
        Err(format!("{args:?} exited before listening"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
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

/// CPU time (user and system, all threads) a process has used, in seconds,
/// from /proc. The kernel counts it in USER_HZ ticks, 100 per second on
/// Linux's x86 and ARM ABIs.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime, the line's fields 14 and 15, at 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// Starts a broker on `data` with root's `password`.
pub fn broker(
    data: &std::path::Path,
    password: &str,
    extra: &[String],
) -> Result<ChildServer, String> {
    let mut args: Vec<String> = vec!["--data".into()];
    args.push(data.display().to_string());
    args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    args.extend(extra.iter().cloned());
    ChildServer::start(
        Program::Shipped("depot-broker"),
        &args,
        &[("DEPOT_ROOT_PASSWORD", password)],
        &["depot-broker"],
    )
}
