//! Secrets at rest: ChaCha20-Poly1305 with a 32-byte key kept outside the
//! database, a random nonce per write, and the record's key as associated
//! data, so a ciphertext copied to another workspace or name fails to
//! decrypt instead of revealing anything.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::error::{Result, StorageError};

/// The key that encrypts secrets. Never printed.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// A key from 32 bytes the operator provides.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn random() -> Result<Self> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| StorageError::Io {
            what: "reading system randomness",
            path: "getrandom".into(),
            error: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self(k))
    }

    /// Read the key file at `path`, or create it (mode 0600) with a random
    /// key if it does not exist.
    ///
    /// # Errors
    /// [`StorageError::Io`] when it cannot be read or written,
    /// [`StorageError::BadKey`] when it is not 32 bytes.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let io = |what: &'static str| {
            let path = path.display().to_string();
            move |error| StorageError::Io { what, path, error }
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StorageError::BadKey {
                            path: path.display().to_string(),
                            len: bytes.len(),
                        })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io("creating the key directory"))?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts
                    .open(path)
                    .map_err(io("creating the secret key file"))?;
                f.write_all(&key.0)
                    .map_err(io("writing the secret key file"))?;
                f.sync_all().map_err(io("syncing the secret key file"))?;
                Ok(key)
            }
            Err(e) => Err(io("reading the secret key file")(e)),
        }
    }

    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| StorageError::Io {
            what: "reading system randomness",
            path: "getrandom".into(),
            error: std::io::Error::other(e.to_string()),
        })?;
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| StorageError::Decrypt("(encrypting)".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(crate) fn open(&self, name: &str, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 12 {
            return Err(StorageError::Decrypt(name.into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.0));
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| StorageError::Decrypt(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_record() {
        let k = SecretKey::from_bytes([7; 32]);
        let sealed = k.seal(b"ws-a/TOKEN", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open("TOKEN", b"ws-a/TOKEN", &sealed).unwrap(), b"hunter2");
        assert!(k.open("TOKEN", b"ws-b/TOKEN", &sealed).is_err());
        let other = SecretKey::from_bytes([8; 32]);
        assert!(other.open("TOKEN", b"ws-a/TOKEN", &sealed).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys/secret.key");
        let a = SecretKey::load_or_create(&p).unwrap();
        let b = SecretKey::load_or_create(&p).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(
            SecretKey::load_or_create(&p),
            Err(StorageError::BadKey { len: 5, .. })
        ));
    }
}
