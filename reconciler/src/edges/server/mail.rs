//! The mail loop of `serve`: every [`TICK`], the digests due are sent
//! (see [`crate::ops::notify`]). Off without `notify` in `site.yaml`.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;

/// How often the outbox is looked at; the site's `notify.every` paces
/// each student.
pub const TICK: Duration = Duration::from_secs(2);

pub(super) async fn mail_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mailer = match crate::ops::notify::Mailer::from_site(&shared.ctx.site) {
        Ok(Some(m)) => m,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(cause = %e, "no mail to students");
            return;
        }
    };
    let mut ticks = super::background::ticks(TICK);
    while super::background::next_tick(&mut ticks, &mut stop).await {
        let sent = crate::ops::notify::flush(&shared.ctx, &mailer).await;
        if sent > 0 {
            tracing::info!(sent, "mailed students");
        }
    }
}
