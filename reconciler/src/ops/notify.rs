//! Mail to students: [`Mailer`] sends over SMTP as `site.yaml`'s `notify`
//! says (STARTTLS, TLS or none; rustls on ring), and [`flush`] sends the
//! digests [`berth_core::notify::due`] decides, to each account's
//! directory `mail`, recording each (audit `mail`) once it is accepted.
//! [`Chat`] posts what admins chose to their chat's incoming webhook.

use crate::clients::Context;
use berth_core::notify::{Event, Pacing, due};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;

/// An SMTP client for the site's relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    pacing: Pacing,
}

/// How long one SMTP conversation, or one chat post, may take.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl Mailer {
    /// The mailer `site.yaml` describes; `None` without `notify`.
    pub fn from_site(site: &berth_spec::Site) -> Result<Option<Mailer>, String> {
        let Some(n) = &site.notify else {
            return Ok(None);
        };
        crate::base::tls::install_provider();
        let host = n.smtp.host.as_str();
        let builder = match n.smtp.security {
            berth_spec::site::SmtpSecurity::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| format!("notify.smtp: {e}"))?
            }
            berth_spec::site::SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                    .map_err(|e| format!("notify.smtp: {e}"))?
            }
            berth_spec::site::SmtpSecurity::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            }
        };
        let mut builder = builder.port(n.smtp.port).timeout(Some(SEND_TIMEOUT));
        if let (Some(user), Some(env)) = (&n.smtp.username, &n.smtp.password_env) {
            let password = std::env::var(env.as_str())
                .map_err(|_| format!("notify.smtp.password_env: `{}` is not set", env.value))?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Mailbox = n
            .smtp
            .from
            .parse()
            .map_err(|e| format!("notify.smtp.from `{}`: {e}", n.smtp.from.value))?;
        let every = berth_spec::site::millis_or(&n.every, std::time::Duration::from_secs(15 * 60));
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            pacing: Pacing {
                every,
                per_day: n.per_day,
                listed: 20,
            },
        }))
    }
}

/// Sends every digest due now; what failed stays in the outbox for the
/// next try. The number of mails sent.
pub async fn flush(ctx: &Arc<Context>, mailer: &Mailer) -> usize {
    let now = crate::store::now_ms();
    let (pending, sent, muted) = match ctx.store.call(|s| s.notify_state()).await {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(cause = %e, "reading the mail outbox");
            return 0;
        }
    };
    if pending.is_empty() {
        return 0;
    }
    let events: Vec<Event> = pending.iter().map(|(_, e)| e.clone()).collect();
    let mut mailed = 0;
    for digest in due(now, &events, &sent, &muted, mailer.pacing) {
        let up_to = pending
            .iter()
            .filter(|(_, e)| e.account == digest.account)
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        let to = match ctx.directory.lookup(&digest.account).await {
            Ok(Some(a)) => a.mail,
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(account = %digest.account, cause = %e, "looking up a mail address");
                continue;
            }
        };
        let Some(to) = to.and_then(|m| m.parse::<Mailbox>().ok()) else {
            // No address: nothing can be sent; drop what waits so it does
            // not grow, and say so once in the audit log.
            let (account, subject) = (digest.account.clone(), digest.subject.clone());
            let _ = ctx
                .store
                .call(move |s| {
                    s.notified(
                        &account,
                        up_to,
                        now,
                        &format!("not mailed (no address): {subject}"),
                    )
                })
                .await;
            continue;
        };
        let message = Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(digest.subject.clone())
            .body(digest.body.clone());
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(account = %digest.account, cause = %e, "building a mail");
                continue;
            }
        };
        match mailer.transport.send(message).await {
            Ok(_) => {
                mailed += 1;
                let (account, subject) = (digest.account.clone(), digest.subject.clone());
                if let Err(e) = ctx
                    .store
                    .call(move |s| s.notified(&account, up_to, now, &subject))
                    .await
                {
                    tracing::warn!(cause = %e, "recording a mail sent");
                }
            }
            Err(e) => tracing::warn!(account = %digest.account, cause = %e, "sending a mail"),
        }
    }
    mailed
}

/// The admins' chat: a Mattermost- or Slack-compatible incoming webhook.
pub struct Chat {
    http: reqwest::Client,
    url: String,
    wanted: std::collections::BTreeSet<berth_core::notify::Category>,
    /// At most one post this often.
    pub every: std::time::Duration,
}

/// Events listed in one chat post.
const CHAT_LISTED: usize = 30;

impl Chat {
    /// The chat `site.yaml` describes; `None` without `notify.chat`.
    pub fn from_site(site: &berth_spec::Site) -> Result<Option<Chat>, String> {
        let Some(c) = site.notify.as_ref().and_then(|n| n.chat.as_ref()) else {
            return Ok(None);
        };
        let url = std::env::var(c.url_env.as_str())
            .map_err(|_| format!("notify.chat.url_env: `{}` is not set", c.url_env.value))?;
        crate::base::tls::install_provider();
        let http = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("notify.chat: {e}"))?;
        Ok(Some(Chat {
            http,
            url,
            wanted: c
                .categories
                .iter()
                .filter_map(|n| berth_core::notify::Category::named(n))
                .collect(),
            every: berth_spec::site::duration_or(&c.every, std::time::Duration::from_secs(60)),
        }))
    }
}

/// Posts what waits for the chat, if anything wanted does; drops the
/// rest. Whether the chat was called (a failed post is tried again, but
/// no sooner than the next `every`).
pub async fn post(ctx: &Arc<Context>, chat: &Chat) -> bool {
    let pending = match ctx.store.call(|s| s.chat_pending()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(cause = %e, "reading the chat outbox");
            return false;
        }
    };
    let Some(up_to) = pending.iter().map(|(id, _)| *id).max() else {
        return false;
    };
    let events: Vec<Event> = pending.into_iter().map(|(_, e)| e).collect();
    let posted = match berth_core::notify::chat_text(&events, &chat.wanted, CHAT_LISTED) {
        None => false,
        Some(text) => {
            let sent = chat
                .http
                .post(&chat.url)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .and_then(|r| r.error_for_status());
            match sent {
                Ok(_) => true,
                Err(e) => {
                    // The URL holds the webhook's secret: never logged.
                    tracing::warn!(cause = %e.without_url(), "posting to the admins' chat");
                    return true;
                }
            }
        }
    };
    if let Err(e) = ctx.store.call(move |s| s.chat_posted(up_to)).await {
        tracing::warn!(cause = %e, "clearing the chat outbox");
    }
    posted
}
