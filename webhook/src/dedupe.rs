//! Bounded memory of recently seen delivery ids (`X-Gitlab-Event-UUID`,
//! `Idempotency-Key`), so GitLab's redeliveries are ignored without the set
//! growing forever: the oldest id is forgotten first.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

pub struct Dedupe {
    capacity: usize,
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Dedupe {
    pub fn new(capacity: usize) -> Self {
        Dedupe {
            capacity: capacity.max(1),
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// `true` the first time `id` is seen (within the last `capacity` ids).
    pub fn first_time(&self, id: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() == self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(id.to_string());
        order.push_back(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_ids_and_forgets_the_oldest() {
        let d = Dedupe::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(d.first_time("a"), "a was evicted");
        assert!(!d.first_time("c"));
    }
}
