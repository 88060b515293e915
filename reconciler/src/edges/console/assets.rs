//! The console's static files, embedded in the binary: its stylesheet and
//! script, and xterm.js (vendored from npm with its licence).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css",
        include_bytes!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript",
        include_bytes!("assets/console.js"),
    ),
    (
        "vendor/xterm/xterm.js",
        "text/javascript",
        include_bytes!("assets/vendor/xterm/xterm.js"),
    ),
    (
        "vendor/xterm/xterm.css",
        "text/css",
        include_bytes!("assets/vendor/xterm/xterm.css"),
    ),
    (
        "vendor/xterm/addon-fit.js",
        "text/javascript",
        include_bytes!("assets/vendor/xterm/addon-fit.js"),
    ),
];

pub(super) async fn serve(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
