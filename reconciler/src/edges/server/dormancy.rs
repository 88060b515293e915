//! The dormancy loop of `serve`: every `dormancy.check_every`, each
//! account the read model knows is looked at (see
//! [`crate::ops::dormancy`]). Off without `dormancy` in `site.yaml`.

use super::Shared;
use std::sync::Arc;

pub(super) async fn dormancy_loop(
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(d) = &shared.ctx.site.dormancy else {
        return;
    };
    let every = berth_spec::site::duration_or(&d.check_every, std::time::Duration::from_secs(3600));
    let mut ticks = super::background::ticks(every);
    while super::background::next_tick(&mut ticks, &mut stop).await {
        let accounts: Vec<(String, bool, bool)> = {
            let views = shared.views.read().await;
            views
                .values()
                .map(|v| {
                    let running = v
                        .containers
                        .iter()
                        .any(|c| c.state == "running" && !c.runner);
                    (v.account.clone(), !v.volumes.is_empty(), running)
                })
                .collect()
        };
        let ticked = crate::ops::dormancy::tick(&shared.ctx, &accounts).await;
        shared.metrics.archive_failures(ticked.failed);
        for account in ticked.changed {
            super::refresh_view(&shared, &account, crate::clients::Observed::default(), true).await;
        }
    }
}
