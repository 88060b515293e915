//! A terminal in one of the account's running Docker containers: a TTY
//! exec bridged to xterm.js over a WebSocket (Origin-checked), with resize,
//! an idle timeout, and its start and end audited (never its keystrokes).

use super::containers::{Use, audit_use, denied, owned, session_and_container};
use super::{Console, Me, Session, forbidden, render};
use crate::backends::docker::Owned;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(askama::Template)]
#[template(path = "terminal.html")]
struct TerminalPage {
    me: Option<Me>,
    name: String,
    ws: String,
    shell: String,
    idle: String,
}

pub(super) async fn terminal_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = match session_and_container(&c, &headers, &name, Use::Terminal, "terminal").await {
        Ok((s, _, _)) => s,
        Err(answer) => return answer,
    };
    let console = &c.ctx.site.console;
    render(TerminalPage {
        me: Some(Me::from(&s)),
        ws: format!("/my/containers/{name}/terminal/ws"),
        name,
        shell: console.shell.join(" "),
        idle: console.terminal_idle.value.clone(),
    })
}

/// Largest WebSocket message from the page (keystrokes, a paste, a
/// resize); a larger one closes the terminal.
pub(super) const MAX_MESSAGE: usize = 256 * 1024;

/// A message from the page: keystrokes, or `{"resize": [cols, rows]}`.
#[derive(serde::Deserialize)]
struct Resize {
    resize: (u16, u16),
}

pub(super) async fn terminal_ws(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(s) = c.session(&headers).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // A WebSocket carries cookies from any site: only this one's pages.
    if !super::same_origin(&headers, true) {
        return forbidden("the terminal opens only from Berth's own pages");
    }
    let Some((_, container)) = owned(&c, &s, &name, Use::Terminal).await else {
        return denied(&c, &s, &name, "terminal");
    };
    if !container.running {
        return (StatusCode::CONFLICT, "the container is not running\n").into_response();
    }
    let Some(slot) = c.terminals.take(&s.account) else {
        return super::too_many(c.terminals.max(), "terminals");
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            run_terminal(c, s, name, container, socket).await;
            drop(slot);
        })
}

async fn run_terminal(
    c: Arc<Console>,
    s: Session,
    name: String,
    container: Owned,
    socket: WebSocket,
) {
    let Some((backend, _)) = owned(&c, &s, &name, Use::Terminal).await else {
        return;
    };
    let shell = c.ctx.site.console.shell.clone();
    let idle =
        berth_spec::site::duration_or(&c.ctx.site.console.terminal_idle, Duration::from_secs(1800));
    let (mut to_page, mut from_page) = socket.split();
    let mut tty = match backend.tty_owned(&container, &shell).await {
        Ok(t) => t,
        Err(e) => {
            let _ = to_page
                .send(Message::Text(
                    format!(
                        "\r\n[berth: {}]\r\n",
                        c.failure(&s.account, &format!("starting {}", shell.join(" ")), &e)
                    )
                    .into(),
                ))
                .await;
            return;
        }
    };
    let started = Instant::now();
    audit_use(
        &c,
        &s,
        &container,
        "console-terminal",
        &format!("opened in `{name}`"),
    );
    let mut last_input = Instant::now();
    let lost = c.clone().standing_lost(s.account.clone());
    tokio::pin!(lost);
    let ended = super::containers::access_ended(c.clone(), s.clone(), name.clone(), Use::Terminal);
    tokio::pin!(ended);
    loop {
        let deadline = tokio::time::Instant::from_std(last_input + idle);
        tokio::select! {
            _ = &mut lost => {
                let _ = to_page
                    .send(Message::Text("\r\n[berth: closed: your account may no longer use Berth]\r\n".into()))
                    .await;
                break;
            }
            _ = &mut ended => {
                let _ = to_page
                    .send(Message::Text("\r\n[berth: closed: the access you were granted has ended]\r\n".into()))
                    .await;
                break;
            }
            out = tty.output.next() => match out {
                Some(Ok(chunk)) => {
                    if to_page.send(Message::Binary(chunk.into_bytes())).await.is_err() {
                        break;
                    }
                }
                _ => break,
            },
            msg = from_page.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    last_input = Instant::now();
                    if tokio::io::AsyncWriteExt::write_all(&mut tty.input, &bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    last_input = Instant::now();
                    match serde_json::from_str::<Resize>(&text) {
                        Ok(Resize { resize: (cols, rows) }) => {
                            let _ = backend.resize(&tty.exec, cols.max(1), rows.max(1)).await;
                        }
                        Err(_) => {
                            if tokio::io::AsyncWriteExt::write_all(&mut tty.input, text.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = to_page
                    .send(Message::Text("\r\n[berth: closed after no input]\r\n".into()))
                    .await;
                break;
            }
        }
    }
    // Ending the shell ends the exec; dropping its input closes it.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut tty.input, b"\x04exit\n").await;
    let _ = to_page.send(Message::Close(None)).await;
    audit_use(
        &c,
        &s,
        &container,
        "console-terminal",
        &format!("closed in `{name}` after {} s", started.elapsed().as_secs()),
    );
}
