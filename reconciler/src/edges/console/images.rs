//! The console's images: the account's own images and the shared catalogue
//! (how many accounts use each, never who), a Singularity-ready
//! `docker-archive` of any image the account may use (streamed), deleting
//! one's own images, and personal registry tokens.

use super::{Console, Me, Session, render, to_login};
use axum::body::Body;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_spec::ImageRef;
use std::sync::Arc;

pub(super) struct Own {
    pub reference: String,
    pub digest: String,
    pub size: u64,
    pub shared: bool,
}

pub(super) struct SharedRow {
    pub repository: String,
    pub tags: Vec<String>,
    pub description: String,
    pub accounts_using: usize,
}

pub(super) struct TokenRow {
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(askama::Template)]
#[template(path = "images.html")]
struct ImagesPage {
    me: Option<Me>,
    account: String,
    csrf: String,
    registry: Option<String>,
    own: Vec<Own>,
    shared: Vec<SharedRow>,
    tokens: Option<Vec<TokenRow>>,
    new_token: Option<String>,
}

async fn page_for(c: &Console, s: &Session, new_token: Option<String>) -> Response {
    let catalogue = c.catalogue.read().await;
    let own = catalogue
        .iter()
        .filter(|e| e.owner == s.account)
        .map(|e| Own {
            reference: e.reference.clone(),
            digest: e.digest.clone(),
            size: e.size,
            shared: e.shared,
        })
        .collect();
    let shared = crate::ops::catalogue::shared_view(&catalogue)
        .into_iter()
        .map(|r| SharedRow {
            repository: r.repository,
            tags: r.tags,
            description: r.description.unwrap_or_default(),
            accounts_using: r.accounts_using,
        })
        .collect();
    let tokens = match &c.ctx.registry_keys {
        Some(_) => {
            let account = s.account.clone();
            Some(
                c.ctx
                    .store
                    .call(move |st| st.registry_tokens(&account))
                    .await
                    .unwrap_or_default(),
            )
        }
        None => None,
    };
    let tokens = tokens.map(|t| {
        t.into_iter()
            .map(|t| TokenRow {
                name: t.name,
                created: crate::ops::view::rfc3339(t.created),
                last_used: t
                    .last_used
                    .map(crate::ops::view::rfc3339)
                    .unwrap_or_else(|| "never".into()),
            })
            .collect()
    });
    render(ImagesPage {
        me: Some(Me::from(s)),
        account: s.account.clone(),
        csrf: s.csrf.clone(),
        registry: c.ctx.site.registry.as_ref().map(|r| r.host.value.clone()),
        own,
        shared,
        tokens,
        new_token,
    })
}

pub(super) async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    page_for(&c, &s, None).await
}

#[derive(serde::Deserialize)]
pub(super) struct ArchiveQuery {
    image: String,
}

/// `docker save` of an image the account may use, streamed from the
/// account's Docker host: `singularity build x.sif docker-archive://FILE`.
pub(super) async fn archive(
    State(c): State<Arc<Console>>,
    Query(q): Query<ArchiveQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let image = match ImageRef::parse(q.image.trim()) {
        Ok(i) => i,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let shared: berth_spec::policy::Shared = c
        .ctx
        .store
        .call(|st| st.shares())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|sh| sh.repository)
        .collect();
    if let Err(why) =
        berth_spec::policy::image_allowed_with(&c.ctx.site, &s.account, &image, &shared)
    {
        c.audit(
            &s.account,
            "console-denied",
            &format!("archive of {image}: {why}"),
        );
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    let account = s.account.clone();
    let placed = c
        .ctx
        .store
        .call(move |st| st.placement(&account))
        .await
        .ok()
        .flatten();
    let backend = placed.and_then(|ep| c.ctx.dockerd(&ep)).or_else(|| {
        c.ctx
            .docker
            .values()
            .find_map(|b| b.as_ref().ok().and_then(|b| b.docker()))
    });
    let Some(backend) = backend else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no Docker host is reachable\n",
        )
            .into_response();
    };
    let reference = image.to_string();
    match backend.save(&reference).await {
        Ok(stream) => {
            c.audit(&s.account, "console-archive", &reference);
            let file: String = image
                .repository()
                .rsplit('/')
                .next()
                .unwrap_or("image")
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || "._-".contains(*ch))
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "application/x-tar".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}.docker-archive.tar\""),
                    ),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{}\n", c.failure(&s.account, "the image archive", &e)),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TokenForm {
    csrf: Option<String>,
    name: String,
}

fn token_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
}

pub(super) async fn create_token(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    if c.ctx.registry_keys.is_none() || !token_name_ok(&form.name) {
        return (
            StatusCode::BAD_REQUEST,
            "a token name is 1 to 64 letters, digits, `.`, `_` or `-`\n",
        )
            .into_response();
    }
    // Bound to the directory entry behind the session, with the site's
    // default lifetime.
    let ctx = &c.ctx;
    let entry = match c.logins.member(&ctx.site, &ctx.directory, &s.account).await {
        Ok(member) => member.account.entry,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", c.failure(&s.account, "creating the token", &e)),
            )
                .into_response();
        }
    };
    let expires = match crate::edges::token::personal_expiry(&ctx.site, None) {
        Ok(at) => at,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    let (secret, hash) = crate::edges::token::new_personal_token();
    let (account, name) = (s.account.clone(), form.name.clone());
    match c
        .ctx
        .store
        .call(move |st| st.add_registry_token(&account, &entry, &name, &hash, expires))
        .await
    {
        Ok(true) => {
            c.audit(
                &s.account,
                "registry-token",
                &format!("created `{}`", form.name),
            );
            page_for(&c, &s, Some(secret)).await
        }
        Ok(false) => (
            StatusCode::CONFLICT,
            "a token of that name exists; revoke it first\n",
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", c.failure(&s.account, "creating the token", &e)),
        )
            .into_response(),
    }
}

pub(super) async fn revoke_token(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let (account, name) = (s.account.clone(), form.name.clone());
    let _ = c
        .ctx
        .store
        .call(move |st| st.revoke_registry_token(&account, &name))
        .await;
    c.audit(
        &s.account,
        "registry-token",
        &format!("revoked `{}`", form.name),
    );
    page_for(&c, &s, None).await
}

#[derive(serde::Deserialize)]
pub(super) struct DeleteForm {
    csrf: Option<String>,
    image: String,
}

/// Deletes one of the account's own images from the registry (its
/// manifest: every tag naming the same digest goes with it), refused while
/// an accepted revision of any account runs it. What runs is read afresh,
/// not from the catalogue of up to five minutes ago. Audited.
pub(super) async fn delete_image(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<DeleteForm>,
) -> Response {
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let Some(registry) = &c.ctx.registry else {
        return super::not_found(Some(Me::from(&s)));
    };
    let entries = match crate::ops::catalogue::catalogue(&c.ctx).await {
        Ok(entries) => entries.unwrap_or_default(),
        Err(e) => {
            let why = c.failure(&s.account, "reading the registry", &e);
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
        }
    };
    let Some(entry) = entries
        .iter()
        .find(|e| e.reference == form.image && e.owner == s.account)
    else {
        // Another's image and a missing one look the same.
        return super::not_found(Some(Me::from(&s)));
    };
    // The manifest goes with every tag of it in the repository.
    let going: Vec<_> = entries
        .iter()
        .filter(|e| e.owner == entry.owner && e.name == entry.name && e.digest == entry.digest)
        .collect();
    let users: std::collections::BTreeSet<&String> = going.iter().flat_map(|e| &e.users).collect();
    if !users.is_empty() {
        return (
            StatusCode::CONFLICT,
            format!(
                "`{}` is run by the accepted workspace of {} account(s); change those workspaces first\n",
                entry.reference,
                users.len()
            ),
        )
            .into_response();
    }
    let repository = format!("{}/{}", entry.owner, entry.name);
    match registry.delete_manifest(&repository, &entry.digest).await {
        Ok(_) => {
            let tags: Vec<&str> = going.iter().map(|e| e.tag.as_str()).collect();
            c.audit(
                &s.account,
                "image-deleted",
                &format!("{repository}@{} (tags {})", entry.digest, tags.join(", ")),
            );
            let mut catalogue = c.catalogue.write().await;
            catalogue.retain(|e| {
                !(e.owner == entry.owner && e.name == entry.name && e.digest == entry.digest)
            });
            drop(catalogue);
            axum::response::Redirect::to("/my/images").into_response()
        }
        Err(e) => {
            let why = c.failure(&s.account, "deleting the image", &e);
            (StatusCode::BAD_GATEWAY, format!("{why}\n")).into_response()
        }
    }
}
