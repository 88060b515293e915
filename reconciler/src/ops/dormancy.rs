//! Dormant workspaces (opt-in, `dormancy` in `site.yaml`): [`tick`] tells
//! a student whose workspace nobody used for `dormant_after` (no push,
//! console login or running container; the rule is
//! `berth_core::dormancy`), withdraws the warning when it is used again,
//! and archives its Docker volumes when the time told comes
//! ([`crate::engine::archive`]).

use crate::clients::Context;
use crate::engine::archive::archive;
use berth_core::dormancy::{Step, Timings};

/// What one [`tick`] did.
#[derive(Debug, Default)]
pub struct Ticked {
    /// Accounts whose state changed (their views are redrawn).
    pub changed: Vec<String>,
    /// Archives that failed (the volume kept; audited `archive-failed`).
    pub failed: u64,
}

/// One look at `accounts` (name, whether it has Docker volumes, whether
/// a non-runner container of it runs): tells, withdraws and archives as
/// the rule says.
pub async fn tick(ctx: &Context, accounts: &[(String, bool, bool)]) -> Ticked {
    let mut ticked = Ticked::default();
    let Some(d) = &ctx.site.dormancy else {
        return ticked;
    };
    let secs = |x: &berth_spec::Located<String>| {
        berth_spec::site::secs_or(x, std::time::Duration::from_secs(i64::MAX as u64 / 4))
    };
    let t = Timings {
        dormant_after: secs(&d.dormant_after),
        archive_after: secs(&d.archive_after),
    };
    let now = crate::store::now();
    let read = ctx
        .store
        .call(|s| {
            Ok::<_, crate::store::StoreError>((
                s.activity()?,
                s.dormancy_told()?,
                s.known_accounts()?,
                s.archived_accounts()?,
            ))
        })
        .await;
    let Ok((activity, told, known, archived)) = read else {
        return ticked;
    };
    for (account, has_volumes, running) in accounts {
        // Only workspaces this Berth knows: volumes another Berth (or a
        // demo) left on a shared host are not its to archive.
        if !known.contains(account) {
            continue;
        }
        // First sight, or in use: used now (a site turning dormancy on
        // does not archive everyone at once).
        if *running || !activity.contains_key(account) {
            let a = account.clone();
            let _ = ctx.store.call(move |s| s.touch_activity(&a, now)).await;
        }
        let last = if *running {
            now
        } else {
            activity.get(account).copied().unwrap_or(now)
        };
        let step = berth_core::dormancy::step(
            now,
            last,
            told.get(account).copied(),
            *has_volumes,
            archived.contains(account),
            t,
        );
        match step {
            Step::Quiet => continue,
            Step::Active => {
                let a = account.clone();
                let _ = ctx
                    .store
                    .call(move |s| {
                        s.set_dormancy_told(&a, None)?;
                        s.audit(&a, "dormancy-withdrawn", None, "used again")
                            .map(|_| ())
                    })
                    .await;
            }
            Step::Tell { archive_at } => {
                let (a, at) = (account.clone(), crate::base::time::rfc3339(archive_at));
                let since = crate::base::time::rfc3339(last);
                let _ = ctx
                    .store
                    .call(move |s| {
                        s.set_dormancy_told(&a, Some(archive_at))?;
                        s.notify(
                            &a,
                            berth_core::notify::Category::Dormancy,
                            &format!("your workspace has not been used since {since}: its volumes will be archived at {at} unless you push, log in to the console or run a container before; nothing is lost, your next push brings them back"),
                        )?;
                        s.audit(&a, "dormancy-told", None, &format!("volumes archived at {at} unless used")).map(|_| ())
                    })
                    .await;
            }
            Step::Archive => match archive(ctx, account).await {
                Ok(done) => {
                    tracing::info!(%account, volumes = done.volumes.len(), "archived a dormant workspace");
                }
                Err(e) => {
                    ticked.failed += 1;
                    tracing::warn!(%account, cause = %e, "archiving a dormant workspace");
                    let (a, why) = (account.clone(), e.to_string());
                    let _ = ctx
                        .store
                        .call(move |s| s.audit(&a, "archive-failed", None, &why).map(|_| ()))
                        .await;
                }
            },
        }
        ticked.changed.push(account.clone());
    }
    ticked
}
