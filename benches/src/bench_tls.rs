//! `depot-bench http --tls`: the same measurement over HTTPS, the proxy and
//! the bare ceiling alike serving a certificate made for the run (rcgen,
//! for 127.0.0.1), the load generator trusting it alone. HTTP/1.1 is
//! offered, so the load is the plain run's, with TLS added.
//!
//! Set once for the run ([`enable`]); the helpers that build URLs, start
//! servers and make clients read it, so every phase follows it.

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
};

use depot_broker::tls::ClientTls;
use rustls::ClientConfig;
use tempfile::TempDir;

pub struct BenchTls {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// For the minimal client's connections.
    pub client: ClientTls,
    /// For awc.
    awc: Arc<ClientConfig>,
}

static TLS: OnceLock<BenchTls> = OnceLock::new();

/// Makes the run's certificate and turns HTTPS on for the rest of the run.
pub fn enable() -> Result<(), String> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key, generated.key_pair.serialize_pem()).map_err(|e| e.to_string())?;
    let mut awc = depot_broker::tls::client_config_trusting(Some(&cert))?;
    awc.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = BenchTls {
        client: ClientTls::new(Some(&cert))?,
        _dir: dir,
        cert,
        key,
        awc: Arc::new(awc),
    };
    TLS.set(tls).map_err(|_| "TLS was enabled twice".to_owned())
}

pub fn get() -> Option<&'static BenchTls> {
    TLS.get()
}

/// `https` with `--tls`, else `http`.
pub fn scheme() -> &'static str {
    if get().is_some() { "https" } else { "http" }
}

/// The flags that make a server (the proxy, the bare ceiling) serve the
/// run's certificate; none without `--tls`.
pub fn server_args() -> Vec<String> {
    get().map_or_else(Vec::new, |tls| {
        vec![
            "--tls-cert".into(),
            tls.cert.display().to_string(),
            "--tls-key".into(),
            tls.key.display().to_string(),
        ]
    })
}

/// An awc client (a pool of at most `limit` connections) trusting the
/// run's certificate with `--tls`.
pub fn awc_client(limit: usize, timeout: std::time::Duration) -> awc::Client {
    let connector = awc::Connector::new().limit(limit);
    let connector = match get() {
        Some(tls) => connector.rustls_0_23(tls.awc.clone()),
        None => connector,
    };
    awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .finish()
}
