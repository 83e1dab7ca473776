//! Deploy keys: one ed25519 key pair per project, whose public half the user adds to the repository (read-only)
//! so Berth can fetch over ssh without anyone's personal credentials.

use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, LineEnding, PrivateKey};

/// A fresh ed25519 deploy key in OpenSSH formats.
pub struct DeployKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----…`, unencrypted, LF line endings: what `ssh -i` reads. Secret.
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA… comment`: the line to paste into the repository's deploy keys.
    pub public_openssh: String,
    /// `SHA256:…`, as `ssh-keygen -l` and GitHub show it.
    pub fingerprint: String,
}

impl std::fmt::Debug for DeployKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployKey")
            .field("private_openssh", &"[redacted]")
            .field("public_openssh", &self.public_openssh)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Why no deploy key could be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS random source failed; no key can be made safely without it.
    #[error(transparent)]
    Random(#[from] crate::crypto::RandomError),
    /// The key could not be written in OpenSSH format (not expected for ed25519).
    #[error("could not encode the deploy key: {0}")]
    Encoding(String),
}

/// Generates an ed25519 key pair from 32 bytes of OS randomness, with `comment` on the public key (e.g.
/// `berth-deploy-key-<project>`).
pub fn generate_deploy_key(comment: &str) -> Result<DeployKey, KeyError> {
    let mut seed = crate::crypto::random_bytes::<32>()?;
    let keypair = Ed25519Keypair::from_seed(&seed);
    seed.fill(0);
    let mut private = PrivateKey::from(keypair);
    private.set_comment(comment);
    let encoding = |e: ssh_key::Error| KeyError::Encoding(e.to_string());
    let private_openssh = private.to_openssh(LineEnding::LF).map_err(encoding)?.to_string();
    let public = private.public_key();
    Ok(DeployKey {
        private_openssh,
        public_openssh: public.to_openssh().map_err(encoding)?,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_are_fresh_valid_openssh_ed25519() {
        let key = generate_deploy_key("berth-test").unwrap();
        assert!(key.public_openssh.starts_with("ssh-ed25519 AAAA"), "{}", key.public_openssh);
        assert!(key.public_openssh.ends_with(" berth-test"));
        assert!(key.fingerprint.starts_with("SHA256:"));
        let public = ssh_key::PublicKey::from_openssh(&key.public_openssh).unwrap();
        let private = PrivateKey::from_openssh(&key.private_openssh).unwrap();
        assert_eq!(private.public_key().key_data(), public.key_data());
        assert_eq!(public.fingerprint(HashAlg::Sha256).to_string(), key.fingerprint);
        assert!(!format!("{key:?}").contains("PRIVATE"));

        let other = generate_deploy_key("berth-test").unwrap();
        assert_ne!(other.public_openssh, key.public_openssh);
        assert_ne!(other.private_openssh, key.private_openssh);
    }

    #[test]
    fn openssh_reads_the_generated_key() {
        let key = generate_deploy_key("berth-test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(&path, &key.private_openssh).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = std::process::Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), key.public_openssh);

        let out = std::process::Command::new("ssh-keygen").arg("-l").arg("-f").arg(&path).output().unwrap();
        assert!(String::from_utf8(out.stdout).unwrap().contains(&key.fingerprint));
    }
}
