//! The console's volumes: each of the account's Docker volumes with its
//! size and last use (as last measured), the containers that mount it
//! (as last observed), and the total against the storage quota; a
//! volume's files as a tar download; and deleting a volume its owner no
//! longer wants, once no workspace declares it and no container mounts it,
//! after they type its name. Berth never deletes a volume on its own: here
//! the owner asks, and it is audited. Admins see every account's volumes,
//! and change none.
//!
//! Which volume a URL names is only a name: the Docker backend checks the
//! volume's `berth.owner` label against the session's account before it
//! reads or removes anything.

use super::{Console, Me, Session, not_found, render, to_login, too_many};
use crate::backends::docker::Deletion;
use crate::ops::view::{AccountView, VolumeView};
use crate::store::VolumeUsage;
use axum::body::Body;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use berth_spec::quantity::describe_bytes;
use std::sync::Arc;

/// Downloads one account may have running at once: each holds a helper
/// container on the host and reads the volume's disk.
pub(super) const DOWNLOADS_AT_ONCE: usize = 2;

pub(super) struct Row {
    pub account: String,
    pub name: String,
    pub endpoint: String,
    pub size: String,
    pub used_by: Vec<String>,
    pub last_used: String,
}

#[derive(askama::Template)]
#[template(path = "volumes.html")]
struct VolumesPage {
    me: Option<Me>,
    csrf: String,
    rows: Vec<Row>,
    usage: String,
    over: bool,
    measured: bool,
    /// `policy.storage.measure_every`, as the site writes it.
    every: String,
}

#[derive(askama::Template)]
#[template(path = "admin_volumes.html")]
struct AdminVolumesPage {
    me: Option<Me>,
    rows: Vec<Row>,
}

/// One table row: what the last observation says (who mounts it, and
/// whether one of them runs) with what the last measurement says (size,
/// last use).
fn row(view: &AccountView, v: &VolumeView, usage: &[VolumeUsage]) -> Row {
    let measured = usage
        .iter()
        .find(|u| u.endpoint == v.endpoint && u.volume == v.volume);
    let running = view
        .containers
        .iter()
        .any(|c| c.state == "running" && v.used_by.contains(&c.container));
    let last_used = match measured {
        _ if running => "in use now".to_string(),
        Some(m) => match m.last_used {
            Some(at) => crate::base::time::rfc3339(at),
            None => format!(
                "no use seen since {}",
                crate::base::time::rfc3339(m.first_seen)
            ),
        },
        None => "not measured yet".to_string(),
    };
    Row {
        account: view.account.clone(),
        name: v.name.clone(),
        endpoint: v.endpoint.clone(),
        size: match measured {
            Some(VolumeUsage { bytes: Some(b), .. }) => describe_bytes(*b),
            Some(_) => "unknown".into(),
            None => "not measured yet".into(),
        },
        used_by: v.used_by.clone(),
        last_used,
    }
}

async fn usage_of(c: &Console, account: Option<&str>) -> Vec<VolumeUsage> {
    let account = account.map(str::to_string);
    c.ctx
        .store
        .call(move |s| s.volume_usage(account.as_deref()))
        .await
        .unwrap_or_default()
}

pub(super) async fn page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let usage = usage_of(&c, Some(&s.account)).await;
    let rows = c
        .views
        .read()
        .await
        .get(&s.account)
        .map(|view| view.volumes.iter().map(|v| row(view, v, &usage)).collect())
        .unwrap_or_default();
    let used: u64 = usage.iter().filter_map(|u| u.bytes).sum();
    let quota = crate::ops::storage::quota_of(&c.ctx, &s.account)
        .await
        .ok()
        .flatten();
    let (usage_text, over) = match quota {
        Some((limit, group)) => (
            format!(
                "Your volumes hold {} of the {} that group {group} allows.",
                describe_bytes(used),
                describe_bytes(limit)
            ),
            used > limit,
        ),
        None => (
            format!("Your volumes hold {}.", describe_bytes(used)),
            false,
        ),
    };
    render(VolumesPage {
        me: Some(Me::from(&s)),
        csrf: s.csrf.clone(),
        rows,
        usage: usage_text,
        over,
        measured: !usage.is_empty(),
        every: c.ctx.site.policy.storage.measure_every.value.clone(),
    })
}

/// Every account's volumes, read-only (admins).
pub(super) async fn admin_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    if !s.admin {
        return not_found(Some(Me::from(&s)));
    }
    let usage = usage_of(&c, None).await;
    let views = c.views.read().await;
    let rows = views
        .values()
        .flat_map(|view| view.volumes.iter().map(|v| row(view, v, &usage)))
        .collect();
    drop(views);
    render(AdminVolumesPage {
        me: Some(Me::from(&s)),
        rows,
    })
}

/// The account's volume `name` as last observed: where it is.
async fn find(c: &Console, s: &Session, name: &str) -> Option<VolumeView> {
    berth_spec::names::dns_label_problem(name, berth_spec::names::MAX_NAME)
        .is_none()
        .then_some(())?;
    c.views
        .read()
        .await
        .get(&s.account)?
        .volumes
        .iter()
        .find(|v| v.name == name)
        .cloned()
}

/// The volume's files as a tar whose top directory is its name, read
/// through a helper container on its host.
pub(super) async fn download(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let Some(v) = find(&c, &s, &name).await else {
        return not_found(Some(Me::from(&s)));
    };
    let Some(docker) = c.ctx.dockerd(&v.endpoint) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the volume's host is not reachable\n",
        )
            .into_response();
    };
    let Some(slot) = c.volume_downloads.take(&s.account) else {
        return too_many(DOWNLOADS_AT_ONCE, "volume downloads");
    };
    // Any image of the account's on that host will do for the helper.
    let image = c.views.read().await.get(&s.account).and_then(|view| {
        view.containers
            .iter()
            .find(|k| k.endpoint.as_deref() == Some(v.endpoint.as_str()))
            .map(|k| k.image.clone())
    });
    match docker
        .volume_archive(&s.account, &v.volume, &v.name, image.as_deref())
        .await
    {
        Ok(Some(stream)) => {
            c.audit(
                &s.account,
                "volume-downloaded",
                &format!("{} on {}", v.volume, v.endpoint),
            );
            // The download's place is held until its stream ends.
            let stream = futures::StreamExt::map(stream, move |r| {
                let _held = &slot;
                r
            });
            (
                [
                    (header::CONTENT_TYPE, "application/x-tar".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.tar\"", v.name),
                    ),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Ok(None) => not_found(Some(Me::from(&s))),
        Err(crate::backends::docker::DockerError::NotOwned { .. })
        | Err(crate::backends::docker::DockerError::HomeVolume(_)) => {
            c.audit(
                &s.account,
                "console-denied",
                &format!("download of volume {}: not the account's", v.volume),
            );
            not_found(Some(Me::from(&s)))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{}\n", c.failure(&s.account, "reading the volume", &e)),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct DeleteForm {
    csrf: Option<String>,
    /// The volume's name, typed again.
    confirm: Option<String>,
}

/// Deletes the account's volume `name` when its owner typed the name,
/// no accepted workspace declares it and no container mounts it.
pub(super) async fn delete(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DeleteForm>,
) -> Response {
    let s = match c.posted_session(&headers, form.csrf.as_deref()).await {
        Ok(s) => s,
        Err(refused) => return refused.into_response(),
    };
    let Some(v) = find(&c, &s, &name).await else {
        return not_found(Some(Me::from(&s)));
    };
    if form.confirm.as_deref().map(str::trim) != Some(v.name.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            format!("type the volume's name, `{}`, to delete it\n", v.name),
        )
            .into_response();
    }
    let declared = match crate::ops::storage::declared(&c.ctx, &s.account).await {
        Ok(d) => d,
        Err(e) => {
            let why = c.failure(&s.account, "reading your accepted workspace", &e);
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
        }
    };
    if declared.contains(&v.volume) {
        return (
            StatusCode::CONFLICT,
            format!(
                "volume `{}` is declared in your accepted workspace.yaml; remove it there (and push) first\n",
                v.name
            ),
        )
            .into_response();
    }
    let Some(docker) = c.ctx.dockerd(&v.endpoint) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the volume's host is not reachable\n",
        )
            .into_response();
    };
    match docker.delete_volume_of(&s.account, &v.volume).await {
        Ok(Deletion::Deleted) => {
            c.audit(
                &s.account,
                "volume-deleted",
                &format!("{} on {}, asked by its owner", v.volume, v.endpoint),
            );
            let (endpoint, volume) = (v.endpoint.clone(), v.volume.clone());
            let _ = c
                .ctx
                .store
                .call(move |st| st.forget_volume(&endpoint, &volume))
                .await;
            // The page the student lands on no longer lists it; the next
            // observation agrees.
            if let Some(view) = c.views.write().await.get_mut(&s.account) {
                view.volumes
                    .retain(|x| !(x.volume == v.volume && x.endpoint == v.endpoint));
            }
            let _ = c.refresh.send(super::FollowUp::View(s.account.clone())).await;
            Redirect::to("/my/volumes").into_response()
        }
        Ok(Deletion::InUse(users)) => (
            StatusCode::CONFLICT,
            format!(
                "volume `{}` is mounted by {} (running or stopped); it can be deleted once no container mounts it\n",
                v.name,
                users.join(", ")
            ),
        )
            .into_response(),
        Ok(Deletion::Missing) => not_found(Some(Me::from(&s))),
        Err(crate::backends::docker::DockerError::NotOwned { .. })
        | Err(crate::backends::docker::DockerError::HomeVolume(_)) => {
            c.audit(
                &s.account,
                "console-denied",
                &format!("delete of volume {}: not the account's", v.volume),
            );
            not_found(Some(Me::from(&s)))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("{}\n", c.failure(&s.account, "deleting the volume", &e)),
        )
            .into_response(),
    }
}
