//! `GET /registry/token`: the registry token endpoint. The registry's
//! challenge sends clients here with `service` and `scope`; they come with
//! HTTP Basic credentials and leave with a token granting what they may
//! (see [`crate::edges::token`]).

use super::Shared;
use crate::edges::token::TokenError;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use berth_core::grants::parse_scopes;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) fn routes(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/registry/token", axum::routing::get(token))
        .with_state(shared)
}

/// User and password of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errors": [{ "code": code, "message": message }] })),
    )
        .into_response()
}

async fn token(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(service) = shared.tokens.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "this Berth does not serve registry tokens".into(),
        );
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    if let Some((_, asked)) = pairs.iter().find(|(k, _)| k == "service")
        && asked != service.service()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("unknown service `{asked}`"),
        );
    }
    let scopes = parse_scopes(
        pairs
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let ctx = &shared.ctx;
    match service
        .issue(
            crate::edges::token::Backing {
                site: &ctx.site,
                directory: &ctx.directory,
                store: &ctx.store,
                registry: ctx.registry.as_ref(),
            },
            basic(&headers),
            shared.logins.proxies.client(client.ip(), &headers),
            &scopes,
        )
        .await
    {
        Ok(issued) => axum::Json(issued).into_response(),
        Err(TokenError::Unauthorized(why)) => {
            let mut resp = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why.into());
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"Berth registry\""),
            );
            resp
        }
        Err(e @ TokenError::Login(crate::edges::login::LoginError::Throttled(wait))) => {
            let mut resp = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                e.to_string(),
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "registry token");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the token service cannot check credentials now; try again".into(),
            )
        }
    }
}
