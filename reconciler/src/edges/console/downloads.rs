//! The console's downloads: a starter `workspace.yaml` and `.gitlab-ci.yml`
//! for the account, and a kubeconfig for its namespace.

use super::{Console, Me, not_found, render, to_login};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

#[derive(askama::Template)]
#[template(path = "downloads.html")]
struct DownloadsPage {
    me: Option<Me>,
    kube: bool,
}

pub(super) async fn downloads(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    render(DownloadsPage {
        me: Some(Me::from(&s)),
        kube: c.ctx.site.backends.kubernetes.is_some(),
    })
}

/// A starter `workspace.yaml`, `.gitlab-ci.yml`, or the kubeconfig.
pub(super) async fn download_file(
    State(c): State<Arc<Console>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let attachment = |name: &str, body: String| {
        (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            body,
        )
            .into_response()
    };
    let registry = c
        .ctx
        .site
        .registry
        .as_ref()
        .map(|r| r.host.value.clone())
        .unwrap_or_else(|| "registry.example".into());
    match file.as_str() {
        "workspace.yaml" => attachment(
            "workspace.yaml",
            format!(
                "# Your Berth workspace: commit this file to your repository.\n\
                 version: 1\n\
                 containers:\n  - name: web\n    image: {registry}/{account}/web:latest\n    ports: [8080]\n    resources: {{ cpus: 0.5, memory: 256Mi }}\n\
                 # images:\n#   build:\n#     - {{ name: web, context: web }}\n\
                 runner:\n  enabled: true\n  tags: [docker]\n",
                account = s.account
            ),
        ),
        "gitlab-ci.yml" => attachment(
            ".gitlab-ci.yml",
            format!(
                "# Runs on your own Berth runner (tag `docker`), inside your quota.\n\
                 test:\n  tags: [docker]\n  image: {registry}/{account}/web:latest\n  script:\n    - echo \"hello from $CI_PROJECT_PATH\"\n",
                account = s.account
            ),
        ),
        "kubeconfig" => {
            match crate::backends::kube_apply::student_kubeconfig(&c.ctx.site, &s.account).await {
                Ok(text) => {
                    c.audit(&s.account, "console-kubeconfig", "downloaded");
                    attachment("berth.kubeconfig", text)
                }
                Err(e) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{}\n", c.failure(&s.account, "making the kubeconfig", &e)),
                )
                    .into_response(),
            }
        }
        _ => not_found(Some(Me::from(&s))),
    }
}
