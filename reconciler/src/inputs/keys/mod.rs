//! The registry token service's secrets, as Berth holds them: the key
//! that signs registry tokens ([`signer`]) and the key of the CI
//! credentials ([`ci`]), both under `<state_dir>/registry-token/` unless
//! the site names the signing key. Berth signs its own registry tokens
//! with them too, so they sit below every client that calls the registry.

pub mod ci;
pub mod signer;

pub use signer::{Issued, Signer, SignerError};

use berth_core::grants::{Access, Requester, grant};
use berth_spec::Site;

/// The service's secrets: the token signing key and the CI credentials'
/// key, both in `<state_dir>/registry-token/` unless the site names the
/// signing key's paths.
pub struct Keys {
    pub signer: Signer,
    pub ci: ci::CiCredentials,
}

impl Keys {
    /// The site's keys, `None` when it does not serve registry tokens.
    pub fn load(site: &Site) -> Result<Option<Keys>, SignerError> {
        let Some(registry) = &site.registry else {
            return Ok(None);
        };
        let Some(config) = &registry.token else {
            return Ok(None);
        };
        let dir = std::path::Path::new(&site.state_dir.value);
        Ok(Some(Keys {
            signer: Signer::load(config, &registry.host.value, dir)?,
            ci: ci::CiCredentials::load(&dir.join("registry-token"))?,
        }))
    }

    /// A token for Berth itself, for `scopes` (its registry calls and the
    /// pulls and pushes it asks of dockerd).
    pub fn berth_token(&self, scopes: &[Access]) -> Result<String, SignerError> {
        let granted = grant(&Requester::Berth, scopes, &|_| false);
        Ok(self
            .signer
            .sign(Requester::Berth.subject(), &granted)?
            .token)
    }
}
