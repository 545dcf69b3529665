//! The browser client: the files of `web-client/` are embedded into the binary at build time
//! (see `build.rs`) and served at `/` with their Content-Type, an ETag (answered 304 when the
//! browser already holds the file), `Cache-Control: no-cache` (always revalidated, so a new
//! release is picked up at once) and gzip when the browser accepts it. Any other GET outside
//! `/api/` answers index.html, so the client's own paths survive a reload; unknown `/api/`
//! paths stay problem+json 404s.

use crate::api::Routes;
use crate::error::ApiError;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;
use tower_http::compression::CompressionLayer;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_client_files.rs"));
}

/// One embedded file.
pub struct Asset {
    pub bytes: &'static [u8],
    pub content_type: &'static str,
    pub etag: String,
}

/// The Content-Type for a file name, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn assets() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        embedded::FILES
            .iter()
            .map(|(path, bytes)| {
                let digest = Sha256::digest(bytes);
                let etag = format!("\"{}\"", digest[..12].iter().map(|b| format!("{b:02x}")).collect::<String>());
                (*path, Asset { bytes, content_type: content_type(path), etag })
            })
            .collect()
    })
}

/// The embedded file a request path names, if any (`/` is index.html).
pub fn lookup(path: &str) -> Option<&'static Asset> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    assets().get(rel)
}

fn serve(asset: &Asset, headers: &HeaderMap, head: bool) -> Response {
    let etag = HeaderValue::from_str(&asset.etag).expect("hex etag is a valid header");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let body = if head { axum::body::Body::empty() } else { axum::body::Body::from(asset.bytes) };
    (common, [(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], body).into_response()
}

async fn index(headers: HeaderMap) -> Response {
    match lookup("/") {
        Some(asset) => serve(asset, &headers, false),
        None => ApiError::not_found("web client").into_response(),
    }
}

/// Whether a path belongs to the API (and so never falls back to the client).
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

async fn fallback_handler(request: Request) -> Response {
    let path = request.uri().path();
    let method = request.method();
    let head = method == Method::HEAD;
    if is_api_path(path) || !(method == Method::GET || head) {
        return ApiError::not_found("route").into_response();
    }
    if let Some(asset) = lookup(path) {
        return serve(asset, request.headers(), head);
    }
    // A missing file with an extension is a 404; anything else is a client route.
    let last = path.rsplit('/').next().unwrap_or("");
    match lookup("/") {
        Some(asset) if !last.contains('.') => serve(asset, request.headers(), head),
        _ => ApiError::not_found("file").into_response(),
    }
}

/// The router's fallback: the client's files, index.html for client routes, problem+json
/// 404 for everything else.
pub fn fallback() -> axum::routing::MethodRouter<crate::app::AppState> {
    axum::routing::any(fallback_handler.layer(CompressionLayer::new().gzip(true)))
}

pub fn routes() -> Routes {
    Routes::new("web")
        .get_public("/", "The web client", index.layer(CompressionLayer::new().gzip(true)))
        .answers(200, Some("text/html"), "the web client")
        .answers(304, None, "not modified")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_modules_are_embedded_with_types() {
        let index = lookup("/").expect("index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(std::str::from_utf8(index.bytes).unwrap().contains("<script type=\"module\""));
        assert_eq!(lookup("/js/main.js").expect("main module").content_type, "text/javascript; charset=utf-8");
        assert!(lookup("/package.json").is_none(), "package files are not served");
        assert!(lookup("/tests/helpers.js").is_none(), "tests are not served");
    }

    #[test]
    fn api_paths_are_recognised() {
        assert!(is_api_path("/api/v1/x"));
        assert!(is_api_path("/api"));
        assert!(!is_api_path("/apiary"));
        assert!(!is_api_path("/consultations/1"));
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("a/b.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("x.svg"), "image/svg+xml");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
