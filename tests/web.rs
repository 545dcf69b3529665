//! The embedded web client as the server serves it: types, gzip, ETag revalidation, the
//! client-route fallback, and API 404s that stay problem+json.

mod common;

use common::{Backend, TestApp};
use reqwest::header;

#[tokio::test]
async fn web_client_is_served_with_types_compression_and_revalidation() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let index = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
    let csp = index.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
    let etag = index.headers()[header::ETAG].clone();
    let body = index.text().await.unwrap();
    assert!(body.contains(r#"<script type="module" src="/js/main.js"></script>"#));

    let again = app.http.get(app.url("/")).header(header::IF_NONE_MATCH, etag.clone()).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()[header::ETAG], etag);

    let js = app.http.get(app.url("/js/main.js")).header(header::ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert_eq!(js.headers()[header::CONTENT_ENCODING], "gzip");
    let gz = js.bytes().await.unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");

    let css = app.http.get(app.url("/css/app.css")).send().await.unwrap();
    assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.headers().get(header::CONTENT_ENCODING).is_none(), "identity unless asked");

    // Client routes answer the shell; a reload deep in the client works.
    for path in ["/consultations/0193c2a4-0000-7000-8000-000000000000", "/call/x", "/login"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()[header::ETAG], etag, "{path}");
    }

    // Nothing else is.
    for path in ["/api/v1/nothing-here", "/api", "/missing.js", "/package.json", "/tests/helpers.js"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json", "{path}");
    }
    let post = app.http.post(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(post.status(), 404);
    assert_eq!(post.headers()[header::CONTENT_TYPE], "application/problem+json");

    // The event stream is not compressed or buffered by the static routes' layer.
    let token = app.login("dr.li").await;
    let stream = app
        .http
        .get(app.url("/api/v1/notifications/stream"))
        .bearer_auth(&token)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers().get(header::CONTENT_ENCODING).is_none());
}
