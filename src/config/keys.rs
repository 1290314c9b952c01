//! Site keys: the algorithm each key is pinned to, its material, and the PEM parsing that
//! checks it at load time. The authentication layer builds its verification and signing keys from
//! what is here, so a key that loads is a key that works.

use std::path::PathBuf;

use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::resolve::{inline_or_file, read_secret_file};
use super::{ConfigError, key_error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum KeyAlgorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

impl KeyAlgorithm {
    pub fn is_symmetric(self) -> bool {
        self == KeyAlgorithm::HS256
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// PEM public key (EdDSA, ES256, RS256), inline or from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// HS256 shared secret, inline or from a file.
    #[serde(default, skip_serializing)]
    pub secret: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// PEM private key, only needed for `puhuri-gateway token issue` with an asymmetric key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
}

#[derive(Debug)]
pub struct KeyConfig {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    pub material: KeyMaterial,
    /// PEM private key for `token issue` (asymmetric keys only).
    pub signing_pem: Option<SecretString>,
    /// The configuration key naming this key, for messages (`sites[0].keys[1]`).
    pub config_key: String,
}

#[derive(Debug)]
pub enum KeyMaterial {
    PublicPem(String),
    Secret(SecretString),
}

pub(super) fn resolve_key(at: &str, key: RawKey) -> Result<KeyConfig, ConfigError> {
    let material = if key.algorithm.is_symmetric() {
        if key.public_key.is_some() || key.public_key_file.is_some() {
            return Err(key_error(
                format!("{at}.public_key"),
                "an HS256 key takes `secret` or `secret_file`, not a public key",
            ));
        }
        let secret = inline_or_file(
            &format!("{at}.secret"),
            key.secret,
            key.secret_file.as_deref(),
        )?
        .ok_or_else(|| {
            key_error(
                format!("{at}.secret_file"),
                "an HS256 key needs `secret_file` (or `secret`)",
            )
        })?;
        if secret.expose_secret().len() < 32 {
            return Err(key_error(
                format!("{at}.secret"),
                "an HS256 secret must be at least 32 bytes; make one with `openssl rand -hex 32`",
            ));
        }
        KeyMaterial::Secret(secret)
    } else {
        if key.secret.is_some() || key.secret_file.is_some() {
            return Err(key_error(
                format!("{at}.secret"),
                "only HS256 keys take a secret; this key needs `public_key_file`",
            ));
        }
        let pem = match (key.public_key, key.public_key_file.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(key_error(
                    format!("{at}.public_key"),
                    "give either `public_key` or `public_key_file`, not both",
                ));
            }
            (Some(pem), None) => pem,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                key_error(
                    format!("{at}.public_key_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            (None, None) => {
                return Err(key_error(
                    format!("{at}.public_key_file"),
                    "this key needs `public_key_file` (or `public_key`) in PEM",
                ));
            }
        };
        let where_ = if key.public_key_file.is_some() {
            format!("{at}.public_key_file")
        } else {
            format!("{at}.public_key")
        };
        check_public_pem(key.algorithm, &pem).map_err(|m| key_error(where_, m))?;
        KeyMaterial::PublicPem(pem)
    };
    let signing_pem = match key.private_key_file.as_deref() {
        None => None,
        Some(_) if key.algorithm.is_symmetric() => {
            return Err(key_error(
                format!("{at}.private_key_file"),
                "HS256 keys sign with their secret; remove private_key_file",
            ));
        }
        Some(path) => {
            let pem = read_secret_file(&format!("{at}.private_key_file"), path)?;
            check_private_pem(key.algorithm, pem.expose_secret())
                .map_err(|m| key_error(format!("{at}.private_key_file"), m))?;
            Some(pem)
        }
    };
    Ok(KeyConfig {
        kid: key.kid,
        algorithm: key.algorithm,
        material,
        signing_pem,
        config_key: at.to_string(),
    })
}

/// How a message names a key of this kind: "an Ed25519", "an RSA".
pub fn kind_name(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::EdDSA => "an Ed25519",
        KeyAlgorithm::ES256 => "a P-256 EC",
        KeyAlgorithm::RS256 => "an RSA",
        KeyAlgorithm::HS256 => "an HS256",
    }
}

/// The verification key in `pem` for `alg` (an error for HS256, which has no PEM).
pub fn decoding_key_from_pem(
    alg: KeyAlgorithm,
    pem: &str,
) -> jsonwebtoken::errors::Result<DecodingKey> {
    let bytes = pem.as_bytes();
    match alg {
        KeyAlgorithm::EdDSA => DecodingKey::from_ed_pem(bytes),
        KeyAlgorithm::ES256 => DecodingKey::from_ec_pem(bytes),
        KeyAlgorithm::RS256 => DecodingKey::from_rsa_pem(bytes),
        KeyAlgorithm::HS256 => Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()),
    }
}

/// Checks that `pem` is a public key of the kind `alg` needs; the message names what was expected.
pub fn check_public_pem(alg: KeyAlgorithm, pem: &str) -> Result<(), String> {
    decoding_key_from_pem(alg, pem)
        .map(|_| ())
        .map_err(|_| format!("not {} public key in PEM", kind_name(alg)))
}

/// Checks that `pem` is a private key of the kind `alg` needs.
pub fn check_private_pem(alg: KeyAlgorithm, pem: &str) -> Result<(), String> {
    encoding_key_from_pem(alg, pem)
        .map(|_| ())
        .map_err(|_| format!("not {} private key in PEM (PKCS#8)", kind_name(alg)))
}

/// The signing key in `pem` (PKCS#8) for `alg` (an error for HS256, which has no PEM).
pub fn encoding_key_from_pem(
    alg: KeyAlgorithm,
    pem: &str,
) -> jsonwebtoken::errors::Result<EncodingKey> {
    let bytes = pem.as_bytes();
    match alg {
        KeyAlgorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
        KeyAlgorithm::ES256 => EncodingKey::from_ec_pem(bytes),
        KeyAlgorithm::RS256 => EncodingKey::from_rsa_pem(bytes),
        KeyAlgorithm::HS256 => Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()),
    }
}
