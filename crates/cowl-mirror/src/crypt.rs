//! Encryption of blobs with age (X25519 recipients): each blob is
//! encrypted before it leaves the machine and decrypted as it is read back.
//! What stays readable in the mirror: the layout, sizes, version numbers and
//! cowl digests; messages, file names and contents do not.

use crate::MirrorError;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

/// Recipients from `--encrypt-to`: `age1…` public keys, or files holding
/// one per line (`#` comments allowed).
pub fn recipients(args: &[String]) -> Result<Vec<age::x25519::Recipient>, MirrorError> {
    let mut out = Vec::new();
    for a in args {
        let texts: Vec<String> = if a.starts_with("age1") {
            vec![a.clone()]
        } else {
            let text = std::fs::read_to_string(a).map_err(|e| {
                MirrorError::Crypto(format!(
                    "--encrypt-to {a}: neither an age public key (age1…) nor a readable file: {e}"
                ))
            })?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        for t in texts {
            let r = age::x25519::Recipient::from_str(&t).map_err(|e| {
                MirrorError::Crypto(format!(
                    "--encrypt-to: {t:?} is not an age X25519 recipient (age1…): {e}"
                ))
            })?;
            out.push(r);
        }
    }
    Ok(out)
}

/// The identities of an age identity file (`age-keygen` output).
pub fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, MirrorError> {
    let file = age::IdentityFile::from_file(path.display().to_string()).map_err(|e| {
        MirrorError::Crypto(format!(
            "--identity {}: cannot read an age identity file: {e}",
            path.display()
        ))
    })?;
    let ids = file
        .into_identities()
        .map_err(|e| MirrorError::Crypto(format!("--identity {}: {e}", path.display())))?;
    if ids.is_empty() {
        return Err(MirrorError::Crypto(format!(
            "--identity {}: the file holds no identity (AGE-SECRET-KEY-1…)",
            path.display()
        )));
    }
    Ok(ids)
}

/// A writer that encrypts, or passes bytes through.
pub enum Sealer<W: Write> {
    /// No encryption.
    Plain(W),
    /// age encryption.
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sealer<W> {
    /// Wraps `w`, encrypting to `to` unless it is empty.
    pub fn new(w: W, to: &[age::x25519::Recipient]) -> Result<Self, MirrorError> {
        if to.is_empty() {
            return Ok(Sealer::Plain(w));
        }
        let enc = age::Encryptor::with_recipients(to.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| MirrorError::Crypto(format!("cannot encrypt: {e}")))?;
        let s = enc
            .wrap_output(w)
            .map_err(|e| MirrorError::Crypto(format!("cannot encrypt: {e}")))?;
        Ok(Sealer::Age(s))
    }

    /// Writes what is left and returns the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Sealer::Plain(w) => Ok(w),
            Sealer::Age(s) => s.finish(),
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sealer::Plain(w) => w.write(buf),
            Sealer::Age(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sealer::Plain(w) => w.flush(),
            Sealer::Age(s) => s.flush(),
        }
    }
}

/// Wraps `r` to decrypt it with `ids`.
pub fn opener<'a, R: Read + 'a>(
    r: R,
    ids: &[Box<dyn age::Identity + Send + Sync>],
    what: &str,
) -> Result<Box<dyn Read + 'a>, MirrorError> {
    let d = age::Decryptor::new(r).map_err(|e| {
        MirrorError::Crypto(format!("{what} is not a valid age-encrypted blob: {e}"))
    })?;
    let s = d
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => MirrorError::Crypto(format!(
                "the --identity given cannot decrypt {what}: the mirror was encrypted to other recipients. Nothing was changed"
            )),
            e => MirrorError::Crypto(format!("cannot decrypt {what}: {e}. Nothing was changed")),
        })?;
    Ok(Box::new(s))
}
