//! Noticing pushes where GitLab's webhooks cannot reach Berth (a campus
//! firewall between them): each round asks every known workspace
//! repository where its default branch points (`git ls-remote`, nothing
//! fetched, [`PARALLEL`] at a time, each bounded in time), then asks
//! GitLab's event list who pushed each branch that moved. A moved branch
//! becomes the same authenticated push a webhook delivers, and is checked
//! the same way (pusher, LDAP identity, validation, policy); a commit
//! GitLab names no pusher for is asked about again next round, never
//! applied without one.

use crate::clients::{Context, ReconcileError};
use berth_webhook::SyncRequest;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remotes asked at once: enough to hide round trips, few enough that a
/// round never looks like a flood to GitLab.
pub const PARALLEL: usize = 16;

/// How long one `ls-remote` may take; a remote past it is skipped this
/// round.
pub const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// What one round found.
#[derive(Debug, Default)]
pub struct Round {
    /// Repositories asked.
    pub polled: usize,
    /// Moved branches with their pusher: pushes to reconcile.
    pub pushes: Vec<SyncRequest>,
    /// `(account, sha)` of moved branches GitLab names no pusher for yet.
    pub unattributed: Vec<(String, String)>,
    /// `(account, why)` of repositories that could not be asked.
    pub failed: Vec<(String, String)>,
    /// Time spent asking the remotes, and asking GitLab who pushed.
    pub asked: Duration,
    pub attributed: Duration,
}

/// Remembers what each round handed on, so a commit that was refused is
/// not handed on again every round; one poller lives as long as `serve`.
#[derive(Default)]
pub struct Poller {
    submitted: Mutex<HashMap<String, String>>,
}

/// A branch that moved past what is accepted.
struct Moved {
    project: crate::store::WatchedProject,
    branch: String,
    sha: String,
}

impl Poller {
    /// One round over every repository the store knows a project for.
    pub async fn round(&self, ctx: &Context) -> Result<Round, ReconcileError> {
        let (Some(mirrors), Some(gitlab)) = (&ctx.mirrors, &ctx.gitlab) else {
            return Err(ReconcileError::NoGitLab);
        };
        let watched = ctx.store.call(|s| s.watched_projects()).await?;
        let mut round = Round {
            polled: watched.len(),
            ..Round::default()
        };
        let started = Instant::now();
        let heads: Vec<_> = futures::stream::iter(watched)
            .map(|p| async move {
                let head = mirrors
                    .remote_head(&p.account, p.path.as_deref(), LS_REMOTE_TIMEOUT)
                    .await;
                (p, head)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        round.asked = started.elapsed();
        let mut moved = Vec::new();
        {
            let mut submitted = self.submitted.lock().unwrap_or_else(|e| e.into_inner());
            for (project, head) in heads {
                match head {
                    Err(e) => round.failed.push((project.account, e.message)),
                    Ok(None) => {}
                    Ok(Some(head)) if project.accepted.as_deref() == Some(head.sha.as_str()) => {
                        submitted.remove(&project.account);
                    }
                    Ok(Some(head)) if submitted.get(&project.account) == Some(&head.sha) => {}
                    Ok(Some(head)) => moved.push(Moved {
                        project,
                        branch: head.branch,
                        sha: head.sha,
                    }),
                }
            }
        }
        let started = Instant::now();
        let named: Vec<_> = futures::stream::iter(moved)
            .map(|m| async move {
                let pusher = gitlab.pusher_of(m.project.project, &m.branch, &m.sha).await;
                (m, pusher)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        round.attributed = started.elapsed();
        let repository = ctx.site.repositories.repository();
        let mut submitted = self.submitted.lock().unwrap_or_else(|e| e.into_inner());
        for (m, pusher) in named {
            match pusher {
                Err(e) => round.failed.push((m.project.account, e.to_string())),
                Ok(None) => round.unattributed.push((m.project.account, m.sha)),
                Ok(Some(p)) => {
                    submitted.insert(m.project.account.clone(), m.sha.clone());
                    round.pushes.push(SyncRequest {
                        account: m.project.account,
                        repository: repository.to_string(),
                        project_id: Some(m.project.project),
                        path: m.project.path,
                        delivery: Some(format!("poll-{}", crate::engine::reconcile::short(&m.sha))),
                        revision: Some(m.sha),
                        pusher: Some(p.username),
                        pusher_id: Some(p.id),
                        preview: None,
                    });
                }
            }
        }
        round.pushes.sort_by(|a, b| a.account.cmp(&b.account));
        round.unattributed.sort();
        round.failed.sort();
        Ok(round)
    }
}
