//! The token signing key: an ECDSA P-256 key and its self-signed
//! certificate, generated into the state directory at first start (key mode
//! 0600) or read from the paths `site.yaml` names. Tokens carry the
//! certificate as `x5c` (what distribution 2.8 verifies against its
//! `rootcertbundle`) and a libtrust `kid` of the same key.

use base64::Engine;
use berth_core::grants::Access;
use berth_spec::site::RegistryToken;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("token signing key {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("token signing key {path}: {message}")]
    Key { path: String, message: String },
    #[error("signing a registry token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

pub struct Signer {
    key: EncodingKey,
    /// The certificate, base64 DER, as the `x5c` header carries it.
    x5c: String,
    kid: String,
    certificate_path: PathBuf,
    pub issuer: String,
    pub service: String,
    pub ttl: Duration,
}

/// A signed token and its lifetime, as the token endpoint answers.
#[derive(Clone, Debug, Serialize)]
pub struct Issued {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    /// One string: distribution 2.8 compares it to its `service`.
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [Access],
}

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";

impl Signer {
    /// Reads the site's key and certificate, or the ones in
    /// `<state_dir>/registry-token/`, making them there on first use.
    pub fn load(
        config: &RegistryToken,
        registry_host: &str,
        state_dir: &Path,
    ) -> Result<Signer, SignerError> {
        let (key_path, cert_path) = match (&config.key, &config.certificate) {
            (Some(k), Some(c)) => (PathBuf::from(k), PathBuf::from(c)),
            _ => {
                let dir = state_dir.join("registry-token");
                let key = dir.join(KEY_FILE);
                let cert = dir.join(CERT_FILE);
                if !key.exists() {
                    generate(&dir, &key, &cert)?;
                }
                (key, cert)
            }
        };
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| SignerError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let key_pem = read(&key_path)?;
        let cert_pem = read(&cert_path)?;
        let bad = |p: &Path, m: String| SignerError::Key {
            path: p.display().to_string(),
            message: m,
        };
        let pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| bad(&key_path, e.to_string()))?;
        let key = EncodingKey::from_ec_pem(key_pem.as_bytes())
            .map_err(|e| bad(&key_path, format!("not a PKCS#8 P-256 key: {e}")))?;
        let cert = pem::parse(&cert_pem).map_err(|e| bad(&cert_path, e.to_string()))?;
        let ttl = berth_spec::site::duration_or(&config.ttl, Duration::from_secs(300));
        Ok(Signer {
            key,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.contents()),
            kid: libtrust_kid(&rcgen::PublicKeyData::subject_public_key_info(&pair)),
            certificate_path: cert_path,
            issuer: config.issuer.clone(),
            service: config
                .service
                .clone()
                .unwrap_or_else(|| registry_host.to_string()),
            ttl,
        })
    }

    /// A token for `subject` granting exactly `access`.
    pub fn sign(&self, subject: &str, access: &[Access]) -> Result<Issued, SignerError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.x5c = Some(vec![self.x5c.clone()]);
        let claims = Claims {
            iss: &self.issuer,
            sub: subject,
            aud: &self.service,
            exp: now + self.ttl.as_secs(),
            // A little slack for clocks that differ between hosts.
            nbf: now.saturating_sub(10),
            iat: now,
            jti: crate::base::secret::random_hex(16),
            access,
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        Ok(Issued {
            access_token: token.clone(),
            token,
            expires_in: self.ttl.as_secs(),
            issued_at: crate::base::time::rfc3339(now as i64),
        })
    }

    /// The registry's `auth:` section for this key.
    pub fn registry_config(&self, realm: &str) -> String {
        format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            self.service,
            self.issuer,
            self.certificate_path.display()
        )
    }
}

fn generate(dir: &Path, key_path: &Path, cert_path: &Path) -> Result<(), SignerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| SignerError::Io { path: p, source }
    };
    let bad = |m: rcgen::Error| SignerError::Key {
        path: key_path.display().to_string(),
        message: m.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let pair = rcgen::KeyPair::generate().map_err(bad)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Berth registry token signer");
    let cert = params.self_signed(&pair).map_err(bad)?;
    // The certificate first: a key without one would be kept and never used.
    std::fs::write(cert_path, cert.pem()).map_err(io(cert_path))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .map_err(io(key_path))?;
    file.write_all(pair.serialize_pem().as_bytes())
        .map_err(io(key_path))?;
    tracing::info!(key = %key_path.display(), "generated the registry token signing key");
    Ok(())
}

/// libtrust's key id: the SHA-256 of the DER public key, first 240 bits,
/// base32 in colon-separated groups of four.
fn libtrust_kid(spki: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let bytes = &digest.as_ref()[..30];
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    out.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RegistryToken {
        RegistryToken {
            service: None,
            issuer: "berth".into(),
            key: None,
            certificate: None,
            ttl: berth_spec::Located::new("5m".into()),
            personal_ttl: berth_spec::Located::new("90d".into()),
            personal_max_ttl: berth_spec::Located::new("365d".into()),
        }
    }

    #[test]
    fn the_key_is_made_once_private_and_signs_verifiable_tokens() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "berth-signer-{}",
            crate::base::secret::random_hex(6)
        ));
        let signer = Signer::load(&config(), "registry.test:5000", &dir).expect("signer");
        let key = dir.join("registry-token").join(KEY_FILE);
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Loading again keeps the same key.
        let again = Signer::load(&config(), "registry.test:5000", &dir).expect("again");
        assert_eq!(signer.kid, again.kid);
        assert_eq!(signer.service, "registry.test:5000");

        let access = vec![Access {
            kind: "repository".into(),
            name: "alice/x".into(),
            actions: vec!["pull".into()],
        }];
        let issued = signer.sign("alice", &access).expect("signed");
        let parts: Vec<&str> = issued.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["x5c"][0], signer.x5c);
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "registry.test:5000");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["access"][0]["name"], "alice/x");

        // The signature verifies with the key's public half (fixed r||s).
        let pair =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key).expect("pem")).expect("pair");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key_raw(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &b64.decode(parts[2]).expect("sig"))
            .expect("valid signature");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kid_has_libtrust_shape() {
        let kid = libtrust_kid(b"anything");
        assert_eq!(kid.len(), 48 + 11);
        assert_eq!(kid.split(':').count(), 12);
    }
}
