//! Endpoint secrets and the signature headers of a delivery: the Standard Webhooks
//! `webhook-*` headers, the deprecated `OfferHub-Signature`, new `whsec_…` secrets and
//! opening a stored (sealed) secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::vault::Vault;

/// The HMAC key of a `whsec_…` secret: the base64-decoded part after `whsec_` (Standard
/// Webhooks). A secret that does not decode (none is issued that way) is keyed with its
/// whole string, so a delivery is still signed rather than dropped.
pub fn secret_key(secret: &str) -> Vec<u8> {
    crate::airtm::svix::decode_secret(secret).unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The Standard Webhooks headers of one message: `[("webhook-id", id),
/// ("webhook-timestamp", t), ("webhook-signature", "v1,<base64 HMAC-SHA256(key,
/// "<id>.<t>.<body>")>")]` with `key` = [`secret_key`]`(secret)`.
pub fn standard_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            crate::airtm::svix::sign(&secret_key(secret), id, timestamp, body.as_bytes()),
        ),
    ]
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks).
pub(super) fn new_secret() -> Zeroizing<String> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    Zeroizing::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key.as_ref())
    ))
}

/// Deprecated `OfferHub-Signature` value, sent alongside the Standard Webhooks headers
/// during the 0.x line: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, keyed with
/// the whole secret string.
pub fn legacy_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The associated data an endpoint's secret is sealed with: its id (`whe_…`, never a
/// wallet's id), as [`crate::services::rotation::SEALED_TABLES`] re-seals it.
pub(super) fn secret_aad(endpoint_id: &str) -> String {
    endpoint_id.to_string()
}

/// Opens an endpoint's stored secret. Rows written before secrets were sealed hold the
/// plain `whsec_…` value until [`seal_plaintext_secrets`](super::seal_plaintext_secrets)
/// runs (at `serve` start).
pub(super) fn open_secret(
    vault: &Vault,
    endpoint_id: &str,
    stored: &str,
) -> Result<Zeroizing<String>> {
    if stored.starts_with("whsec_") {
        return Ok(Zeroizing::new(stored.to_string()));
    }
    let bytes = vault.open(&secret_aad(endpoint_id), stored)?;
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::internal(format!(
                "webhook endpoint {endpoint_id}: secret is not UTF-8"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own test vector
    /// (github.com/standard-webhooks/standard-webhooks, libraries' test suites).
    #[test]
    fn standard_signature_matches_the_specification_vector() {
        let h = standard_headers(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(h[0], ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()));
        assert_eq!(h[1], ("webhook-timestamp", "1614265330".into()));
        assert_eq!(h[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_are_32_base64_bytes_and_legacy_ones_still_decode() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(crate::airtm::svix::decode_secret(&s).unwrap().len(), 32);
        assert_ne!(*s, *new_secret());
        // A secret issued before Standard Webhooks: whsec_ + 40 alphanumerics.
        let legacy = format!("whsec_{}", crate::ids::random_alphanumeric(40));
        assert_eq!(secret_key(&legacy).len(), 30);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Independent check with the hmac crate's verify.
        let sig = legacy_signature("whsec_test", 1700000000, "{\"a\":1}");
        let v1 = sig.strip_prefix("t=1700000000,v1=").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        mac.verify_slice(&hex::decode(v1).unwrap()).unwrap();
    }
}
