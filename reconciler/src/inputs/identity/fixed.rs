//! A directory of fixed entries, for in-process tests: accounts and
//! passwords held in memory, and a switch that makes it answer as an
//! unreachable directory does.

use super::{Entries, IdentityError, Result};
use berth_core::account::Account;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct FixedEntries {
    accounts: Mutex<BTreeMap<String, (Account, String)>>,
    down: AtomicBool,
}

impl FixedEntries {
    /// Adds or replaces `account`, whose password is `password`.
    pub fn put(&self, account: Account, password: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(account.name.clone(), (account, password.to_string()));
    }

    /// Makes every lookup fail as an unreachable directory's does (or not).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(IdentityError::Search(Box::new(
                ldap3::LdapError::EndOfStream,
            )));
        }
        Ok(())
    }
}

impl Entries for std::sync::Arc<FixedEntries> {
    fn find<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Account>>> {
        Box::pin(async move {
            self.check()?;
            Ok(self
                .accounts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .map(|(a, _)| a.clone()))
        })
    }

    fn bind<'a>(&'a self, dn: &'a str, password: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            self.check()?;
            Ok(self
                .accounts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .any(|(a, p)| a.dn == dn && p == password))
        })
    }
}
