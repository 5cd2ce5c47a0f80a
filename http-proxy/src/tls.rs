//! HTTPS for the proxy: the rustls server configuration from a PEM
//! certificate chain and key (`--tls-cert`, `--tls-key`). Browsers on
//! HTTPS pages can only call HTTPS and WSS endpoints, so a proxy that
//! browsers reach directly serves TLS itself; behind a TLS-terminating load
//! balancer it does not need to.

use std::path::Path;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// The server configuration for `cert` (a PEM chain, the server's own
/// certificate first) and `key`, or an error naming the file at fault.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate chain {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))
}
