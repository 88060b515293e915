//! A Docker endpoint kept in memory, for in-process tests of the engine:
//! it observes what earlier actions made, records every action it is
//! given, and fails the creation of a named container on request, as a
//! daemon refusing one container would.

use super::{Containers, DockerBackend, DockerError};
use berth_core::plan::{Action, ObservedAccount, ObservedContainer};
use berth_spec::State;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct FakeContainers {
    accounts: Mutex<BTreeMap<String, ObservedAccount>>,
    /// `kind target` of every action carried out, in order.
    log: Mutex<Vec<String>>,
    /// Full names whose creation fails.
    refuse: Mutex<Vec<String>>,
    next_id: Mutex<u64>,
}

impl FakeContainers {
    /// What the endpoint holds for `account`.
    pub fn account(&self, account: &str) -> ObservedAccount {
        lock(&self.accounts)
            .get(account)
            .cloned()
            .unwrap_or_default()
    }

    /// Every action carried out so far (`create alice--web`, …).
    pub fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    /// Makes creating the container `full_name` fail.
    pub fn refuse(&self, full_name: &str) {
        lock(&self.refuse).push(full_name.to_string());
    }

    fn apply(&self, account: &str, action: &Action) -> Result<(), DockerError> {
        let mut accounts = lock(&self.accounts);
        let held = accounts.entry(account.to_string()).or_default();
        match action {
            Action::CreateNetwork { .. } => held.network = true,
            Action::CreateVolume { name } => {
                held.volumes.insert(name.clone());
            }
            Action::Create { container } | Action::Recreate { container, .. } => {
                if lock(&self.refuse).contains(&container.full_name) {
                    return Err(DockerError::NameTaken(container.full_name.clone()));
                }
                if let Action::Recreate { id, .. } = action {
                    held.containers.retain(|c| &c.id != id);
                }
                let mut next = lock(&self.next_id);
                *next += 1;
                let running = container.state == State::Running;
                held.containers.push(ObservedContainer {
                    id: format!("fake-{next}"),
                    account: account.to_string(),
                    name: container.name.clone(),
                    full_name: container.full_name.clone(),
                    image: container.spec.image.clone(),
                    spec_hash: container.spec_hash.clone(),
                    revision: container.revision.clone(),
                    running,
                    state: if running { "running" } else { "created" }.into(),
                    fields: container.spec.fields(),
                    ports: BTreeMap::new(),
                });
            }
            Action::Start { id, .. } | Action::Stop { id, .. } => {
                let start = matches!(action, Action::Start { .. });
                for c in held.containers.iter_mut().filter(|c| &c.id == id) {
                    c.running = start;
                    c.state = if start { "running" } else { "exited" }.into();
                }
            }
            Action::Remove { id, .. } => held.containers.retain(|c| &c.id != id),
            // Not a Docker action: the engine sends these elsewhere.
            _ => {}
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Containers for FakeContainers {
    fn observe<'a>(
        &'a self,
        account: Option<&'a str>,
    ) -> BoxFuture<'a, Result<BTreeMap<String, ObservedAccount>, DockerError>> {
        Box::pin(async move {
            let all = lock(&self.accounts);
            Ok(all
                .iter()
                .filter(|(a, _)| account.is_none_or(|want| want == a.as_str()))
                .map(|(a, o)| (a.clone(), o.clone()))
                .collect())
        })
    }

    fn execute<'a>(
        &'a self,
        account: &'a str,
        action: &'a Action,
    ) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            lock(&self.log).push(format!("{} {}", action.kind(), action.target()));
            self.apply(account, action)
        })
    }

    fn upload<'a>(
        &'a self,
        _id: &'a str,
        _name: &'a str,
        _files: &'a [(String, Vec<u8>)],
    ) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async { Ok(()) })
    }

    fn take_pulled(&self) -> Vec<String> {
        Vec::new()
    }

    fn docker(&self) -> Option<&DockerBackend> {
        None
    }
}
