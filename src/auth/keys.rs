//! Turning configured key material into verification and signing keys.
//!
//! Each key is pinned to the one algorithm it was configured with; the verifier never lets a
//! token's header choose the algorithm (that is how algorithm-confusion attacks work).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::ExposeSecret;

use crate::config::{KeyAlgorithm, KeyMaterial};

pub fn jwt_algorithm(alg: KeyAlgorithm) -> Algorithm {
    match alg {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::HS256 => Algorithm::HS256,
    }
}

fn kind_name(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::EdDSA => "an Ed25519",
        KeyAlgorithm::ES256 => "a P-256 EC",
        KeyAlgorithm::RS256 => "an RSA",
        KeyAlgorithm::HS256 => "an HS256",
    }
}

fn decoding_key_from_pem(
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

/// The verification key for configured material (already checked when the config was loaded).
pub fn decoding_key(alg: KeyAlgorithm, material: &KeyMaterial) -> Result<DecodingKey, String> {
    match material {
        KeyMaterial::Secret(secret) => {
            Ok(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
        }
        KeyMaterial::PublicPem(pem) => decoding_key_from_pem(alg, pem)
            .map_err(|_| format!("not {} public key in PEM", kind_name(alg))),
    }
}
