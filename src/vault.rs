//! Wallet-secret encryption (docs/ARCHITECTURE.md, Wallets and keys).
//!
//! AES-256-GCM with a fresh 12-byte random nonce per encryption; the wallet id is the
//! associated data, so a sealed secret copied onto another wallet row does not decrypt.
//! A sealed value is `v1.<key id>.<base64url(nonce || ciphertext || tag)>`, where the key
//! id is the first 16 hex characters of `SHA-256("offerhub-vault-key-id" || key)` — it
//! names the key without revealing anything about it. Several keys can be loaded: the
//! current one seals, every loaded one opens (that is how a rotation keeps the daemon
//! working while `offerhub wallet rotate-key` re-encrypts). A vault given a key
//! directory ([`Vault::with_key_dir`]) loads a key it is missing from
//! `<dir>/<key id>.key` the first time a value sealed under it is opened — that is how
//! a running daemon follows a rotation (see [`crate::keystore`]). Errors never contain
//! key material or plaintext.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::Secret;

/// A vault failure. The message names the wallet and key id, never key material or
/// plaintext. Converts to `INTERNAL_ERROR` (logged, not shown) for API callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VaultError {
    pub message: String,
}

fn verr(message: impl Into<String>) -> VaultError {
    VaultError {
        message: message.into(),
    }
}

impl From<VaultError> for crate::error::Error {
    fn from(e: VaultError) -> Self {
        crate::error::Error::internal(e.message)
    }
}

type Result<T> = std::result::Result<T, VaultError>;

const VERSION: &str = "v1";

/// Decoded 32-byte keys by key id, and which one seals.
pub struct Vault {
    keys: RwLock<HashMap<String, Aes256Gcm>>,
    current: String,
    /// Where keys this vault lacks may be found (`<key id>.key`), when set.
    key_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<&String> = keys.keys().collect();
        ids.sort();
        write!(f, "Vault(current={}, keys={ids:?})", self.current)
    }
}

/// The key id of a 32-byte key.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"offerhub-vault-key-id");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

/// Decodes a 64-hex-character key.
pub(crate) fn decode_key(hex_key: &Secret) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        hex::decode(hex_key.expose_secret())
            .map_err(|_| verr("wallet encryption key is not hexadecimal"))?,
    );
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| verr("wallet encryption key must be 32 bytes (64 hex characters)"))?;
    Ok(Zeroizing::new(arr))
}

impl Vault {
    /// A vault sealing with `current` and also opening with `others` (hex keys).
    pub fn new(current: &Secret, others: &[Secret]) -> Result<Vault> {
        let mut keys = HashMap::new();
        let cur = decode_key(current)?;
        let current_id = key_id(&cur);
        keys.insert(current_id.clone(), Aes256Gcm::new((&*cur).into()));
        for o in others {
            let k = decode_key(o)?;
            keys.entry(key_id(&k))
                .or_insert_with(|| Aes256Gcm::new((&*k).into()));
        }
        Ok(Vault {
            keys: RwLock::new(keys),
            current: current_id,
            key_dir: None,
        })
    }

    /// Also loads, on demand, keys saved as `<dir>/<key id>.key` (64 hex characters;
    /// see [`crate::keystore::save_key`]): a value sealed under a key this vault lacks
    /// is opened after reading that key from there.
    pub fn with_key_dir(mut self, dir: impl Into<PathBuf>) -> Vault {
        self.key_dir = Some(dir.into());
        self
    }

    /// A vault holding only the current key (to prove a rotation is complete); it loads
    /// nothing from a key directory.
    pub fn only_current(&self) -> Vault {
        self.only(&[])
    }

    /// A vault holding the current key and the loaded keys named in `also`, nothing
    /// else (to prove a key can be retired).
    pub fn only(&self, also: &[&str]) -> Vault {
        let all = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let keys = all
            .iter()
            .filter(|(id, _)| **id == self.current || also.contains(&id.as_str()))
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        Vault {
            keys: RwLock::new(keys),
            current: self.current.clone(),
            key_dir: None,
        }
    }

    /// The ids of the keys loaded now.
    pub fn loaded_key_ids(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The cipher of key `id`: loaded, or read from the key directory now.
    fn cipher(&self, id: &str) -> Option<Aes256Gcm> {
        if let Some(c) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Some(c.clone());
        }
        let key = crate::keystore::load_key(self.key_dir.as_deref()?, id).ok()??;
        let cipher = Aes256Gcm::new((&*key).into());
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), cipher.clone());
        tracing::info!(
            key_id = id,
            "loaded a wallet encryption key from the key directory"
        );
        Some(cipher)
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext` for `wallet_id` under the current key.
    pub fn seal(&self, wallet_id: &str, plaintext: &[u8]) -> Result<String> {
        let cipher = self
            .cipher(&self.current)
            .ok_or_else(|| verr("vault has no current key"))?;
        let nonce_bytes: [u8; 12] = rand::random();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: wallet_id.as_bytes(),
                },
            )
            .map_err(|_| verr("wallet secret encryption failed"))?;
        let mut blob = Vec::with_capacity(12 + ct.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ct);
        Ok(format!(
            "{VERSION}.{}.{}",
            self.current,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// The key id a sealed value names.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some(VERSION), Some(id)) => Some(id),
            _ => None,
        }
    }

    /// Opens a sealed value of `wallet_id`. Errors name the key id when it is not
    /// loaded, and say "does not decrypt" for a wrong key, wallet or tampered value.
    pub fn open(&self, wallet_id: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(verr(format!(
                "wallet {wallet_id}: sealed secret has an unknown format"
            )));
        };
        let cipher = self.cipher(id).ok_or_else(|| {
            verr(format!(
                "wallet {wallet_id}: sealed under key {id}, which is not loaded"
            ))
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| verr(format!("wallet {wallet_id}: sealed secret is not base64")))?;
        if blob.len() < 12 + 16 {
            return Err(verr(format!(
                "wallet {wallet_id}: sealed secret is truncated"
            )));
        }
        let (nonce, ct) = blob.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: wallet_id.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                verr(format!(
                    "wallet {wallet_id}: sealed secret does not decrypt"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Secret {
        Secret::new(hex::encode([b; 32]))
    }

    #[test]
    fn seal_open_roundtrip_with_aad_and_key_id() {
        let v = Vault::new(&key(1), &[]).unwrap();
        let sealed = v.seal("wal_a", b"seed-bytes").unwrap();
        assert!(sealed.starts_with(&format!("v1.{}.", v.current_key_id())));
        assert_eq!(Vault::key_id_of(&sealed), Some(v.current_key_id()));
        assert_eq!(v.open("wal_a", &sealed).unwrap().as_slice(), b"seed-bytes");
        // Fresh nonce each time.
        assert_ne!(sealed, v.seal("wal_a", b"seed-bytes").unwrap());
        // Another wallet's row, a tampered value, or another key: no plaintext.
        assert!(
            v.open("wal_b", &sealed)
                .unwrap_err()
                .message
                .contains("does not decrypt")
        );
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(v.open("wal_a", &tampered).is_err());
        let other = Vault::new(&key(2), &[]).unwrap();
        let err = other.open("wal_a", &sealed).unwrap_err();
        assert!(err.message.contains("not loaded"), "{}", err.message);
        assert!(!err.message.contains(&hex::encode([1u8; 32])));
        assert!(!format!("{v:?}").contains(&hex::encode([1u8; 32])));
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Vault::new(&key(1), &[]).unwrap();
        let sealed_old = old.seal("wal_a", b"s").unwrap();
        let rotating = Vault::new(&key(2), &[key(1)]).unwrap();
        assert_eq!(
            rotating.open("wal_a", &sealed_old).unwrap().as_slice(),
            b"s"
        );
        let resealed = rotating.seal("wal_a", b"s").unwrap();
        assert_eq!(Vault::key_id_of(&resealed), Some(rotating.current_key_id()));
        assert_ne!(Vault::key_id_of(&resealed), Vault::key_id_of(&sealed_old));
        assert!(Vault::new(&Secret::new("zz"), &[]).is_err());
    }
}
