//! TLS for any protocol: rustls with the ring provider, the system roots plus an optional
//! `ca_file`, an optional SHA-256 pin checked on top of (never instead of) the chain, the
//! handshake on a connected socket (implicit TLS, or after STARTTLS / STLS), and
//! certificate failures told in words.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{NetError, bare_host};
use crate::config::Server;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trusted CA certificates: the system has none and no ca_file is set")]
    NoRoots,
    #[error("cannot build the TLS verifier: {0}")]
    Verifier(String),
}

/// The provider is named explicitly so a second provider in the dependency tree can never
/// make rustls pick one at run time.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read and parsed once per process: reading the few
/// hundred files of /etc/ssl/certs cost every connection about 20 ms. (A daemon sees a
/// changed system store after a restart, as most long-running clients do.)
fn system_roots() -> &'static RootCertStore {
    static ROOTS: std::sync::OnceLock<RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        // A broken system certificate in the store must not stop the others from loading.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

pub fn client_config(server: &Server) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = system_roots().clone();
    if let Some(path) = &server.ca_file {
        for cert in read_pem_certs(path)? {
            roots.add(cert).map_err(|e| TlsSetupError::CaFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots);
    }
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
    let verifier = Verifier {
        inner: webpki,
        pin: server.cert_fingerprint,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS session over TCP, with a read buffer between them: rustls reads the socket
/// 4 KiB at a time, so a large download cost one `recvfrom` per 4 KiB (118,000 for
/// 485 MB); the buffer makes it one per [`SOCKET_BUFFER`].
pub type TlsSocket = TlsStream<tokio::io::BufReader<TcpStream>>;

/// The read buffer under TLS. Empty when the handshake starts, so it never holds a
/// byte the server sent before it (STARTTLS: rule 19).
const SOCKET_BUFFER: usize = 64 * 1024;

/// The handshake on a connected socket: the first bytes after TCP for implicit TLS, or
/// the first after the server accepted STARTTLS (IMAP) or STLS (POP3). Without a
/// deadline: the caller sets one.
pub async fn handshake(server: &Server, tcp: TcpStream) -> Result<TlsSocket, NetError> {
    let config = client_config(server).map_err(|e| NetError::Tls(e.to_string()))?;
    let name = ServerName::try_from(bare_host(server).to_owned()).map_err(|e| {
        NetError::Tls(format!(
            "`{}` is not a valid TLS server name: {e}",
            server.host
        ))
    })?;
    TlsConnector::from(config)
        .connect(
            name,
            tokio::io::BufReader::with_capacity(SOCKET_BUFFER, tcp),
        )
        .await
        .map_err(|e| {
            let at = format!("{}:{}", server.host, server.port);
            if dropped(&e) {
                // A server restarting, a proxy or a flaky link: worth another try.
                NetError::Connect(format!(
                    "{at}: the connection dropped during the TLS handshake: {e}"
                ))
            } else {
                NetError::Tls(format!("{at}: {}", explain(&e)))
            }
        })
}

/// A handshake that failed because the link went away, not because TLS refused: no
/// rustls error inside, and a reset, an abort or an end of stream.
fn dropped(err: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    let tls = err
        .get_ref()
        .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some());
    !tls && matches!(
        err.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe
    )
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let err = |reason: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The SHA-256 of a certificate's DER encoding, as `cert_fingerprint` spells it.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    let hex: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}

/// Full chain and host name verification by webpki first. A certificate no trusted CA
/// issued is then told apart when it issued itself, so the message says "self-signed";
/// last, the leaf must match the pin if one is set: a pin adds a check, never replaces one.
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    pin: Option<[u8; 32]>,
}

/// Refusals webpki has no words for; [`explain`] shows their text as is.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(
        "the server's certificate is self-signed: no trusted CA issued it; if you know it is this server's, set ca_file to that certificate (PEM) and pin it with cert_fingerprint"
    )]
    SelfSigned,
    #[error("certificate fingerprint mismatch: expected {expected} (cert_fingerprint), got {got}")]
    PinMismatch { expected: String, got: String },
}

impl Refusal {
    fn into_error(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(self),
        )))
    }
}

/// Whether the certificate names itself as its issuer.
fn self_issued(cert: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.issuer() == c.subject())
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
                    if intermediates.is_empty() && self_issued(end_entity) =>
                {
                    Refusal::SelfSigned.into_error()
                }
                other => other,
            })?;
        if let Some(pin) = self.pin {
            let seen = fingerprint(end_entity.as_ref());
            if seen != pin {
                return Err(Refusal::PinMismatch {
                    expected: fingerprint_hex(&pin),
                    got: fingerprint_hex(&seen),
                }
                .into_error());
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Say in words which check failed, so the user knows what to fix.
pub fn explain(err: &std::io::Error) -> String {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return err.to_string();
    };
    use rustls::CertificateError as C;
    match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => "the server's certificate is not signed by a trusted CA (a private CA?); set ca_file to that CA's PEM file".into(),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { expected, presented }) => format!(
            "the server's certificate is not valid for host {} (it is for {}); wrong host?",
            expected.to_str(),
            if presented.is_empty() {
                "no host name".to_owned()
            } else {
                presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ")
            }
        ),
        rustls::Error::InvalidCertificate(C::NotValidForName) => "the server's certificate is not valid for this host name (wrong host?)".into(),
        rustls::Error::InvalidCertificate(C::ExpiredContext { not_after, .. }) => format!(
            "the server's certificate has expired (on {})",
            expiry(not_after.as_secs())
        ),
        rustls::Error::InvalidCertificate(C::Expired) => "the server's certificate has expired".into(),
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => "the server's certificate is not valid yet (check the clock)".into(),
        rustls::Error::InvalidCertificate(C::Revoked) => "the server's certificate is revoked".into(),
        rustls::Error::InvalidCertificate(C::Other(other)) => other.0.to_string(),
        other => format!("TLS failed: {other}"),
    }
}

/// rustls reports presented names in their `Debug` form, `DnsName("mail.example.org")`.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
}

/// A certificate's end date as the rest of syncmail prints dates.
fn expiry(unix_secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    crate::model::local_time(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_that_drops_mid_handshake_is_a_network_failure_not_a_tls_one() {
        // Found by the POP3 poller while Dovecot restarted: "connection reset by peer"
        // read as a TLS refusal made the account wait 15 minutes instead of retrying.
        use std::io::{Error, ErrorKind};
        assert!(dropped(&Error::from(ErrorKind::ConnectionReset)));
        assert!(dropped(&Error::new(
            ErrorKind::UnexpectedEof,
            "tls handshake eof"
        )));
        let refused = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(!dropped(&refused));
        let wrapped_reset = Error::new(
            ErrorKind::ConnectionReset,
            rustls::Error::HandshakeNotComplete,
        );
        assert!(
            !dropped(&wrapped_reset),
            "a rustls error inside is TLS's word"
        );
    }

    #[test]
    fn presented_names_lose_their_debug_wrapping() {
        assert_eq!(
            bare_name("DnsName(\"mail.example.org\")"),
            "mail.example.org"
        );
        assert_eq!(bare_name("10.0.0.1"), "10.0.0.1");
    }
}
