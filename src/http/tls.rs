//! HTTPS: the `tls_server_config` of the web config file as a rustls server, and a listener
//! that hands axum finished TLS connections.
//!
//! Every new connection asks [`TlsSource::server_config`] for the configuration, which is
//! rebuilt when the web config file or a certificate, key or CA file it names has changed, so
//! renewed certificates apply without a restart (upstream re-reads them on every handshake).
//! Handshakes run in their own tasks, so a slow client never holds up the accept loop.
//! Only rustls' `ring` provider is used: TLS 1.2 and 1.3, no C toolchain beyond `ring`'s.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::serve::Listener;
use parking_lot::Mutex;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::web_config::{
    ClientAuth, FileStamp, Pem, TlsSettings, TlsVersion, WebConfig, WebConfigFile,
};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The rustls configuration of the web config file, rebuilt when any file behind it changes.
pub struct TlsSource {
    file: Arc<WebConfigFile>,
    built: Mutex<Built>,
}

struct Built {
    tls: TlsSettings,
    http2: bool,
    stamps: Vec<Option<FileStamp>>,
    read_at: SystemTime,
    server: Arc<ServerConfig>,
}

impl TlsSource {
    /// `None` when the file configures no TLS (plain HTTP, as upstream). Builds the
    /// configuration once, so a missing certificate or a key that does not match stops
    /// start-up with a message naming the web config file.
    pub fn for_file(file: Arc<WebConfigFile>) -> Result<Option<TlsSource>, String> {
        let config = file.current()?;
        let Some(tls) = &config.tls else {
            return Ok(None);
        };
        let built = build(tls, config.http2)
            .map_err(|error| format!("web config file {}: {error}", file.path().display()))?;
        Ok(Some(TlsSource {
            file,
            built: Mutex::new(built),
        }))
    }

    /// The configuration for a new connection.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let config: Arc<WebConfig> = self.file.current()?;
        let Some(tls) = &config.tls else {
            return Err(format!(
                "web config file {} no longer configures TLS; restart to serve plain HTTP",
                self.file.path().display()
            ));
        };
        let mut built = self.built.lock();
        let stamps = stamps(tls);
        let unchanged = built.tls == *tls
            && built.http2 == config.http2
            && stamps
                .iter()
                .zip(&built.stamps)
                .all(|(now, then)| FileStamp::still_matches(*now, *then, built.read_at));
        if !unchanged {
            *built = build(tls, config.http2).map_err(|error| {
                format!("web config file {}: {error}", self.file.path().display())
            })?;
            tracing::info!("TLS configuration reloaded");
        }
        Ok(built.server.clone())
    }
}

/// The stamps of the files behind `tls` (inline PEM is part of `TlsSettings` itself).
fn stamps(tls: &TlsSettings) -> Vec<Option<FileStamp>> {
    [Some(&tls.cert), Some(&tls.key), tls.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|pem| match pem {
            Pem::File(path) => Some(FileStamp::of(path)),
            Pem::Inline(_) => None,
        })
        .collect()
}

fn build(tls: &TlsSettings, http2: bool) -> Result<Built, String> {
    let stamps = stamps(tls);
    let read_at = SystemTime::now();
    let provider = Arc::new(provider(tls));
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| (tls.min_version..=tls.max_version).contains(version))
    .map(|(_, supported)| supported)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|error| format!("tls_server_config: {error}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem_bytes(&tls.cert, "cert_file")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("tls_server_config: cert is not valid PEM: {error}"))?;
    if certs.is_empty() {
        return Err("tls_server_config: no certificate found in cert_file (or cert)".into());
    }
    let key =
        PrivateKeyDer::from_pem_slice(&pem_bytes(&tls.key, "key_file")?).map_err(|error| {
            format!("tls_server_config: no private key in key_file (or key): {error}")
        })?;
    let builder = builder.with_client_cert_verifier(client_verifier(tls, &provider)?);
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|error| format!("tls_server_config: certificate and key: {error}"))?;
    server.ignore_client_order = tls.prefer_server_cipher_suites;
    server.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Built {
        tls: tls.clone(),
        http2,
        stamps,
        read_at,
        server: Arc::new(server),
    })
}

/// ring's provider narrowed to the configured TLS 1.2 suites and curves, in their order.
fn provider(tls: &TlsSettings) -> CryptoProvider {
    let mut provider = ring::default_provider();
    if !tls.cipher_suites.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = ring::DEFAULT_CIPHER_SUITES
            .iter()
            .copied()
            .filter(|suite| matches!(suite, SupportedCipherSuite::Tls13(_)))
            .collect();
        suites.extend(
            tls.cipher_suites
                .iter()
                .filter_map(|name| tls12_suite(name)),
        );
        provider.cipher_suites = suites;
    }
    if !tls.curve_preferences.is_empty() {
        provider.kx_groups = tls
            .curve_preferences
            .iter()
            .filter_map(|name| curve(name))
            .collect();
    }
    provider
}

/// A TLS 1.2 suite by its Go name ([`crate::web_config::TLS12_CIPHER_SUITES`]).
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// A key-exchange group by its Go name ([`crate::web_config::CURVES`]).
fn curve(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    Some(match name {
        "X25519" => ring::kx_group::X25519,
        "CurveP256" => ring::kx_group::SECP256R1,
        "CurveP384" => ring::kx_group::SECP384R1,
        _ => return None,
    })
}

fn pem_bytes(pem: &Pem, field: &str) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(path) => std::fs::read(path).map_err(|error| {
            format!(
                "tls_server_config: cannot read {field} {}: {error}",
                path.display()
            )
        }),
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

fn client_verifier(
    tls: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let ca = tls
            .client_ca
            .as_ref()
            .ok_or("tls_server_config: client_ca_file is required")?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem_bytes(ca, "client_ca_file")?) {
            let cert = cert.map_err(|error| {
                format!("tls_server_config: client_ca_file is not valid PEM: {error}")
            })?;
            roots
                .add(cert)
                .map_err(|error| format!("tls_server_config: client_ca_file: {error}"))?;
        }
        if roots.is_empty() {
            return Err("tls_server_config: no certificate found in client_ca_file".into());
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|error| format!("tls_server_config: client_ca_file: {error}"))
    };
    let unverified = |mandatory: bool| -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyClientCert {
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        })
    };
    Ok(match tls.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert => unverified(false),
        ClientAuth::RequireAnyClientCert => unverified(true),
        ClientAuth::VerifyClientCertIfGiven => verified(true)?,
        ClientAuth::RequireAndVerifyClientCert => verified(false)?,
    })
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for
/// (and, when mandatory, required) but not checked against any CA; the client still has to
/// prove it holds the certificate's key. Upstream documents both as insecure.
struct AnyClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AnyClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyClientCert")
            .field("mandatory", &self.mandatory)
            .finish()
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Wraps a listener: accepts connections, runs each TLS handshake in its own task, and
/// yields the connections whose handshake succeeded. Failed handshakes (plain HTTP on the
/// TLS port, a missing or untrusted client certificate) close the connection and are
/// logged at debug level.
pub struct TlsListener<L: Listener> {
    local_addr: L::Addr,
    ready: mpsc::Receiver<(TlsStream<L::Io>, L::Addr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl<L> TlsListener<L>
where
    L: Listener,
    L::Addr: Clone + fmt::Debug,
{
    pub fn new(mut inner: L, source: Arc<TlsSource>) -> std::io::Result<TlsListener<L>> {
        let local_addr = inner.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (io, peer) = inner.accept().await;
                let (source, sender) = (source.clone(), sender.clone());
                tokio::spawn(async move {
                    let config = match source.server_config() {
                        Ok(config) => config,
                        Err(error) => {
                            tracing::error!(%error, "Refusing a TLS connection");
                            return;
                        }
                    };
                    let handshake = TlsAcceptor::from(config).accept(io);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => {
                            // An error means the server has stopped: drop the connection.
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(?peer, %error, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local_addr,
            ready,
            accept_task,
        })
    }
}

impl<L: Listener> Drop for TlsListener<L> {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl<L> Listener for TlsListener<L>
where
    L: Listener,
    L::Addr: Clone + Sync,
{
    type Io = TlsStream<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_pem_is_built_once() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let indent = |pem: &str| pem.replace('\n', "\n    ");
        let dir = std::env::temp_dir().join(format!("pgw-tls-inline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        std::fs::write(
            &path,
            format!(
                "tls_server_config:\n  cert: |\n    {}\n  key: |\n    {}\n\
                 http_server_config:\n  http2: false\n",
                indent(&cert.pem()),
                indent(&key.serialize_pem())
            ),
        )
        .unwrap();
        let file = Arc::new(WebConfigFile::load(&path).unwrap());
        let source = TlsSource::for_file(file).unwrap().expect("TLS configured");
        let first = source.server_config().unwrap();
        assert!(Arc::ptr_eq(&first, &source.server_config().unwrap()));
        assert_eq!(first.alpn_protocols, vec![b"http/1.1".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cipher_suites_narrow_tls12_only_and_keep_their_order() {
        let mut settings = TlsSettings {
            cert: Pem::Inline(String::new()),
            key: Pem::Inline(String::new()),
            client_ca: None,
            client_auth: ClientAuth::NoClientCert,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: vec![
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
                "TLS_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            ],
            prefer_server_cipher_suites: true,
            curve_preferences: vec!["CurveP384".into()],
        };
        let provider = provider(&settings);
        let names: Vec<String> = provider
            .cipher_suites
            .iter()
            .map(|suite| format!("{:?}", suite.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ]
        );
        assert_eq!(provider.kx_groups.len(), 1);
        assert_eq!(provider.kx_groups[0].name(), rustls::NamedGroup::secp384r1);
        settings.cipher_suites.clear();
        assert_eq!(
            super::provider(&settings).cipher_suites.len(),
            ring::DEFAULT_CIPHER_SUITES.len()
        );
    }
}
