//! The mail loop of `serve`: every [`TICK`], the digests due are sent
//! (see [`crate::ops::notify`]), and the admins' chat is posted to at most
//! once per its `every`. Off without `notify` in `site.yaml`.

use super::Shared;
use std::sync::Arc;
use std::time::Duration;

/// How often the outbox is looked at; the site's `notify.every` paces
/// each student.
pub const TICK: Duration = Duration::from_secs(2);

pub(super) async fn mail_loop(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let site = &shared.ctx.site;
    let mailer = crate::ops::notify::Mailer::from_site(site).unwrap_or_else(|e| {
        tracing::error!(cause = %e, "no mail to students");
        None
    });
    let chat = crate::ops::notify::Chat::from_site(site).unwrap_or_else(|e| {
        tracing::error!(cause = %e, "no posts to the admins' chat");
        None
    });
    if mailer.is_none() && chat.is_none() {
        return;
    }
    let mut last_post: Option<std::time::Instant> = None;
    let mut ticks = super::background::ticks(TICK);
    while super::background::next_tick(&mut ticks, &mut stop).await {
        if let Some(mailer) = &mailer {
            let sent = crate::ops::notify::flush(&shared.ctx, mailer).await;
            if sent > 0 {
                tracing::info!(sent, "mailed students");
            }
        }
        if let Some(chat) = &chat
            && last_post.is_none_or(|t| t.elapsed() >= chat.every)
            && crate::ops::notify::post(&shared.ctx, chat).await
        {
            last_post = Some(std::time::Instant::now());
        }
    }
}
