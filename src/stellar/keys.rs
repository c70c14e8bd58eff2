//! Ed25519 keypairs and their strkeys (`G…` account ids, `S…` seeds), per
//! docs/PROVIDERS.md, Stellar and Horizon: keys and StrKey (via the `stellar-strkey`
//! crate). The seed is zeroised on drop and never printed.

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A wallet keypair. `Debug` shows only the public key.
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public_key())
    }
}

impl Keypair {
    /// A fresh keypair from the OS random generator.
    pub fn random() -> Keypair {
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        Keypair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// From a raw 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// From an `S…` secret strkey; 400 naming `field` when malformed.
    pub fn from_secret(secret: &str, field: &str) -> Result<Keypair> {
        let pk = stellar_strkey::ed25519::PrivateKey::from_string(secret)
            .map_err(|_| Error::validation(field, "is not a Stellar secret key (S…)"))?;
        Ok(Keypair::from_seed(&pk.0))
    }

    /// The raw 32-byte public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The `G…` account id.
    pub fn public_key(&self) -> String {
        account_strkey(&self.public_bytes())
    }

    /// The raw seed (zeroised when dropped). Only the vault should call this.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The `S…` secret strkey (zeroised when dropped).
    pub fn secret(&self) -> Zeroizing<String> {
        let pk = stellar_strkey::ed25519::PrivateKey(*self.seed());
        Zeroizing::new(pk.as_unredacted().to_string().to_string())
    }

    /// Ed25519 signature (64 bytes) of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// `G…` strkey of a raw public key.
pub fn account_strkey(public: &[u8; 32]) -> String {
    stellar_strkey::ed25519::PublicKey(*public)
        .to_string()
        .to_string()
}

/// Parses a `G…` account id (checksum verified); 400 naming `field` otherwise.
pub fn parse_account(s: &str, field: &str) -> Result<[u8; 32]> {
    stellar_strkey::ed25519::PublicKey::from_string(s)
        .map(|k| k.0)
        .map_err(|_| {
            Error::validation(
                field,
                "must be a Stellar account id (G…, 56 characters, valid checksum)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn research_vector() {
        // docs/PROVIDERS.md, Stellar and Horizon: test vectors (checked against
        // py-stellar-base).
        let kp = Keypair::from_seed(&[7u8; 32]);
        assert_eq!(
            kp.public_key(),
            "GDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZA57"
        );
        assert_eq!(
            kp.secret().as_str(),
            "SADQOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQP54X"
        );
        let back = Keypair::from_secret(&kp.secret(), "secret").unwrap();
        assert_eq!(back.public_key(), kp.public_key());
        assert!(!format!("{kp:?}").contains("SADQ"));
    }

    #[test]
    fn bad_strkeys_are_refused() {
        assert!(
            parse_account(
                "GDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZA58",
                "destinationRef"
            )
            .is_err()
        );
        assert!(parse_account("not-an-account", "destinationRef").is_err());
        assert!(Keypair::from_secret("SXXX", "secret").is_err());
    }
}
