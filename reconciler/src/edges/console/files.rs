//! Files in and out of the account's Docker containers: a multipart upload
//! streamed to a temporary file under the size cap and unpacked into a
//! directory as a tar, and any path downloaded as a tar stream. Paths are
//! absolute, without `..`; dockerd resolves them inside the container.

use super::containers::{Use, audit_use, denied, owned, session_and_container};
use super::{Console, Me, Session, csrf_ok, forbidden, render, to_login};
use crate::backends::docker::ByteStream;
use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::sync::Arc;

/// `/`, `..` and NUL-free absolute paths only.
fn clean_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && path.len() <= 4096
        && !path.contains('\0')
        && path.split('/').all(|part| part != "..");
    ok.then_some(path)
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
    match session_and_container(&c, &headers, &name, Use::Files, "files").await {
        Ok((s, _, _)) => files_page_for(&c, &s, &name, None),
        Err(answer) => answer,
    }
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
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let cap = c.ctx.site.console.max_upload.bytes().unwrap_or(100 << 20);
    let Some(_slot) = c.uploads.take(&s.account) else {
        return super::too_many(c.uploads.max(), "uploads in progress");
    };
    let mut csrf = None;
    let mut dir = None;
    let mut stored: Option<(String, u64, std::path::PathBuf)> = None;
    let temp = std::env::temp_dir().join(format!(
        "berth-upload-{}",
        crate::base::secret::random_hex(12)
    ));
    let cleanup = TempFile(temp.clone());
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
    let Some((backend, container)) = owned(&c, &s, &name, Use::Files).await else {
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
            audit_use(
                &c,
                &s,
                &container,
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
        // The one failure a student causes and can mend: say it plainly.
        Err(e) if e.to_string().contains("Could not find the file") => files_page_for(
            &c,
            &s,
            &name,
            Some(format!(
                "Upload failed: {dir} does not exist in the container."
            )),
        ),
        Err(e) => {
            let why = c.failure(&s.account, "the upload", &e);
            files_page_for(&c, &s, &name, Some(why))
        }
    }
}

/// Removes the temporary upload file when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
    let Some(s) = c.session(&headers).await else {
        return to_login();
    };
    let Some(path) = clean_path(&q.path) else {
        return (
            StatusCode::BAD_REQUEST,
            "the path must be absolute, without `..`\n",
        )
            .into_response();
    };
    let Some((backend, container)) = owned(&c, &s, &name, Use::Files).await else {
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
    audit_use(
        &c,
        &s,
        &container,
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
