//! The console's notifications page: which mail a student receives. Each
//! category can be muted except those that stop the student's work
//! (dormancy, the account stopped), which are always sent; each change is
//! audited.

use super::{Console, Me, render, to_login};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::notify::Category;
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "notifications.html")]
struct Page {
    me: Option<Me>,
    csrf: String,
    /// Whether the site sends mail at all.
    mails: bool,
    /// The directory's address mail goes to.
    address: Option<String>,
    /// (form value, title, told, may be muted).
    categories: Vec<(String, String, bool, bool)>,
}

/// The form value of a category (its stored name).
fn value(c: Category) -> String {
    c.name().to_string()
}

pub(super) async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let account = s.account.clone();
    let muted = c
        .ctx
        .store
        .call(move |st| st.muted(&account))
        .await
        .unwrap_or_default();
    let address = c
        .ctx
        .directory
        .lookup(&s.account)
        .await
        .ok()
        .flatten()
        .and_then(|a| a.mail);
    render(Page {
        me: Some(Me::from(&s)),
        csrf: s.csrf.clone(),
        mails: c.ctx.site.notify.is_some(),
        address,
        categories: Category::ALL
            .iter()
            .map(|&k| {
                (
                    value(k),
                    k.title().to_string(),
                    !muted.contains(&k),
                    k.mutable(),
                )
            })
            .collect(),
    })
}

/// The largest notifications form taken: the page's own is under 1 KiB
/// (a token and a box per category); anything larger is refused (413)
/// before it is read.
pub(super) const FORM_LIMIT: usize = 16 * 1024;

/// Saves the page: a category is told when its box is ticked.
pub(super) async fn save(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    let s = match c.posted_session(&headers, csrf).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let told: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "tell")
        .map(|(_, v)| v.clone())
        .collect();
    let account = s.account.clone();
    let saved = c
        .ctx
        .store
        .call(move |st| {
            let mut changed = Vec::new();
            let before = st.muted(&account)?;
            for k in Category::ALL.into_iter().filter(|k| k.mutable()) {
                let mute = !told.contains(&value(k));
                if mute != before.contains(&k) {
                    st.set_muted(&account, k, mute)?;
                    changed.push(format!(
                        "{} {}",
                        if mute { "muted" } else { "unmuted" },
                        value(k)
                    ));
                }
            }
            if !changed.is_empty() {
                st.audit(&account, "notifications", None, &changed.join(", "))?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await;
    match saved {
        Ok(()) => Redirect::to("/my/notifications").into_response(),
        Err(e) => {
            tracing::warn!(cause = %e, "saving notification settings");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the settings could not be saved; try again\n",
            )
                .into_response()
        }
    }
}
