//! The CI credential of an account's runner: `berth_ci_<expiry>_<mac>`, an
//! HMAC over the account, its directory entry (`Account::entry`) and the
//! expiry with a secret kept beside the signing key: a name reused for a
//! new entry inherits no credential. Nothing is stored per account; the credential changes once a week
//! (so the runner's config is rewritten as often), and an account that
//! leaves good standing is refused at the token service whatever it holds.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub const PREFIX: &str = "berth_ci_";
const WEEK: u64 = 7 * 24 * 3600;

pub struct CiCredentials {
    key: ring::hmac::Key,
}

impl CiCredentials {
    /// Reads `<dir>/ci.key`, making it (mode 0600) on first use.
    pub fn load(dir: &Path) -> Result<CiCredentials, super::SignerError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join("ci.key");
        let io = |source| super::SignerError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(crate::base::secret::random_hex(32).as_bytes())
                .map_err(io)?;
        }
        let secret = std::fs::read(&path).map_err(io)?;
        Ok(CiCredentials {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        })
    }

    fn mac(&self, account: &str, entry: &str, expiry: u64) -> String {
        let tag = ring::hmac::sign(&self.key, message(account, entry, expiry).as_bytes());
        crate::base::secret::hex(tag.as_ref())
    }

    /// The credential valid now: the same all week, good for 7 to 14 days.
    pub fn credential(&self, account: &str, entry: &str) -> String {
        self.credential_at(account, entry, unix_now())
    }

    fn credential_at(&self, account: &str, entry: &str, now: u64) -> String {
        let expiry = (now / WEEK + 2) * WEEK;
        format!("{PREFIX}{expiry}_{}", self.mac(account, entry, expiry))
    }

    pub fn verify(&self, account: &str, entry: &str, credential: &str) -> bool {
        self.verify_at(account, entry, credential, unix_now())
    }

    fn verify_at(&self, account: &str, entry: &str, credential: &str, now: u64) -> bool {
        let Some((expiry, mac)) = credential
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        if expiry <= now || expiry > now + 3 * WEEK {
            return false;
        }
        let Some(tag) = crate::base::secret::unhex(mac) else {
            return false;
        };
        ring::hmac::verify(&self.key, message(account, entry, expiry).as_bytes(), &tag).is_ok()
    }

    /// `DOCKER_AUTH_CONFIG` for the account's CI jobs.
    pub fn docker_auth_config(&self, registry: &str, account: &str, entry: &str) -> String {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{account}:{}", self.credential(account, entry)));
        serde_json::json!({ "auths": { registry: { "auth": auth } } }).to_string()
    }
}

fn message(account: &str, entry: &str, expiry: u64) -> String {
    format!("{account}\0{entry}\0{expiry}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_the_accounts_own_and_expires() {
        let dir =
            std::env::temp_dir().join(format!("berth-ci-{}", crate::base::secret::random_hex(6)));
        let ci = CiCredentials::load(&dir).expect("key");
        let now = 1_800_000_000;
        let cred = ci.credential_at("alice", "e1", now);
        assert!(ci.verify_at("alice", "e1", &cred, now));
        assert_eq!(
            cred,
            ci.credential_at("alice", "e1", now + 60),
            "stable within the week"
        );
        assert!(
            !ci.verify_at("bob", "e1", &cred, now),
            "never another account's"
        );
        assert!(
            !ci.verify_at("alice", "e2", &cred, now),
            "never a new entry's that took the name"
        );
        assert!(
            !ci.verify_at("alice", "e1", &cred, now + 3 * WEEK),
            "expires"
        );
        let forged = format!("{PREFIX}{}_{}", now + WEEK, "00".repeat(32));
        assert!(!ci.verify_at("alice", "e1", &forged, now));
        // The same secret is read back on the next start.
        let again = CiCredentials::load(&dir).expect("key");
        assert!(again.verify_at("alice", "e1", &cred, now));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
