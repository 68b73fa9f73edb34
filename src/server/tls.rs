//! TLS for the admission port: loading a PEM certificate/key pair, generating a self-signed one,
//! and the resolver that lets a rotated pair take over without a restart.
//!
//! The server's rustls config never changes; it asks [`CertResolver`] for the pair on every
//! handshake, and the resolver hands out whatever [`CertFiles::poll`] last stored. So a
//! cert-manager rotation reaches new connections within one poll interval while open connections
//! keep the pair they started with. A new pair that does not load (half-written files, key that
//! does not match the certificate) is refused with a log line and the old one stays in use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::source::watch::{Stamp, stamp};

/// A certificate/key pair that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    // The cause is said in the message and is not also a `source`: a chain printed with `{:#}`
    // would say it twice.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A PEM section of the certificate file cannot be read.
    #[error("{path}: a PEM certificate cannot be read: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{path}: no PEM certificate found (expected `-----BEGIN CERTIFICATE-----`)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path}: no PEM private key found (expected PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the pair (unsupported key type, key not matching the certificate ...).
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    Pair {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// The server config cannot be built.
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider: ring, whatever other crates in the build enable.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks a PEM certificate chain (leaf first) and its private key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error });
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    parse_pair(&cert_pem, &key_pem).map_err(|e| match e {
        PairError::NoCertificate => TlsError::NoCertificate { path: cert.to_owned() },
        PairError::BadCertificate(reason) => TlsError::BadCertificate { path: cert.to_owned(), reason },
        PairError::NoKey(reason) => TlsError::NoKey { path: key.to_owned(), reason },
        PairError::Pair(reason) => TlsError::Pair { cert: cert.to_owned(), key: key.to_owned(), reason },
    })
}

enum PairError {
    NoCertificate,
    BadCertificate(String),
    NoKey(String),
    Pair(String),
}

fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, PairError> {
    // A damaged section is an error, not skipped: serving a chain without one of its
    // certificates fails at the client, far from the cause.
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PairError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(PairError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PairError::NoKey(e.to_string()))?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| PairError::Pair(e.to_string()))?;
    Ok(certified)
}

/// A generated certificate authority and a serving certificate it signed.
#[derive(Clone)]
pub struct SelfSigned {
    /// The CA certificate, PEM: what a client trusts.
    pub ca_pem: String,
    /// The serving certificate, PEM.
    pub cert_pem: String,
    /// The serving certificate's private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned").field("ca_pem", &self.ca_pem).finish_non_exhaustive()
    }
}

impl SelfSigned {
    /// A new CA (named `ca_name`) and a serving certificate for `names` (DNS names or IP
    /// addresses) signed by it. A separate CA, rather than one self-signed leaf, so clients
    /// verify an ordinary chain.
    pub fn generate(ca_name: &str, names: &[&str]) -> Result<Self, TlsError> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.distinguished_name.push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, "podguard");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(Self { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// The serving pair as rustls uses it.
    pub fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        parse_pair(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).map_err(|e| match e {
            PairError::NoCertificate => TlsError::Generate("no certificate generated".into()),
            PairError::BadCertificate(r) | PairError::NoKey(r) | PairError::Pair(r) => TlsError::Generate(r),
        })
    }
}

/// Hands the current pair to every handshake; swapped atomically on rotation.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver serving `pair`.
    pub fn new(pair: CertifiedKey) -> Self {
        Self { current: ArcSwap::from_pointee(pair) }
    }

    /// Serves `pair` to new connections from now on.
    pub fn replace(&self, pair: CertifiedKey) {
        self.current.store(Arc::new(pair));
    }

    /// The pair in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The rustls server config: TLS 1.3 and 1.2 only, no client certificates, HTTP/2 and
/// HTTP/1.1 over ALPN (the API server speaks either), the pair from `resolver`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Watches `--tls-cert`/`--tls-key` and reloads the pair into a [`CertResolver`] when either
/// changes.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    seen: (Stamp, Stamp),
    resolver: Arc<CertResolver>,
}

/// The result of a poll that found the files changed.
#[derive(Debug)]
pub enum Reload {
    /// The new pair is in use.
    Loaded,
    /// The new pair was refused; the old one stays.
    Refused(TlsError),
}

impl CertFiles {
    /// Loads the pair once (an error here is a configuration error) and returns the watcher
    /// and the resolver serving it.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<(Self, Arc<CertResolver>), TlsError> {
        let seen = (stamp(&cert), stamp(&key));
        let resolver = Arc::new(CertResolver::new(load_pair(&cert, &key)?));
        Ok((Self { cert, key, seen, resolver: resolver.clone() }, resolver))
    }

    /// Re-reads the pair if either file changed since the last poll. A refused pair is not
    /// retried until a file changes again (cert-manager writes both; the second write retries).
    pub fn poll(&mut self) -> Option<Reload> {
        let now = (stamp(&self.cert), stamp(&self.key));
        if now == self.seen {
            return None;
        }
        self.seen = now;
        Some(match load_pair(&self.cert, &self.key) {
            Ok(pair) => {
                self.resolver.replace(pair);
                tracing::info!(cert = %self.cert.display(), "serving the new TLS certificate");
                Reload::Loaded
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate refused; still serving the previous one");
                Reload::Refused(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn generated_pair_loads_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = SelfSigned::generate("test ca", &["localhost", "127.0.0.1"]).unwrap();
        let cert = write(dir.path(), "tls.crt", &s.cert_pem);
        let key = write(dir.path(), "tls.key", &s.key_pem);
        let pair = load_pair(&cert, &key).unwrap();
        assert_eq!(pair.cert.len(), 1);
        assert!(s.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn mismatched_and_missing_pairs_are_refused_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = SelfSigned::generate("a", &["localhost"]).unwrap();
        let b = SelfSigned::generate("b", &["localhost"]).unwrap();
        let cert = write(dir.path(), "tls.crt", &a.cert_pem);
        let key = write(dir.path(), "tls.key", &b.key_pem);
        let e = load_pair(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::Pair { .. }), "{e}");
        let empty = write(dir.path(), "empty.crt", "");
        let e = load_pair(&empty, &key).unwrap_err().to_string();
        assert!(e.contains("empty.crt") && e.contains("no PEM certificate"), "{e}");
        let e = load_pair(&dir.path().join("nope.crt"), &key).unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("nope.crt"), "{e}");
        let e = load_pair(&cert, &cert).unwrap_err().to_string();
        assert!(e.contains("no PEM private key"), "{e}");
    }

    /// Each cause of an error chain is said once when the chain is printed whole (`{:#}`, as
    /// `main` prints configuration errors): no message repeats the one of its source.
    fn causes_said_once(e: &(dyn std::error::Error + 'static)) {
        let mut messages = vec![e.to_string()];
        let mut next = e.source();
        while let Some(cause) = next {
            messages.push(cause.to_string());
            next = cause.source();
        }
        for pair in messages.windows(2) {
            assert!(!pair[0].contains(&pair[1]), "{:?} repeats its cause {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn every_error_names_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let e = load_pair(&missing, &missing).unwrap_err();
        causes_said_once(&e);
        let shown = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(shown.matches("No such file or directory").count(), 1, "{shown}");
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let e = crate::server::Error::Bind { addr, error: std::net::TcpListener::bind(addr).unwrap_err() };
        causes_said_once(&e);
        assert_eq!(format!("{:#}", anyhow::Error::from(e)).matches("in use").count(), 1);
    }

    #[test]
    fn a_damaged_pem_certificate_is_an_error_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let s = SelfSigned::generate("a", &["localhost"]).unwrap();
        // A second section whose base64 is broken: before, it was dropped and the chain served
        // without it.
        let damaged = format!("{}-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", s.cert_pem);
        let cert = write(dir.path(), "tls.crt", &damaged);
        let key = write(dir.path(), "tls.key", &s.key_pem);
        let e = load_pair(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::BadCertificate { .. }), "{e}");
        assert!(e.to_string().contains("tls.crt: a PEM certificate cannot be read"), "{e}");
    }

    #[test]
    fn poll_swaps_a_good_pair_and_keeps_the_old_one_on_a_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let a = SelfSigned::generate("a", &["localhost"]).unwrap();
        let b = SelfSigned::generate("b", &["localhost"]).unwrap();
        let cert = write(dir.path(), "tls.crt", &a.cert_pem);
        let key = write(dir.path(), "tls.key", &a.key_pem);
        let (mut files, resolver) = CertFiles::load(cert.clone(), key.clone()).unwrap();
        let first = resolver.current().cert[0].clone();
        assert!(files.poll().is_none(), "unchanged files are not reloaded");

        // Half a rotation: the new certificate next to the old key.
        write(dir.path(), "tls.crt", &format!("{}\n", b.cert_pem));
        assert!(matches!(files.poll(), Some(Reload::Refused(_))));
        assert_eq!(resolver.current().cert[0], first);

        write(dir.path(), "tls.key", &b.key_pem);
        assert!(matches!(files.poll(), Some(Reload::Loaded)));
        assert_ne!(resolver.current().cert[0], first);
    }
}
