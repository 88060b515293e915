//! The lending loop of `serve`: a lending tick every [`TICK`] (see
//! [`crate::ops::lending`]), then the accounts it lent cards to are
//! reconciled and those whose grants ended are shown so.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;

/// How often grants are checked: a grant ends, and a freed card is lent
/// again, at most this late.
pub const TICK: Duration = Duration::from_secs(2);

pub(super) async fn lending_loop(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if crate::engine::reconcile::lending::cards(&shared.ctx.site).is_empty() {
        return;
    }
    let mut idle = crate::ops::lending::Idle::default();
    let mut ticks = super::background::ticks(TICK);
    while super::background::next_tick(&mut ticks, &mut stop).await {
        match crate::ops::lending::tick(&shared.ctx, &mut idle).await {
            Ok(t) => {
                for account in &t.started {
                    shared.queue.resync(account);
                }
                for account in t.ended.difference(&t.started) {
                    super::refresh_view(
                        &shared,
                        account,
                        crate::clients::Observed::default(),
                        true,
                    )
                    .await;
                }
            }
            Err(e) => tracing::warn!(cause = %e, "GPU lending tick"),
        }
    }
}

/// The account's GPU containers waiting for cards, in a sentence.
pub(super) async fn waiting_gpus(shared: &Arc<Shared>, account: &str) -> Option<String> {
    let overview = crate::ops::lending::overview(&shared.ctx).await.ok()?;
    let lines: Vec<String> = overview
        .waiting
        .iter()
        .filter(|w| w.account == account)
        .map(|w| {
            format!(
                "`{}` waits for GPUs (#{} in line{})",
                w.container,
                w.position,
                w.estimate
                    .map(|e| format!(", about {}", crate::base::time::rfc3339(e / 1000)))
                    .unwrap_or_default()
            )
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}
