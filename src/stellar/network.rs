//! The network a deployment talks to. Its passphrase is bound into every signature
//! (docs/PROVIDERS.md, Stellar and Horizon: networks): signing for the wrong network fails with
//! `tx_bad_auth`. Testnet and mainnet passphrases are fixed; the sandbox publishes its
//! own at Horizon's root (`network_passphrase`), which [`crate::stellar::horizon::Horizon::network_passphrase`]
//! reads and checks.

use sha2::{Digest, Sha256};

use crate::config::Network;

pub const TESTNET_PASSPHRASE: &str = "Test SDF Network ; September 2015";
pub const MAINNET_PASSPHRASE: &str = "Public Global Stellar Network ; September 2015";

/// A network passphrase and its id (`sha256(passphrase)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StellarNetwork {
    pub passphrase: String,
    pub id: [u8; 32],
}

impl StellarNetwork {
    pub fn from_passphrase(passphrase: &str) -> StellarNetwork {
        StellarNetwork {
            passphrase: passphrase.to_string(),
            id: Sha256::digest(passphrase.as_bytes()).into(),
        }
    }

    /// The fixed passphrase of testnet/mainnet; `None` for the sandbox.
    pub fn for_config(network: Network) -> Option<StellarNetwork> {
        match network {
            Network::Testnet => Some(Self::from_passphrase(TESTNET_PASSPHRASE)),
            Network::Mainnet => Some(Self::from_passphrase(MAINNET_PASSPHRASE)),
            Network::Sandbox => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_ids_match_research() {
        assert_eq!(
            hex::encode(StellarNetwork::from_passphrase(TESTNET_PASSPHRASE).id),
            "cee0302d59844d32bdca915c8203dd44b33fbb7edc19051ea37abedf28ecd472"
        );
        assert_eq!(
            hex::encode(StellarNetwork::from_passphrase(MAINNET_PASSPHRASE).id),
            "7ac33997544e3175d266bd022439b22cdb16508c01163f26e5cb2a3e1045a979"
        );
    }
}
