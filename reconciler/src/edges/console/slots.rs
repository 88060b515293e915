//! Counted places per account (log streams, terminals): a place is held
//! for as long as its stream or socket lives and given back when dropped,
//! so one student opening tab after tab meets a bound, not the service's
//! limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Slots {
    max: usize,
    used: Mutex<HashMap<String, usize>>,
}

/// One place, held until dropped.
pub struct Slot {
    slots: Arc<Slots>,
    account: String,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            used: Mutex::new(HashMap::new()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for `account`, or `None` when it holds `max` already.
    pub fn take(self: &Arc<Self>, account: &str) -> Option<Slot> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let n = used.entry(account.to_string()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            account: account.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = self.slots.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = used.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                used.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_per_account_and_come_back_when_dropped() {
        let slots = Slots::new(2);
        let a1 = slots.take("alice").expect("first");
        let _a2 = slots.take("alice").expect("second");
        assert!(slots.take("alice").is_none(), "a third is refused");
        assert!(slots.take("bob").is_some(), "bob has his own");
        drop(a1);
        assert!(slots.take("alice").is_some(), "given back");
    }
}
