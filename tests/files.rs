//! Shared files as the clinic and the expert meet them: one-shot and resumable (tus) uploads,
//! classification by content, safe names, downloads with Range, access by relationship and
//! the audit trail, expiry of abandoned uploads — on SQLite and PostgreSQL with local
//! storage, and on an S3-compatible server (`TEST_S3_ENDPOINT`) with the same tests.

mod common;

use base64::Engine;
use common::{Backend, TestApp};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Runs a test on SQLite, on PostgreSQL, and on SQLite with the S3 backend.
macro_rules! files_test {
    ($name:ident) => {
        files_test!($name, |_c: &mut teleconsult::config::Config| {});
    };
    ($name:ident, $adjust:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::TestApp::spawn_with($crate::common::Backend::Sqlite, None, $adjust).await;
                super::$name(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::spawn_postgres_with($adjust).await {
                    super::$name(&app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                if let Some(app) = super::spawn_s3($adjust).await {
                    super::$name(&app).await;
                }
            }
        }
    };
}

/// The app on SQLite with files in the S3-compatible server named by `TEST_S3_ENDPOINT`
/// (bucket `TEST_S3_BUCKET`, default `teleconsult-test`); `None` (skipped) when unset, unless
/// services are required.
pub async fn spawn_s3(adjust: impl FnOnce(&mut teleconsult::config::Config)) -> Option<TestApp> {
    let endpoint = std::env::var("TEST_S3_ENDPOINT").unwrap_or_default();
    if endpoint.is_empty() {
        assert!(
            !common::services_required(),
            "TELECONSULT_REQUIRE_SERVICES is set but TEST_S3_ENDPOINT is not: the S3 run cannot be skipped"
        );
        eprintln!("skipping the S3 run: TEST_S3_ENDPOINT is not set");
        return None;
    }
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let bucket = var("TEST_S3_BUCKET", "teleconsult-test");
    let (key, secret) =
        (var("TEST_S3_ACCESS_KEY_ID", "teleconsult"), var("TEST_S3_SECRET_ACCESS_KEY", "teleconsult-secret"));
    Some(
        TestApp::spawn_with(Backend::Sqlite, None, move |c| {
            c.files_backend = "s3".into();
            c.s3_endpoint = endpoint;
            c.s3_bucket = bucket;
            c.s3_access_key_id = key;
            c.s3_secret_access_key = secret;
            adjust(c);
        })
        .await,
    )
}

/// Dr. Li requests a consultation for Zhang addressed to Dr. Wang; returns its id.
pub async fn consultation(app: &TestApp) -> String {
    app.consultation().reason("chest pain on exertion, ECG and CT attached").mode("imaging_review").requested().await
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/dicom/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

pub async fn upload(app: &TestApp, token: &str, consultation: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{consultation}/files")))
        .query(&[("name", name)])
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    common::split(resp).await
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` deterministic pseudo-random bytes that open like a PDF.
fn pdf_like(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"%PDF-1.7\n");
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn one_shot_uploads_are_classified_by_content_and_served_with_range(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;

    // A PDF renamed to look like a photo is a PDF; a CT hidden behind a traversal name is DICOM.
    let pdf = pdf_like(10_000, 7);
    let (status, file) = upload(app, &li, &c, "holiday.jpg", pdf.clone()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["kind"], "pdf");
    assert_eq!(file["content_type"], "application/pdf");
    assert_eq!(file["size"], 10_000);
    assert_eq!(file["sha256"], hex(&Sha256::digest(&pdf)));
    let pdf_id = file["id"].as_str().unwrap().to_string();

    let (status, ct) = upload(app, &li, &c, "../../../etc/passwd", fixture("CT_small.dcm")).await;
    assert_eq!(status, 201, "{ct}");
    assert_eq!(ct["kind"], "dicom");
    assert_eq!(ct["name"], "passwd");
    // The pydicom CT belongs to someone else: the uploader is warned.
    assert!(ct["warnings"][0].as_str().unwrap().contains("does not match"), "{ct}");

    // Something that is none of the accepted kinds is refused and leaves nothing behind.
    let (status, refused) = upload(app, &li, &c, "report.pdf", b"#!/bin/sh\necho owned\n".to_vec()).await;
    assert_eq!(status, 415, "{refused}");
    assert_eq!(refused["code"], "unsupported_file_type");

    let (status, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");

    // Range download of the PDF.
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/files/{pdf_id}")))
        .bearer_auth(&li)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"holiday.jpg\"");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &pdf[100..200]);
    let resp = app.http.get(app.url(&format!("/api/v1/files/{pdf_id}"))).bearer_auth(&li).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), pdf.as_slice());
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/files/{pdf_id}")))
        .bearer_auth(&li)
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);

    // A non-ASCII name is offered with RFC 5987 filename*.
    let (_, named) = upload(app, &li, &c, "心电图报告.pdf", pdf_like(1000, 9)).await;
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/files/{}", named["id"].as_str().unwrap())))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.contains("filename*=UTF-8''%E5%BF%83%E7%94%B5%E5%9B%BE%E6%8A%A5%E5%91%8A.pdf"),
        "{disposition}"
    );
}
files_test!(one_shot_uploads_are_classified_by_content_and_served_with_range);

async fn only_participants_and_the_patient_see_the_files(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let (_, file) = upload(app, &li, &c, "ecg.pdf", pdf_like(2000, 3)).await;
    let file_id = file["id"].as_str().unwrap().to_string();

    for user in ["dr.wang", "patient.zhang"] {
        let token = app.login(user).await;
        let (status, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &token).await;
        assert_eq!(status, 200, "{user}: {list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (status, _) = app.get(&format!("/api/v1/files/{file_id}"), &token).await;
        assert_eq!(status, 200, "{user}");
    }
    for user in ["dr.chen", "dr.zhao", "patient.liu", "coordinator"] {
        let token = app.login(user).await;
        let (status, body) = app.get(&format!("/api/v1/consultations/{c}/files"), &token).await;
        assert_eq!(status, 404, "{user}: {body}");
        let (status, _) = app.get(&format!("/api/v1/files/{file_id}"), &token).await;
        assert_eq!(status, 404, "{user}");
        let (status, _) = upload(app, &token, &c, "x.pdf", pdf_like(100, 1)).await;
        assert_eq!(status, 404, "{user}");
    }

    // Every read is in the patient's access log.
    let zhang = app.login("patient.zhang").await;
    let (_, log) = app.get("/api/v1/audit?limit=200", &zhang).await;
    let events = log["items"].as_array().unwrap();
    let file_reads = events
        .iter()
        .filter(|e| e["resource_type"] == "file" && e["action"] == "read" && e["resource_id"] == file_id.as_str());
    assert!(file_reads.count() >= 2, "{log}");
    assert!(events.iter().any(|e| e["resource_type"] == "file" && e["action"] == "create"));
    assert!(events.iter().any(|e| e["outcome"] == "denied"), "refused reads are audited too");
}
files_test!(only_participants_and_the_patient_see_the_files);

/// The consultation-files read events in the patient's access log.
async fn list_reads(app: &TestApp, consultation: &str) -> usize {
    let (_, log) = app.get("/api/v1/audit?limit=500", &app.login("patient.zhang").await).await;
    let events = log["items"].as_array().unwrap();
    events
        .iter()
        .filter(|e| {
            e["resource_type"] == "consultation_files" && e["action"] == "read" && e["resource_id"] == consultation
        })
        .count()
}

async fn the_list_comes_in_pages_newest_first(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let mut uploaded = Vec::new();
    for i in 0..5 {
        let (status, file) = upload(app, &li, &c, &format!("report-{i}.pdf"), pdf_like(500, 20 + i)).await;
        assert_eq!(status, 201, "{file}");
        uploaded.push(file["id"].as_str().unwrap().to_string());
    }
    uploaded.reverse();

    // Two at a time: three pages, every file once, newest first, no cursor after the last.
    let reads_before = list_reads(app, &c).await;
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/consultations/{c}/files?limit=2");
    let mut sizes = Vec::new();
    loop {
        let (status, page) = app.get(&path, &li).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|f| f["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/consultations/{c}/files?limit=2&cursor={next}"),
            None => break,
        }
        assert!(sizes.len() < 5, "the pages never end: {page}");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, uploaded, "every file once, newest first");
    assert_eq!(list_reads(app, &c).await - reads_before, 3, "one audit event per page");

    // Without a limit: the first 50, here all of them, and no next page.
    let (status, all) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, uploaded);
    assert_eq!(all["next"], Value::Null);
    // A page ending exactly at the last file has no next page either.
    let (_, last) = app.get(&format!("/api/v1/consultations/{c}/files?limit=1&cursor={}", uploaded[3]), &li).await;
    assert_eq!(last["items"][0]["id"], uploaded[4].as_str());
    assert_eq!(last["next"], Value::Null, "{last}");
    // The patient pages through the same list.
    let zhang = app.login("patient.zhang").await;
    let (status, first) = app.get(&format!("/api/v1/consultations/{c}/files?limit=4"), &zhang).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    assert_eq!(first["next"], uploaded[3].as_str());
}
files_test!(the_list_comes_in_pages_newest_first);

async fn a_bad_limit_is_refused(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    for i in 0..3 {
        let (status, _) = upload(app, &li, &c, &format!("scan-{i}.pdf"), pdf_like(300, 40 + i)).await;
        assert_eq!(status, 201);
    }
    let reads_before = list_reads(app, &c).await;
    // Not a number, negative, or an unknown parameter: problem+json naming the parameter,
    // as every list answers, and nothing is read.
    for (query, field) in [("limit=lots", "limit"), ("limit=-1", "limit"), ("limit=2&page=2", "page")] {
        let resp = app
            .http
            .get(app.url(&format!("/api/v1/consultations/{c}/files?{query}")))
            .bearer_auth(&li)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_query", "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    assert_eq!(list_reads(app, &c).await, reads_before, "a refused request reads nothing");
    // Out of bounds: 422 naming `limit`, not a silently shorter or longer page.
    for query in ["limit=0", "limit=201", "limit=100000"] {
        let (status, body) = app.get(&format!("/api/v1/consultations/{c}/files?{query}"), &li).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(
            (body["code"].as_str(), body["errors"][0]["field"].as_str()),
            (Some("validation_failed"), Some("limit"))
        );
    }
    assert_eq!(list_reads(app, &c).await, reads_before, "a refused request reads nothing");
    let (status, all) = app.get(&format!("/api/v1/consultations/{c}/files?limit=200"), &li).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(all["next"], Value::Null);
}
files_test!(a_bad_limit_is_refused);

fn tus(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.bearer_auth(token).header("tus-resumable", "1.0.0")
}

async fn create_upload(app: &TestApp, token: &str, c: &str, length: usize, name: &str) -> String {
    let meta = format!("filename {}", base64::engine::general_purpose::STANDARD.encode(name));
    let resp = tus(app.http.post(app.url(&format!("/api/v1/consultations/{c}/uploads"))), token)
        .header("upload-length", length.to_string())
        .header("upload-metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert!(resp.headers().contains_key("upload-expires"));
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("/api/v1/consultations/{c}/uploads/")));
    location
}

async fn offset_of(app: &TestApp, token: &str, location: &str) -> (u16, Option<u64>) {
    let resp = tus(app.http.head(app.url(location)), token).send().await.unwrap();
    let offset = resp.headers().get("upload-offset").map(|v| v.to_str().unwrap().parse().unwrap());
    (resp.status().as_u16(), offset)
}

/// Sends `PATCH` with `total` announced but only `bytes` written, then drops the connection,
/// as a phone losing signal does.
async fn patch_and_drop(app: &TestApp, token: &str, location: &str, offset: usize, total: usize, bytes: &[u8]) {
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {total}\r\n\r\n",
        app.addr
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in bytes.chunks(1 << 20) {
        sock.write_all(chunk).await.unwrap();
    }
    sock.flush().await.unwrap();
    sock.shutdown().await.unwrap();
    drop(sock);
}

async fn patch(
    app: &TestApp,
    token: &str,
    location: &str,
    offset: usize,
    bytes: Vec<u8>,
    checksum: Option<String>,
) -> reqwest::Response {
    let mut req = tus(app.http.patch(app.url(location)), token)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream");
    if let Some(sum) = checksum {
        req = req.header("upload-checksum", sum);
    }
    req.body(bytes).send().await.unwrap()
}

fn sha256_b64(bytes: &[u8]) -> String {
    format!("sha256 {}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes)))
}

async fn interrupted_200_mib_upload_resumes_with_matching_sha256(app: &TestApp) {
    const SIZE: usize = 200 * 1024 * 1024;
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let data = pdf_like(SIZE, 42);
    let expected = hex(&Sha256::digest(&data));
    let location = create_upload(app, &li, &c, SIZE, "ct-archive.pdf").await;

    // Half the file, then the connection drops.
    patch_and_drop(app, &li, &location, 0, SIZE, &data[..SIZE / 2]).await;
    let mut offset = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (status, o) = offset_of(app, &li, &location).await;
        assert_eq!(status, 200);
        offset = o.unwrap() as usize;
        if offset > 0 {
            break;
        }
    }
    assert!(offset > 0 && offset <= SIZE / 2, "kept {offset} bytes of the first half");
    // Nothing half-stored is visible.
    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // Resume from the server's offset, in two chunks, the last with a checksum.
    let middle = offset + (SIZE - offset) / 2;
    let resp = patch(app, &li, &location, offset, data[offset..middle].to_vec(), None).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-offset"].to_str().unwrap(), middle.to_string());
    let rest = data[middle..].to_vec();
    let sum = sha256_b64(&rest);
    let resp = patch(app, &li, &location, middle, rest, Some(sum)).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-offset"].to_str().unwrap(), SIZE.to_string());
    let file_id = resp.headers()["teleconsult-file-id"].to_str().unwrap().to_string();

    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    let file = &list["items"][0];
    assert_eq!(file["id"], file_id.as_str());
    assert_eq!(file["sha256"], expected);
    assert_eq!(file["size"], SIZE);
    assert_eq!(file["name"], "ct-archive.pdf");

    // The bytes served back hash the same.
    let mut resp = app.http.get(app.url(&format!("/api/v1/files/{file_id}"))).bearer_auth(&li).send().await.unwrap();
    let mut hasher = Sha256::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        hasher.update(&chunk);
    }
    assert_eq!(hex(&hasher.finalize()), expected);
    drop(data);

    // The upload now reports completion and its parts are gone.
    let (status, done) = app.get(&location, &li).await;
    assert_eq!(status, 200);
    assert_eq!(done["state"], "completed");
    assert_eq!(done["file"]["sha256"], expected);
    let upload_id = location.rsplit('/').next().unwrap();
    assert!(app.state.files.storage.list(&format!("uploads/{upload_id}")).await.unwrap().is_empty());
}
files_test!(interrupted_200_mib_upload_resumes_with_matching_sha256);

/// A real tus client's story: a 3.5 MB file with a Chinese name in 1 MiB chunks; the program
/// stops once 2 MiB are acknowledged, and a second run finds the upload in its URL store, asks
/// the server where it stands (`HEAD`) and sends the rest. The file is whole, and the expert
/// downloads the same bytes. `script` (under tests/interop/, run by `interpreter`) takes
/// `start|resume ENDPOINT TOKEN FILE STORE NAME [STOP_AT]` and prints what happened.
async fn a_tus_client_uploads_stops_and_resumes(app: &TestApp, interpreter: &str, script: &str) -> [Value; 2] {
    const SIZE: usize = 3 * 1024 * 1024 + 512 * 1024;
    const STOP: usize = 2 * 1024 * 1024;
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let data = pdf_like(SIZE, 7);
    let expected = hex(&Sha256::digest(&data));
    let dir = std::env::temp_dir().join(format!("tc-tus-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scan.pdf");
    std::fs::write(&path, &data).unwrap();
    let store = dir.join("urls.json");
    let endpoint = app.url(&format!("/api/v1/consultations/{c}/uploads"));
    let (path, store) = (path.to_str().unwrap(), store.to_str().unwrap());
    let name = "出院小结 2026.pdf";
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run_client(interpreter, script, &args).await
    };
    let argv = |mode: &str| {
        let mut a: Vec<String> = [mode, &endpoint, &li, path, store, name].iter().map(|s| s.to_string()).collect();
        if mode == "start" {
            a.push(STOP.to_string());
        }
        a
    };

    let first = run(argv("start")).await;
    assert!(first["found_url"].is_null(), "a new upload: {first}");
    assert_eq!(first["acknowledged"], STOP, "{first}");
    assert!(first["file_id"].is_null(), "not complete yet: {first}");
    let url = first["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&endpoint), "{url}");
    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing half-sent is a file: {list}");

    let second = run(argv("resume")).await;
    assert_eq!(second["found_url"], url.as_str(), "the stored upload was found: {second}");
    assert_eq!(second["resumed_from"], STOP, "resumed where the server stood: {second}");
    assert_eq!(second["acknowledged"], SIZE, "{second}");
    let file_id = second["file_id"].as_str().expect("the last answer names the file").to_string();

    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    let file = &list["items"][0];
    assert_eq!(file["id"], file_id.as_str());
    assert_eq!(file["name"], name);
    assert_eq!(file["size"], SIZE);
    assert_eq!(file["sha256"], expected);
    let wang = app.login("dr.wang").await;
    let resp = app.http.get(app.url(&format!("/api/v1/files/{file_id}"))).bearer_auth(&wang).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hex(&Sha256::digest(resp.bytes().await.unwrap())), expected, "the expert downloads the same bytes");
    let _ = std::fs::remove_dir_all(&dir);
    [first, second]
}

/// tuspy, the tus project's Python client, with its default sha1 `Upload-Checksum` per chunk.
async fn tuspy_uploads_stops_and_resumes(app: &TestApp) {
    let Some(python) = common::python_with(&["tusclient", "tinydb", "requests"]) else { return };
    let [first, second] = a_tus_client_uploads_stops_and_resumes(app, &python, "tus_upload.py").await;
    assert_eq!((first["checksum_sent"].as_str(), second["checksum_sent"].as_str()), (Some("sha1"), Some("sha1")));
}
files_test!(tuspy_uploads_stops_and_resumes);

/// tus-js-client, the tus project's JavaScript client (under Uppy and most web uploaders), in
/// Node, with its `FileUrlStorage`; it sends no checksum.
async fn the_tus_js_client_uploads_stops_and_resumes(app: &TestApp) {
    let Some(node) = common::node_with("tus-js-client") else { return };
    let [_, second] = a_tus_client_uploads_stops_and_resumes(app, &node, "tus_js_upload.mjs").await;
    assert_eq!(second["requests"][0], "HEAD 200", "a resumed upload starts by asking: {second}");
}
files_test!(the_tus_js_client_uploads_stops_and_resumes);

async fn tus_discovery_checksums_and_termination(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let resp = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(&format!("/api/v1/consultations/{c}/uploads")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["tus-version"], "1.0.0");
    assert_eq!(resp.headers()["tus-checksum-algorithm"], "sha256,sha1");
    assert!(resp.headers()["tus-extension"].to_str().unwrap().contains("termination"));
    assert_eq!(resp.headers()["tus-max-size"], (2u64 << 30).to_string().as_str());

    // Without Tus-Resumable: 412.
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{c}/uploads")))
        .bearer_auth(&li)
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);

    let data = pdf_like(4096, 5);
    let location = create_upload(app, &li, &c, data.len(), "notes.pdf").await;
    // A corrupted chunk: 460, nothing kept.
    let resp = patch(app, &li, &location, 0, data[..1000].to_vec(), Some(sha256_b64(b"something else"))).await;
    assert_eq!(resp.status(), 460);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "checksum_mismatch");
    assert_eq!(offset_of(app, &li, &location).await, (200, Some(0)));
    // A PATCH at the wrong offset: 409.
    let resp = patch(app, &li, &location, 10, data[10..20].to_vec(), None).await;
    assert_eq!(resp.status(), 409);
    // The right chunk is accepted.
    let resp = patch(app, &li, &location, 0, data[..1000].to_vec(), Some(sha256_b64(&data[..1000]))).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(offset_of(app, &li, &location).await, (200, Some(1000)));
    // Someone else cannot see or touch it.
    let zhao = app.login("dr.zhao").await;
    assert_eq!(offset_of(app, &zhao, &location).await.0, 404);
    // Termination removes it.
    let resp = tus(app.http.delete(app.url(&location)), &li).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(offset_of(app, &li, &location).await.0, 404);
    let upload_id = location.rsplit('/').next().unwrap();
    assert!(app.state.files.storage.list(&format!("uploads/{upload_id}")).await.unwrap().is_empty());
    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // A file sent in one PATCH completes with the hash computed on the way in.
    let whole = pdf_like(300_000, 11);
    let location = create_upload(app, &li, &c, whole.len(), "whole.pdf").await;
    let resp = patch(app, &li, &location, 0, whole.clone(), None).await;
    assert_eq!(resp.status(), 204);
    let (_, done) = app.get(&location, &li).await;
    assert_eq!(done["file"]["sha256"], hex(&Sha256::digest(&whole)));
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/files/{}", done["file"]["id"].as_str().unwrap())))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), whole.as_slice());
    let resp =
        app.http.delete(app.url(&location)).bearer_auth(&li).header("tus-resumable", "1.0.0").send().await.unwrap();
    assert_eq!(resp.status(), 409, "a completed upload is a file and is kept");

    // A completed upload of bytes of no accepted kind is refused and leaves no file.
    let junk = b"just some text that is no ECG".to_vec();
    let location = create_upload(app, &li, &c, junk.len(), "x.pdf").await;
    let resp = patch(app, &li, &location, 0, junk, None).await;
    assert_eq!(resp.status(), 415);
    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "only whole.pdf: {list}");
}
files_test!(tus_discovery_checksums_and_termination);

async fn abandoned_uploads_expire_and_their_parts_are_removed(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let location = create_upload(app, &li, &c, 10_000, "a.pdf").await;
    let resp = patch(app, &li, &location, 0, pdf_like(3000, 1), None).await;
    assert_eq!(resp.status(), 204);
    let upload_id = location.rsplit('/').next().unwrap().to_string();
    assert_eq!(app.state.files.storage.list(&format!("uploads/{upload_id}")).await.unwrap().len(), 1);
    let mut gone = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if app.state.files.storage.list(&format!("uploads/{upload_id}")).await.unwrap().is_empty() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the sweeper removed the parts");
    assert_eq!(offset_of(app, &li, &location).await.0, 410);
}
files_test!(abandoned_uploads_expire_and_their_parts_are_removed, |c: &mut teleconsult::config::Config| {
    c.files_upload_expiry_secs = 1
});

async fn limits_are_enforced(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let (status, body) = upload(app, &li, &c, "big.pdf", pdf_like(70_000, 2)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    let resp = tus(app.http.post(app.url(&format!("/api/v1/consultations/{c}/uploads"))), &li)
        .header("upload-length", "70000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let (status, _) = upload(app, &li, &c, "small.pdf", pdf_like(60_000, 2)).await;
    assert_eq!(status, 201);
    let (_, list) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
files_test!(limits_are_enforced, |c: &mut teleconsult::config::Config| c.files_max_upload_bytes = 64 * 1024);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_clients_on_an_allowed_origin_pass_cors() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, None, |c| c.cors_allow_origins = vec!["https://viewer.example".into()])
            .await;
    let c = consultation(&app).await;
    let resp = app
        .http
        .request(reqwest::Method::OPTIONS, app.url(&format!("/api/v1/consultations/{c}/uploads")))
        .header("origin", "https://viewer.example")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization,tus-resumable,upload-offset,upload-checksum,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("upload-offset") && allowed.contains("tus-resumable"), "{allowed}");
    let li = app.login("dr.li").await;
    let resp = tus(app.http.post(app.url(&format!("/api/v1/consultations/{c}/uploads"))), &li)
        .header("origin", "https://viewer.example")
        .header("upload-length", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let exposed = resp.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(exposed.contains("location") && exposed.contains("upload-offset"), "{exposed}");
}
