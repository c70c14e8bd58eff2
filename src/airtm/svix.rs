//! Svix webhook signature verification (docs/PROVIDERS.md, Airtm: webhooks; Svix "Verifying
//! payloads manually", <https://docs.svix.com/receiving/verifying-payloads/how-manual>).
//!
//! Airtm delivers webhooks through Svix. Each request carries `svix-id` (the message
//! id, identical on every retry), `svix-timestamp` (Unix seconds) and `svix-signature`
//! (space-separated `v1,<base64>` entries, several during a secret rotation). The
//! signature is HMAC-SHA256, keyed with the base64-decoded secret after its `whsec_`
//! prefix, over `"{svix-id}.{svix-timestamp}.{raw body}"`. One matching entry is enough;
//! comparisons are constant time; timestamps more than [`TOLERANCE_SECS`] away from now
//! (either direction) are refused so a captured request cannot be replayed later.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Largest accepted distance between `svix-timestamp` and now (5 minutes, the Svix
/// libraries' default).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a webhook was refused. The texts name the problem, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SvixError {
    #[error("missing or unreadable {0} header")]
    MissingHeader(&'static str),
    #[error("svix-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("svix-timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("no svix-signature entry matches")]
    NoMatch,
}

/// The signing keys of one endpoint (several during a rotation).
#[derive(Clone)]
pub struct SvixVerifier {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SvixVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvixVerifier")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Decodes one `whsec_…` secret (the prefix is optional) into its key bytes.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The `v1,<base64>` signature of a message: HMAC-SHA256 with `key` over
/// `"{id}.{timestamp}.{body}"`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl SvixVerifier {
    /// A verifier for `secrets`. `Err` names the position of a secret that is not a
    /// `whsec_` + base64 value (the secret itself is never shown).
    pub fn new(secrets: &[Secret]) -> Result<SvixVerifier, String> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            keys.push(decode_secret(s.expose_secret()).ok_or_else(|| {
                format!(
                    "AIRTM_WEBHOOK_SECRET entry {} is not a whsec_ + base64 secret",
                    i + 1
                )
            })?);
        }
        Ok(SvixVerifier { keys })
    }

    /// A verifier without secrets: every delivery is refused.
    pub fn disabled() -> SvixVerifier {
        SvixVerifier { keys: Vec::new() }
    }

    /// Whether any secret is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies one delivery over its raw `body`, at Unix time `now`.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SvixError> {
        let id = id
            .filter(|v| !v.is_empty())
            .ok_or(SvixError::MissingHeader("svix-id"))?;
        let ts_text = timestamp.ok_or(SvixError::MissingHeader("svix-timestamp"))?;
        let signatures = signatures
            .filter(|v| !v.is_empty())
            .ok_or(SvixError::MissingHeader("svix-signature"))?;
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| SvixError::BadTimestamp)?;
        if (now - ts).abs() > TOLERANCE_SECS {
            return Err(SvixError::Stale);
        }
        for key in &self.keys {
            let expected = sign(key, id, ts, body);
            let expected = expected.as_bytes();
            for candidate in signatures.split(' ') {
                if candidate.starts_with("v1,")
                    && candidate.len() == expected.len()
                    && bool::from(candidate.as_bytes().ct_eq(expected))
                {
                    return Ok(());
                }
            }
        }
        Err(SvixError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of Svix's manual-verification page: secret, id, timestamp, body and
    // the signature they produce.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verifier(secrets: &[&str]) -> SvixVerifier {
        SvixVerifier::new(&secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_svix_documentation_example_verifies() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(sign(&key, ID, TS, BODY), SIG);
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(Some(ID), Some("1614265330"), Some(SIG), BODY, TS + 10),
            Ok(())
        );
        // One of several entries is enough (rotation on the sender's side).
        let several = format!("v1,AAAA {SIG}");
        assert_eq!(
            v.verify(Some(ID), Some("1614265330"), Some(&several), BODY, TS),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let v = verifier(&[SECRET]);
        let ts = "1614265330";
        assert_eq!(
            v.verify(
                Some(ID),
                Some(ts),
                Some(SIG),
                br#"{"test": 2432232315}"#,
                TS
            ),
            Err(SvixError::NoMatch)
        );
        assert_eq!(
            v.verify(Some(ID), Some(ts), Some(SIG), BODY, TS + 301),
            Err(SvixError::Stale)
        );
        assert_eq!(
            v.verify(Some(ID), Some(ts), Some(SIG), BODY, TS - 301),
            Err(SvixError::Stale)
        );
        assert_eq!(
            v.verify(None, Some(ts), Some(SIG), BODY, TS),
            Err(SvixError::MissingHeader("svix-id"))
        );
        assert_eq!(
            v.verify(Some(ID), Some("soon"), Some(SIG), BODY, TS),
            Err(SvixError::BadTimestamp)
        );
        assert_eq!(
            v.verify(Some("msg_other"), Some(ts), Some(SIG), BODY, TS),
            Err(SvixError::NoMatch)
        );
        // Another endpoint's secret.
        let other = verifier(&["whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA=="]);
        assert_eq!(
            other.verify(Some(ID), Some(ts), Some(SIG), BODY, TS),
            Err(SvixError::NoMatch)
        );
        // v1 only: a bare base64 value without the scheme is not accepted.
        let bare = SIG.trim_start_matches("v1,");
        assert_eq!(
            v.verify(Some(ID), Some(ts), Some(bare), BODY, TS),
            Err(SvixError::NoMatch)
        );
    }

    #[test]
    fn rotation_accepts_the_old_and_the_new_secret() {
        let v = verifier(&["whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0", SECRET]);
        assert_eq!(
            v.verify(Some(ID), Some("1614265330"), Some(SIG), BODY, TS),
            Ok(())
        );
        assert!(SvixVerifier::new(&[Secret::new("whsec_%%%")]).is_err());
    }
}
