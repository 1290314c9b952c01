//! HTTPS on `listen` (`[tls]`): rustls with the ring provider, TLS 1.2 and 1.3, HTTP/1.1.
//!
//! The certificate chain and key are read from two PEM files at start (a bad file stops the
//! start with a one-line reason) and again whenever either file changes (checked every
//! `tls.reload_interval`, by modification time and size) or the process gets `SIGHUP`. A
//! renewed certificate is served to new connections at once; connections already open keep
//! theirs. A reload that fails (a half-written file, a key that does not match) is logged and
//! the certificate in use is kept. Key material never appears in logs or errors: only the file
//! names and what is wrong with them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What identifies one version of the two files: modification time and length of each.
type Stamp = [(Option<SystemTime>, u64); 2];

/// The served certificate and key, replaceable while the server runs.
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [one(cert), one(key)]
}

/// Reads and checks the pair: a chain of at least one certificate, a private key rustls can
/// sign with, and the key belonging to the first certificate.
fn read(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| {
            format!(
                "cannot read the certificate file {}: {e}",
                cert_file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "the certificate file {} is not valid PEM: {e}",
                cert_file.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "the certificate file {} holds no certificate",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!(
            "the key file {} holds no usable private key: {e}",
            key_file.display()
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the key in {} cannot be used: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        format!(
            "the key in {} does not belong to the certificate in {}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(certified)
}

impl Certificates {
    /// Reads the pair; the error names the file and the problem.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Certificates>, String> {
        let before = stamp(cert_file, key_file);
        let certified = read(cert_file, key_file)?;
        Ok(Arc::new(Certificates {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(certified)),
            stamp: Mutex::new(before),
        }))
    }

    /// Reads the files again if they changed (or always, with `force`). `Ok(true)`: a new
    /// certificate is served; `Ok(false)`: nothing changed; `Err`: the files are not usable
    /// and the certificate in use is kept.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = stamp(&self.cert_file, &self.key_file);
        {
            let last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *last == now {
                return Ok(false);
            }
        }
        let certified = read(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(true)
    }

    /// rustls's server configuration, asking `self` for the certificate of each new connection.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot configure TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reloads on `SIGHUP` and when the files change, until the process ends. A failed reload
    /// is logged as an error and retried at the next change or signal.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let certs = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let forced = match hangup.as_mut() {
                    Some(h) => tokio::select! {
                        _ = h.recv() => true,
                        _ = tick.tick() => false,
                    },
                    None => {
                        tick.tick().await;
                        false
                    }
                };
                #[cfg(not(unix))]
                let forced = {
                    tick.tick().await;
                    false
                };
                match certs.reload(forced) {
                    Ok(true) => tracing::info!(
                        cert_file = %certs.cert_file.display(),
                        "TLS certificate reloaded"
                    ),
                    Ok(false) => {}
                    Err(reason) => tracing::error!(
                        %reason,
                        "TLS certificate not reloaded; the one in use is kept"
                    ),
                }
            }
        });
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
