//! TLS for Depot's listeners and clients (rustls, the ring provider):
//!
//! - [`server_config`]: a server identity from a PEM certificate chain and
//!   key, for the broker's wire port (`--wire-tls-cert`, `--wire-tls-key`)
//!   and the proxy's HTTPS (`--tls-cert`, `--tls-key`), read again on
//!   SIGHUP ([`ServerIdentity`]).
//! - [`ClientTls`]: how a wire client (the CLI, a remote proxy) checks the
//!   broker it connects to: against given CA certificates, or the public
//!   web PKI roots.
//! - [`outbound_client_config`]: what webhooks and the relay trust with
//!   `--outbound-tls-ca`.
//!
//! Passwords and tokens cross the wire in the Authenticate request, so a
//! broker reached over a network it does not trust serves TLS.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::RwLock;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration for `cert` (a PEM chain, the server's own
/// certificate first) and `key`, or an error naming the file at fault.
/// The files are read again on SIGHUP (see [`ServerIdentity`]). Must run
/// inside an actix system.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let identity = ServerIdentity::load(cert, key)?;
    identity.clone().reload_on_hangup()?;
    Ok(ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(identity))
}

/// A server's certificate and key, read from their files and read again
/// when the process gets SIGHUP, so a renewed certificate is served to new
/// connections without a restart (open ones keep theirs). A reload that
/// fails (a file half-written, a key that does not match) is logged and
/// the identity in use stays.
#[derive(Debug)]
pub struct ServerIdentity {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerIdentity {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified_key(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// Reads the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = certified_key(&self.cert, &self.key)?;
        *self.current.write() = Arc::new(fresh);
        Ok(())
    }

    /// Reloads on every SIGHUP for the life of the process, from a task of
    /// the current (actix) runtime; reading two small files is quick.
    fn reload_on_hangup(self: Arc<Self>) -> Result<(), String> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())
            .map_err(|e| format!("cannot watch SIGHUP to reload certificates: {e}"))?;
        actix_rt::spawn(async move {
            while hangups.recv().await.is_some() {
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded")
                    }
                    Err(error) => {
                        tracing::error!(%error, "TLS certificate not reloaded; the previous one stays")
                    }
                }
            }
        });
        Ok(())
    }
}

impl ResolvesServerCert for ServerIdentity {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// The chain and key of two PEM files as one identity, their keys checked
/// to match.
fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))
}

/// Every certificate of a PEM file; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificates {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// How a wire client checks the broker's certificate. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls(..)")
    }
}

impl ClientTls {
    /// Trusting the CA certificates of the PEM file `ca` (a private CA, or
    /// a self-signed broker certificate), or the web PKI roots without one.
    pub fn new(ca: Option<&Path>) -> Result<Self, String> {
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client_config_trusting(ca)?)),
        })
    }

    /// TLS over `stream` to the broker at `address` (`host:port`; the host,
    /// a name or an IP address, is what the certificate must name).
    pub async fn connect(
        &self,
        address: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let host = host_of(address);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{host}' is not a host name a certificate can name: {e}"),
            )
        })?;
        self.connector.connect(name, stream).await
    }
}

/// What webhooks and the relay trust: the web PKI roots, and the CA
/// certificates of `extra` (`--outbound-tls-ca`: internal services with a
/// private CA). HTTP/2 and HTTP/1.1 offered, as awc's own default does.
pub fn outbound_client_config(extra: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    add_certificates(&mut roots, extra)?;
    let mut config = client_config(roots)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting the CA certificates of the PEM file
/// `ca`, or the web PKI roots without one (no ALPN: set it to taste).
pub fn client_config_trusting(ca: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => add_certificates(&mut roots, path)?,
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    client_config(roots)
}

/// Trusts the CA certificates of a PEM file too.
fn add_certificates(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    for certificate in certificates(path)? {
        roots
            .add(certificate)
            .map_err(|e| format!("{} is not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(())
}

fn client_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The host of `host:port` (`[::1]:6666` gives `::1`).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_is_what_comes_before_the_port() {
        assert_eq!(host_of("broker.example.com:6666"), "broker.example.com");
        assert_eq!(host_of("127.0.0.1:6666"), "127.0.0.1");
        assert_eq!(host_of("[::1]:6666"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }
}
