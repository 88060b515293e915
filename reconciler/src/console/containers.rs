//! The console's pages that touch a container: logs, a terminal, files in
//! and out, start/stop/restart. Every handler first finds the container
//! among the session account's observed ones and then asks the backend,
//! whose [`owned`](crate::backend::docker::DockerBackend::owned) checks the
//! `berth.owner` label again; a container that is missing or someone
//! else's gets the same 404, and the attempt is audited.

use super::{Console, Me, Session, csrf_ok, forbidden, not_found, render, to_login};
use crate::backend::docker::{ByteStream, DockerBackend, Owned, Purpose};
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The backend and container `name` if the session's account owns it.
async fn owned<'a>(
    c: &'a Console,
    s: &Session,
    name: &str,
    purpose: Purpose,
) -> Option<(&'a DockerBackend, Owned)> {
    let endpoint = {
        let views = c.views.read().await;
        views
            .get(&s.account)?
            .containers
            .iter()
            .find(|ct| ct.backend == "docker" && ct.container == name)?
            .endpoint
            .clone()?
    };
    let backend = c.ctx.docker.get(&endpoint)?.as_ref().ok()?;
    match backend.owned(&s.account, name, purpose).await {
        Ok(Some(o)) => Some((backend, o)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(cause = %e, container = name, "console: inspecting a container");
            None
        }
    }
}

/// The answer to a container the session may not have, audited.
fn denied(c: &Console, s: &Session, name: &str, what: &str) -> Response {
    c.audit(
        &s.account,
        "console-denied",
        &format!("{what} of `{name}`: not one of the account's containers"),
    );
    not_found(Some(Me::from(s)))
}

/// `/`, `..` and NUL-free absolute paths only.
fn clean_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && path.len() <= 4096
        && !path.contains('\0')
        && path.split('/').all(|part| part != "..");
    ok.then_some(path)
}

#[derive(askama::Template)]
#[template(path = "logs.html")]
struct LogsPage {
    me: Option<Me>,
    name: String,
    tail: u32,
    stream: String,
    initial: String,
}

const TAIL: u32 = 200;

/// Which of the account's workloads a log page is about.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Docker,
    Kubernetes,
}

impl Kind {
    fn base(self, name: &str) -> String {
        match self {
            Kind::Docker => format!("/my/containers/{name}"),
            Kind::Kubernetes => format!("/my/workloads/{name}"),
        }
    }
}

/// The log stream of the account's container or Deployment `name`.
async fn log_stream(
    c: &Console,
    s: &Session,
    kind: Kind,
    name: &str,
    follow: bool,
) -> Option<ByteStream> {
    match kind {
        Kind::Docker => {
            let (backend, container) = owned(c, s, name, Purpose::Operate).await?;
            Some(backend.logs_owned(&container, TAIL, follow))
        }
        Kind::Kubernetes => {
            let cluster = c.ctx.kube.as_ref()?;
            let namespace = cluster.settings.namespace(&s.account);
            let observed = {
                let views = c.views.read().await;
                views.get(&s.account)?.containers.iter().any(|ct| {
                    ct.backend == "kubernetes" && ct.container == format!("{namespace}/{name}")
                })
            };
            if !observed {
                return None;
            }
            let backend = cluster.backend.as_ref().ok()?;
            match backend
                .workload_logs(&s.account, &namespace, name, i64::from(TAIL), follow)
                .await
            {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(cause = %e, workload = name, "console: Kubernetes logs");
                    None
                }
            }
        }
    }
}

async fn logs_page_for(c: Arc<Console>, kind: Kind, name: String, headers: HeaderMap) -> Response {
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    // Ownership is checked by opening the stream (closed at once).
    if log_stream(&c, &s, kind, &name, false).await.is_none() {
        return denied(&c, &s, &name, "logs");
    }
    render(LogsPage {
        me: Some(Me::from(&s)),
        stream: format!("{}/logs/stream", kind.base(&name)),
        name,
        tail: TAIL,
        initial: String::new(),
    })
}

pub(super) async fn logs_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    logs_page_for(c, Kind::Docker, name, headers).await
}

pub(super) async fn workload_logs_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    logs_page_for(c, Kind::Kubernetes, name, headers).await
}

#[derive(serde::Deserialize)]
pub(super) struct FollowQuery {
    follow: Option<bool>,
}

/// Server-sent events, one per log line: the last lines, then following
/// (unless `follow=false`) until the page goes away; the backend's stream
/// is dropped with it.
async fn logs_stream_for(
    c: Arc<Console>,
    kind: Kind,
    name: String,
    follow: bool,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(chunks) = log_stream(&c, &s, kind, &name, follow).await else {
        return denied(&c, &s, &name, "logs");
    };
    let lines = chunks
        .scan(String::new(), |partial, chunk| {
            let mut out = Vec::new();
            match chunk {
                Ok(bytes) => {
                    partial.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(i) = partial.find('\n') {
                        let line: String = partial.drain(..=i).collect();
                        out.push(line.trim_end_matches(['\n', '\r']).to_string());
                    }
                }
                Err(e) => out.push(format!("[berth: the log stream ended: {e}]")),
            }
            futures::future::ready(Some(out))
        })
        .flat_map(futures::stream::iter)
        .map(|line| Ok::<_, std::convert::Infallible>(Event::default().data(line)));
    Sse::new(lines)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(super) async fn logs_stream(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Response {
    logs_stream_for(c, Kind::Docker, name, q.follow.unwrap_or(true), headers).await
}

pub(super) async fn workload_logs_stream(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<FollowQuery>,
    headers: HeaderMap,
) -> Response {
    logs_stream_for(c, Kind::Kubernetes, name, q.follow.unwrap_or(true), headers).await
}

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
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    if owned(&c, &s, &name, Purpose::Enter).await.is_none() {
        return denied(&c, &s, &name, "terminal");
    }
    let console = &c.ctx.site.console;
    render(TerminalPage {
        me: Some(Me::from(&s)),
        ws: format!("/my/containers/{name}/terminal/ws"),
        name,
        shell: console.shell.join(" "),
        idle: console.terminal_idle.value.clone(),
    })
}

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
    let Some(s) = c.session(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    // A WebSocket carries cookies from any site: only this one's pages.
    if !super::same_origin(&headers, true) {
        return forbidden("the terminal opens only from Berth's own pages");
    }
    let Some((_, container)) = owned(&c, &s, &name, Purpose::Enter).await else {
        return denied(&c, &s, &name, "terminal");
    };
    if !container.running {
        return (StatusCode::CONFLICT, "the container is not running\n").into_response();
    }
    upgrade.on_upgrade(move |socket| async move {
        run_terminal(c, s, name, container, socket).await;
    })
}

async fn run_terminal(
    c: Arc<Console>,
    s: Session,
    name: String,
    container: Owned,
    socket: WebSocket,
) {
    let Some((backend, _)) = owned(&c, &s, &name, Purpose::Enter).await else {
        return;
    };
    let shell = c.ctx.site.console.shell.clone();
    let idle = berth_spec::site::parse_duration(&c.ctx.site.console.terminal_idle)
        .unwrap_or(Duration::from_secs(1800));
    let (mut to_page, mut from_page) = socket.split();
    let mut tty = match backend.tty_owned(&container, &shell).await {
        Ok(t) => t,
        Err(e) => {
            let _ = to_page
                .send(Message::Text(
                    format!("\r\n[berth: cannot start {}: {e}]\r\n", shell.join(" ")).into(),
                ))
                .await;
            return;
        }
    };
    let started = Instant::now();
    c.audit(
        &s.account,
        "console-terminal",
        &format!("opened in `{name}`"),
    );
    let mut last_input = Instant::now();
    loop {
        let deadline = tokio::time::Instant::from_std(last_input + idle);
        tokio::select! {
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
    c.audit(
        &s.account,
        "console-terminal",
        &format!("closed in `{name}` after {} s", started.elapsed().as_secs()),
    );
}

#[derive(askama::Template)]
#[template(path = "files.html")]
struct FilesPage {
    me: Option<Me>,
    name: String,
    base: String,
    me_csrf: String,
    max_upload: String,
    message: Option<String>,
}

fn files_page_for(c: &Console, s: &Session, name: &str, message: Option<String>) -> Response {
    render(FilesPage {
        me: Some(Me::from(s)),
        name: name.to_string(),
        base: format!("/my/containers/{name}"),
        me_csrf: s.csrf.clone(),
        max_upload: c.ctx.site.console.max_upload.text().to_string(),
        message,
    })
}

pub(super) async fn files_page(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    if owned(&c, &s, &name, Purpose::Enter).await.is_none() {
        return denied(&c, &s, &name, "files");
    }
    files_page_for(&c, &s, &name, None)
}

/// A tar stream of one regular file: header, the file's bytes from disk,
/// padding, end of archive.
fn single_file_tar(
    file_name: &str,
    size: u64,
    path: std::path::PathBuf,
) -> std::io::Result<ByteStream> {
    let mut header = tar::Header::new_gnu();
    header.set_path(file_name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(crate::store::now().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let head = bytes::Bytes::copy_from_slice(header.as_bytes());
    let pad = (512 - (size % 512) as usize) % 512;
    let tail = bytes::Bytes::from(vec![0u8; pad + 1024]);
    let body = futures::stream::once(async move { tokio::fs::File::open(path).await })
        .map(|opened| match opened {
            Ok(f) => tokio_util::io::ReaderStream::new(f).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten();
    Ok(Box::pin(
        futures::stream::once(async move { Ok(head) })
            .chain(body)
            .chain(futures::stream::once(async move { Ok(tail) })),
    ))
}

/// A multipart upload (`csrf`, `dir`, then `file`), streamed to a
/// temporary file under the size cap, then into the container as a tar.
pub(super) async fn upload(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    let cap = c.ctx.site.console.max_upload.bytes().unwrap_or(100 << 20);
    let mut csrf = None;
    let mut dir = None;
    let mut stored: Option<(String, u64, std::path::PathBuf)> = None;
    let temp = std::env::temp_dir().join(format!("berth-upload-{}", crate::secret::random_hex(12)));
    let cleanup = scopeguard(temp.clone());
    while let Ok(Some(mut field)) = form.next_field().await {
        match field.name().unwrap_or_default() {
            "csrf" => csrf = field.text().await.ok(),
            "dir" => dir = field.text().await.ok(),
            "file" => {
                // The token comes first in the form: nothing is written
                // for a request without it.
                if !csrf_ok(&s, &headers, csrf.as_deref()) {
                    return forbidden("missing or wrong CSRF token");
                }
                let file_name = field
                    .file_name()
                    .unwrap_or("upload")
                    .rsplit(['/', '\\'])
                    .next()
                    .unwrap_or("upload")
                    .to_string();
                if file_name.is_empty() || file_name == "." || file_name == ".." {
                    return (StatusCode::BAD_REQUEST, "a file needs a name\n").into_response();
                }
                let mut out = match tokio::fs::File::create(&temp).await {
                    Ok(f) => f,
                    Err(e) => {
                        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
                            .into_response();
                    }
                };
                let mut size = 0u64;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            size += chunk.len() as u64;
                            if size > cap {
                                return (
                                    StatusCode::PAYLOAD_TOO_LARGE,
                                    format!(
                                        "the file is larger than {}\n",
                                        c.ctx.site.console.max_upload.text()
                                    ),
                                )
                                    .into_response();
                            }
                            if tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                                .await
                                .is_err()
                            {
                                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
                        }
                    }
                }
                let _ = tokio::io::AsyncWriteExt::flush(&mut out).await;
                stored = Some((file_name, size, temp.clone()));
            }
            _ => {}
        }
    }
    if !csrf_ok(&s, &headers, csrf.as_deref()) {
        return forbidden("missing or wrong CSRF token");
    }
    let Some(dir) = dir.as_deref().and_then(clean_path).map(str::to_string) else {
        return (
            StatusCode::BAD_REQUEST,
            "the directory must be an absolute path without `..`\n",
        )
            .into_response();
    };
    let Some((file_name, size, path)) = stored else {
        return (StatusCode::BAD_REQUEST, "no file\n").into_response();
    };
    let Some((backend, container)) = owned(&c, &s, &name, Purpose::Enter).await else {
        return denied(&c, &s, &name, "upload");
    };
    let tar = match single_file_tar(&file_name, size, path) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let result = backend.upload_owned(&container, &dir, tar).await;
    drop(cleanup);
    match result {
        Ok(()) => {
            c.audit(
                &s.account,
                "console-upload",
                &format!("{size} bytes to {dir}/{file_name} in `{name}`"),
            );
            files_page_for(
                &c,
                &s,
                &name,
                Some(format!("Uploaded {file_name} ({size} bytes) to {dir}.")),
            )
        }
        Err(e) => files_page_for(&c, &s, &name, Some(format!("Upload failed: {e}"))),
    }
}

/// Removes the temporary upload file when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scopeguard(path: std::path::PathBuf) -> TempFile {
    TempFile(path)
}

#[derive(serde::Deserialize)]
pub(super) struct PathQuery {
    path: String,
}

/// A file or directory of the container, as a tar stream.
pub(super) async fn download(
    State(c): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(q): Query<PathQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    let Some(path) = clean_path(&q.path) else {
        return (
            StatusCode::BAD_REQUEST,
            "the path must be absolute, without `..`\n",
        )
            .into_response();
    };
    let Some((backend, container)) = owned(&c, &s, &name, Purpose::Enter).await else {
        return denied(&c, &s, &name, "download");
    };
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or("root");
    let file = format!("{base}.tar")
        .chars()
        .filter(|ch| ch.is_ascii_alphanumeric() || "._-".contains(*ch))
        .collect::<String>();
    c.audit(
        &s.account,
        "console-download",
        &format!("{path} from `{name}`"),
    );
    (
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(backend.download_owned(&container, path)),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct OpForm {
    csrf: Option<String>,
}

/// `start`, `stop` or `restart`: until the next reconcile says otherwise.
pub(super) async fn operate(
    State(c): State<Arc<Console>>,
    Path((name, op)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<OpForm>,
) -> Response {
    let Some(s) = c.session(&headers) else {
        return to_login();
    };
    if !csrf_ok(&s, &headers, form.csrf.as_deref()) {
        return forbidden("missing or wrong CSRF token");
    }
    if !matches!(op.as_str(), "start" | "stop" | "restart") {
        return not_found(Some(Me::from(&s)));
    }
    let Some((backend, container)) = owned(&c, &s, &name, Purpose::Operate).await else {
        return denied(&c, &s, &name, &op);
    };
    if op != "stop" {
        // Started by the student: no longer culled.
        let _ =
            crate::store::blocking(|| c.ctx.store.clear_culled(&s.account, Some(&container.name)));
    }
    let result = match op.as_str() {
        "start" => backend.start_owned(&container).await,
        "stop" => backend.stop_owned(&container).await,
        _ => backend.restart_owned(&container).await,
    };
    match result {
        Ok(()) => {
            c.audit(&s.account, &format!("console-{op}"), &format!("`{name}`"));
            let _ = c.refresh.try_send(s.account.clone());
            Redirect::to("/").into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{op} failed: {e}\n")).into_response(),
    }
}
