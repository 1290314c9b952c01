//! Turning configured key material into verification and signing keys.
//!
//! Each key is pinned to the one algorithm it was configured with; the verifier never lets a
//! token's header choose the algorithm (that is how algorithm-confusion attacks work).

use jsonwebtoken::{Algorithm, DecodingKey};
use secrecy::ExposeSecret;

pub use crate::config::keys::encoding_key_from_pem;
use crate::config::keys::{decoding_key_from_pem, kind_name};
use crate::config::{KeyAlgorithm, KeyMaterial};

pub fn jwt_algorithm(alg: KeyAlgorithm) -> Algorithm {
    match alg {
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::HS256 => Algorithm::HS256,
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
