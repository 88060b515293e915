//! The console's GPUs page (`/gpus`, for admins and the site's bookers):
//! every card of every host, who holds it and until when, what is
//! booked, the line; and a form to book cards for a group.

use super::{Console, Me, not_found, render, to_login};
use crate::ops::lending::{CardLine, WaitLine};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "admin_gpus.html")]
struct AdminGpusPage {
    me: Option<Me>,
    cards: Vec<CardLine>,
    waiting: Vec<WaitLine>,
    bookings: Vec<String>,
    error: Option<String>,
    /// Groups this session may book cards for.
    may_book: Vec<String>,
    csrf: String,
}

fn when(ms: Option<i64>) -> String {
    ms.map(|m| crate::base::time::rfc3339(m / 1000))
        .unwrap_or_default()
}

impl AdminGpusPage {
    fn until(&self, c: &CardLine) -> String {
        when(c.until)
    }

    fn estimate(&self, w: &WaitLine) -> String {
        w.estimate
            .map(|e| when(Some(e)))
            .unwrap_or_else(|| "no card of its model".into())
    }
}

/// The groups `s` may book cards for: any group with a quota for an
/// admin; for a member of a `policy.gpus.bookers` group, its list.
async fn may_book(c: &Console, s: &crate::store::Session) -> Vec<String> {
    let site = &c.ctx.site;
    if s.admin {
        return site.policy.quotas.keys().cloned().collect();
    }
    let Ok(groups) = c.ctx.directory.groups(&s.account).await else {
        return vec![];
    };
    let mut out: Vec<String> = site
        .policy
        .gpus
        .bookers
        .iter()
        .filter(|(g, _)| groups.contains(g))
        .flat_map(|(_, for_groups)| for_groups.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let may_book = may_book(&c, &s).await;
    if !s.admin && may_book.is_empty() {
        return not_found(Some(Me::from(&s)));
    }
    let (overview, error) = match crate::ops::lending::overview(&c.ctx).await {
        Ok(o) => (o, None),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let bookings = overview
        .bookings
        .iter()
        .map(|b| {
            format!(
                "#{}: {} of {} for {}, {} to {}",
                b.id,
                b.cards.join(", "),
                b.endpoint,
                b.group,
                when(Some(b.start)),
                when(Some(b.end))
            )
        })
        .collect();
    render(AdminGpusPage {
        me: Some(Me::from(&s)),
        cards: overview.cards,
        waiting: overview.waiting,
        bookings,
        error,
        may_book,
        csrf: s.csrf.clone(),
    })
}

#[derive(serde::Deserialize)]
pub(super) struct BookForm {
    csrf: Option<String>,
    group: String,
    count: u32,
    #[serde(default)]
    model: String,
    /// `2026-12-07T09:00` (a browser's datetime-local, taken as UTC) or
    /// RFC 3339.
    from: String,
    to: String,
}

fn instant(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<jiff::Timestamp>()
        .or_else(|_| format!("{text}:00Z").parse::<jiff::Timestamp>())
        .or_else(|_| format!("{text}Z").parse::<jiff::Timestamp>())
        .ok()
        .map(|t| t.as_millisecond())
}

/// Books cards from the page, for a group the session may book for.
pub(super) async fn book(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<BookForm>,
) -> Response {
    use axum::response::IntoResponse;
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    if !may_book(&c, &s).await.contains(&form.group) {
        c.audit(
            &s.account,
            "console-denied",
            &format!("booking GPUs for `{}`", form.group),
        );
        return not_found(Some(Me::from(&s)));
    }
    let (Some(start), Some(end)) = (instant(&form.from), instant(&form.to)) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "from and to must be times (2026-12-07T09:00, UTC)\n",
        )
            .into_response();
    };
    let ask = berth_core::lending::booking::Ask {
        group: form.group.clone(),
        endpoint: None,
        model: Some(form.model.trim().to_string()).filter(|m| !m.is_empty()),
        count: form.count,
        start,
        end,
    };
    match crate::ops::lending::book(&c.ctx, ask, &s.account).await {
        Ok(_) => axum::response::Redirect::to("/gpus").into_response(),
        Err(why) => (axum::http::StatusCode::CONFLICT, format!("{why}\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ExtendForm {
    csrf: Option<String>,
}

/// The student's "more time" on a lent container: its group's
/// `gpu_time` more from now, only while nobody waits on its host and no
/// booking follows (409 with the reason otherwise).
pub(super) async fn extend(
    State(c): State<Arc<Console>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ExtendForm>,
) -> Response {
    use axum::response::IntoResponse;
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let group = c
        .ctx
        .directory
        .groups(&s.account)
        .await
        .map(|g| crate::engine::reconcile::lending::group_for(&c.ctx.site, &g))
        .unwrap_or_default();
    let length = c
        .ctx
        .site
        .policy
        .quotas
        .get(&group)
        .and_then(|q| q.gpu_time.as_ref())
        .map_or(berth_spec::site::DEFAULT_GRANT.to_string(), |t| {
            t.value.clone()
        });
    match crate::ops::lending::extend(&c.ctx, &s.account, &name, &length).await {
        Ok(_) => {
            let _ = c.refresh.try_send(super::FollowUp::View(s.account.clone()));
            axum::response::Redirect::to("/").into_response()
        }
        Err(why) => (axum::http::StatusCode::CONFLICT, format!("{why}\n")).into_response(),
    }
}
