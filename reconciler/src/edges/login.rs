//! Logging in with the department account, for the console and for
//! `docker login` alike: who is in good standing (directory lookup, the
//! admission rules), the password checked by a simple bind as the user,
//! remembered salted and hashed for `login.bind_cache`, and failures
//! throttled *before* the directory is asked, so guessing never locks a
//! student's real account: per account and client address, more slowly
//! per account over all addresses (so a stranger's few guesses do not lock
//! the student out), and per address. The address is the peer's, or the
//! client's from a trusted proxy ([`crate::edges::client`]). Both doors share one
//! count of failures.

use crate::base::throttle::Throttle;
use crate::inputs::identity::{Account, Directory, IdentityError};
use berth_spec::Site;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong username or password, or the account may not log in")]
    Refused,
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("the directory is unreachable: {0}")]
    Unavailable(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// An account that may log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub account: Account,
    pub admin: bool,
}

const WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct Logins {
    /// Failures at one account from one address.
    pairs: Throttle,
    /// Failures at one account from every address (slower).
    accounts: Throttle,
    /// Failures from one address at every account.
    addresses: Throttle,
    /// Whose `X-Forwarded-For` is believed.
    pub proxies: crate::edges::client::Proxies,
    salt: Vec<u8>,
    bind_cache: Duration,
    binds: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

impl Logins {
    pub fn new(site: &Site) -> Logins {
        let l = &site.login;
        let bind_cache = match l.bind_cache.as_str() {
            "0" | "0s" => Duration::ZERO,
            text => berth_spec::site::duration_or(text, Duration::from_secs(60)),
        };
        Logins {
            pairs: Throttle::new(l.account_address_failures, WINDOW),
            accounts: Throttle::new(l.account_failures, WINDOW),
            proxies: crate::edges::client::Proxies::from_site(site),
            addresses: Throttle::new(l.address_failures, WINDOW),
            salt: crate::base::secret::random_bytes(16),
            bind_cache,
            binds: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `check` for `user` from `client` unless either is throttled;
    /// a [`LoginError::Refused`] counts against both. Only failures count,
    /// so many sessions from one address still log in.
    pub async fn attempt<T>(
        &self,
        user: &str,
        client: IpAddr,
        check: impl std::future::Future<Output = Result<T, LoginError>>,
    ) -> Result<T, LoginError> {
        let now = Instant::now();
        let pair_key = format!("pair:{user}@{client}");
        let account_key = format!("account:{user}");
        let address_key = format!("address:{client}");
        self.pairs
            .check(&pair_key, now)
            .and(self.accounts.check(&account_key, now))
            .and(self.addresses.check(&address_key, now))
            .map_err(LoginError::Throttled)?;
        let result = check.await;
        if let Err(LoginError::Refused) = &result {
            self.pairs.fail(&pair_key, now);
            self.accounts.fail(&account_key, now);
            self.addresses.fail(&address_key, now);
        }
        result
    }

    /// `user` if the directory knows it in good standing (enabled, in an
    /// allowed group). Names that are no account never reach LDAP.
    pub async fn member(
        &self,
        site: &Site,
        directory: &Directory,
        user: &str,
    ) -> Result<Member, LoginError> {
        if berth_spec::names::dns_label_problem(user, berth_spec::names::MAX_ACCOUNT).is_some() {
            return Err(LoginError::Refused);
        }
        let account = directory
            .lookup(user)
            .await?
            .filter(|a| crate::inputs::identity::standing(site, user, Some(a)).is_ok())
            .ok_or(LoginError::Refused)?;
        let admin = site
            .ldap
            .admin_group
            .as_ref()
            .is_some_and(|g| account.groups.contains(g));
        Ok(Member { account, admin })
    }

    /// The member whose directory password this is.
    pub async fn password(
        &self,
        site: &Site,
        directory: &Directory,
        user: &str,
        password: &str,
    ) -> Result<Member, LoginError> {
        if password.is_empty() {
            return Err(LoginError::Refused);
        }
        let member = self.member(site, directory, user).await?;
        let salted = self.salted(user, password);
        let cached = self
            .binds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .is_some_and(|(at, hash)| at.elapsed() < self.bind_cache && *hash == salted);
        if cached {
            return Ok(member);
        }
        if !directory
            .check_password(&member.account.dn, password)
            .await?
        {
            return Err(LoginError::Refused);
        }
        let mut binds = self.binds.lock().unwrap_or_else(|p| p.into_inner());
        if binds.len() > 10_000 {
            let ttl = self.bind_cache;
            binds.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        binds.insert(user.to_string(), (Instant::now(), salted));
        Ok(member)
    }

    fn salted(&self, user: &str, password: &str) -> Vec<u8> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.salt);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        ctx.finish().as_ref().to_vec()
    }
}
