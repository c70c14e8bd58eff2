//! Where wallet encryption keys live on disk during and after a rotation.
//!
//! `offerhub wallet rotate-key` saves the new key **before** it re-encrypts anything:
//! as `<data dir>/wallet-keys/<key id>.key` (mode 0600, fsync'd, the directory too) and,
//! on a sandbox instance whose keys live in `<data dir>/secrets.env`, into that file as
//! the new `WALLET_ENCRYPTION_KEY` with the old one moved to
//! `WALLET_ENCRYPTION_KEYS_PREVIOUS`. A daemon's [`crate::vault::Vault`] built with
//! [`crate::vault::Vault::with_key_dir`] reads a key it lacks from the key directory the
//! first time it meets a value sealed under it, so a running daemon keeps working while
//! its wallets are re-sealed. Nothing here ever logs or returns key material in errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::Secret;
use crate::vault::{decode_key, key_id};

/// The key directory of a data directory: `<data dir>/wallet-keys`.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wallet-keys")
}

/// Whether `id` has the shape of a key id (16 lowercase hex characters); anything else
/// is never used to build a path.
pub fn is_key_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The file of key `id` in `dir`.
pub fn key_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.key"))
}

/// The key id of a hex key, or `None` when it is not 64 hex characters.
pub fn id_of(key: &Secret) -> Option<String> {
    decode_key(key).ok().map(|k| key_id(&k))
}

/// Reads key `id` from `dir`: `Ok(None)` when there is no such file or it does not hold
/// exactly that key (a file whose content has another id is ignored).
pub fn load_key(dir: &Path, id: &str) -> std::io::Result<Option<Zeroizing<[u8; 32]>>> {
    if !is_key_id(id) {
        return Ok(None);
    }
    let text = match std::fs::read_to_string(key_file(dir, id)) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(key) = decode_key(&Secret::new(text.trim())) else {
        return Ok(None);
    };
    Ok((key_id(&key) == id).then_some(key))
}

/// Reads key `id` from `dir` as a hex [`Secret`].
pub fn load_secret(dir: &Path, id: &str) -> std::io::Result<Option<Secret>> {
    Ok(load_key(dir, id)?.map(|k| Secret::new(hex::encode(*k))))
}

/// Saves `key` durably as `<dir>/<key id>.key` (directory 0700, file 0600, both
/// fsync'd) and returns the file. Saving the same key again is harmless.
pub fn save_key(dir: &Path, key: &Secret) -> std::io::Result<PathBuf> {
    let id = id_of(key).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a wallet encryption key is 64 hexadecimal characters",
        )
    })?;
    create_private_dir(dir)?;
    let path = key_file(dir, &id);
    write_durable(&path, &format!("{}\n", key.expose_secret()))?;
    Ok(path)
}

/// Removes key `id` from `dir` (no error when it is not there).
pub fn remove_key(dir: &Path, id: &str) -> std::io::Result<()> {
    if !is_key_id(id) {
        return Ok(());
    }
    match std::fs::remove_file(key_file(dir, id)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every key saved in `dir`, by id.
pub fn saved_keys(dir: &Path) -> Vec<(String, Secret)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".key")) else {
            continue;
        };
        if let Ok(Some(s)) = load_secret(dir, id) {
            out.push((id.to_string(), s));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces `path` atomically with `contents` (mode 0600): a temporary file in the same
/// directory is written and fsync'd, renamed over `path`, and the directory fsync'd, so
/// after a crash the file holds either the old or the new contents, never a mix.
pub fn write_durable(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Sets (`Some`) or removes (`None`) `KEY=value` lines of a dotenv file, keeping every
/// other line and comment, and writes it back with [`write_durable`].
pub fn update_env_file(path: &Path, updates: &[(&str, Option<&str>)]) -> std::io::Result<()> {
    let old = Zeroizing::new(std::fs::read_to_string(path).unwrap_or_default());
    let mut out = Zeroizing::new(String::new());
    let mut done: Vec<&str> = Vec::new();
    for line in old.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match key.and_then(|k| updates.iter().find(|(u, _)| *u == k)) {
            Some((k, v)) => {
                if let Some(v) = v
                    && !done.contains(k)
                {
                    out.push_str(&format!("{k}={v}\n"));
                }
                done.push(k);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, v) in updates {
        if let Some(v) = v
            && !done.contains(k)
        {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    write_durable(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "offerhub-keystore-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn saved_keys_load_by_id_with_private_modes() {
        let d = dir();
        let kd = key_dir(&d);
        let key = Secret::new(hex::encode([7u8; 32]));
        let id = id_of(&key).unwrap();
        let path = save_key(&kd, &key).unwrap();
        assert_eq!(path, key_file(&kd, &id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&kd), 0o700);
        }
        assert_eq!(*load_key(&kd, &id).unwrap().unwrap(), [7u8; 32]);
        // Wrong id, path tricks, a file holding another key: nothing.
        assert!(load_key(&kd, "0000000000000000").unwrap().is_none());
        assert!(load_key(&kd, "../secrets.env").unwrap().is_none());
        std::fs::copy(&path, key_file(&kd, "1111111111111111")).unwrap();
        assert!(load_key(&kd, "1111111111111111").unwrap().is_none());
        assert_eq!(saved_keys(&kd).len(), 1);
        remove_key(&kd, &id).unwrap();
        assert!(load_key(&kd, &id).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn env_file_updates_keep_other_lines() {
        let d = dir();
        let p = d.join("secrets.env");
        std::fs::write(&p, "# comment\nA=1\nB=2\n").unwrap();
        update_env_file(&p, &[("A", Some("9")), ("B", None), ("C", Some("3"))]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# comment\nA=9\nC=3\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_vault_with_a_key_dir_opens_values_sealed_under_a_saved_key() {
        let d = dir();
        let kd = key_dir(&d);
        let old = Secret::new(hex::encode([1u8; 32]));
        let new = Secret::new(hex::encode([2u8; 32]));
        let sealed = crate::vault::Vault::new(&new, &[])
            .unwrap()
            .seal("wal_x", b"seed")
            .unwrap();
        let daemon = crate::vault::Vault::new(&old, &[])
            .unwrap()
            .with_key_dir(&kd);
        let err = daemon.open("wal_x", &sealed).unwrap_err();
        assert!(err.message.contains("not loaded"));
        save_key(&kd, &new).unwrap();
        assert_eq!(daemon.open("wal_x", &sealed).unwrap().as_slice(), b"seed");
        assert_eq!(daemon.loaded_key_ids().len(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }
}
