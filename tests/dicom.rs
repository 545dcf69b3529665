//! DICOM as the radiologist meets it: real pydicom sample files uploaded to a consultation,
//! rendered to PNG/JPEG with windows, grouped into studies and served over DICOMweb (QIDO-RS,
//! WADO-RS, STOW-RS) to participants only — on SQLite and PostgreSQL.

mod common;

use common::TestApp;
use serde_json::{json, Value};

pub async fn patient_id_of(app: &TestApp, username: &str) -> String {
    let (_, me) = app.get("/api/v1/me", &app.login(username).await).await;
    me["patient_id"].as_str().expect("patient account has a record").to_string()
}

async fn consultation(app: &TestApp) -> String {
    let li = app.login("dr.li").await;
    let body = json!({
        "patient_id": patient_id_of(app, "patient.zhang").await,
        "reason": "follow-up of a lung nodule",
        "specialty": "radiology",
        "min_title": "attending",
        "urgency": "routine",
        "mode": "imaging_review",
        "addressee": {"kind": "expert", "expert_id": app.user_id("dr.chen").await},
        "consent": {"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"}
    });
    let (status, c) = app.post("/api/v1/consultations", &li, &body).await;
    assert_eq!(status, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/dicom/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

async fn upload(app: &TestApp, token: &str, c: &str, name: &str) -> Value {
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{c}/files")))
        .query(&[("name", name)])
        .bearer_auth(token)
        .body(fixture(name))
        .send()
        .await
        .unwrap();
    let (status, body) = common::split(resp).await;
    assert_eq!(status, 201, "{name}: {body}");
    body
}

async fn get_bytes(app: &TestApp, path: &str, token: &str, accept: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = app.http.get(app.url(path)).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

async fn every_required_transfer_syntax_renders(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    for (name, size) in [
        ("CT_small.dcm", (128, 128)),
        ("MR_small.dcm", (64, 64)),
        ("MR_small_implicit.dcm", (64, 64)),
        ("MR_small_bigendian.dcm", (64, 64)),
        ("image_dfl.dcm", (512, 512)),
        ("MR_small_RLE.dcm", (64, 64)),
        ("JPEG2000.dcm", (256, 1024)),
        ("MR_small_jp2klossless.dcm", (64, 64)),
        ("SC_rgb_jpeg_gdcm.dcm", (100, 100)),
        ("SC_rgb_jpeg_dcmtk.dcm", (100, 100)),
    ] {
        let file = upload(app, &li, &c, name).await;
        assert_eq!(file["kind"], "dicom", "{name}");
        let id = file["id"].as_str().unwrap();
        let (status, ct, png) = get_bytes(app, &format!("/api/v1/files/{id}/rendered"), &li, None).await;
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&png));
        assert_eq!(ct, "image/png");
        assert_eq!(png_size(&png), size, "{name}");
    }
}
db_test!(every_required_transfer_syntax_renders);

async fn windows_frames_and_formats(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let ct = upload(app, &li, &c, "CT_small.dcm").await;
    let id = ct["id"].as_str().unwrap();
    let (_, _, default) = get_bytes(app, &format!("/api/v1/files/{id}/rendered"), &li, None).await;
    let (_, _, lung) = get_bytes(app, &format!("/api/v1/files/{id}/rendered?preset=lung"), &li, None).await;
    let (_, _, given) = get_bytes(app, &format!("/api/v1/files/{id}/rendered?wc=40&ww=400"), &li, None).await;
    assert_ne!(default, lung, "a lung window looks different from the file's window");
    assert_ne!(lung, given);
    let (status, ct_type, jpeg) =
        get_bytes(app, &format!("/api/v1/files/{id}/rendered?format=jpeg&preset=bone"), &li, None).await;
    assert_eq!(status, 200);
    assert_eq!(ct_type, "image/jpeg");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]));
    let (status, _, body) = get_bytes(app, &format!("/api/v1/files/{id}/rendered?wc=40"), &li, None).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get_bytes(app, &format!("/api/v1/files/{id}/rendered?frame=2"), &li, None).await;
    assert_eq!(status, 404);

    // Multi-frame: both frames of a two-frame RLE image render.
    let two = upload(app, &li, &c, "SC_rgb_rle_2frame.dcm").await;
    let id2 = two["id"].as_str().unwrap();
    for frame in [1, 2] {
        let (status, _, png) = get_bytes(app, &format!("/api/v1/files/{id2}/rendered?frame={frame}"), &li, None).await;
        assert_eq!(status, 200, "frame {frame}");
        assert_eq!(png_size(&png), (100, 100));
    }

    // JPEG-LS is not decoded here: 415 naming the syntax.
    let jls = upload(app, &li, &c, "MR_small_jpeg_ls_lossless.dcm").await;
    let (status, _, body) =
        get_bytes(app, &format!("/api/v1/files/{}/rendered", jls["id"].as_str().unwrap()), &li, None).await;
    assert_eq!(status, 415);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "unsupported_transfer_syntax");
    assert!(problem["detail"].as_str().unwrap().contains("1.2.840.10008.1.2.4.80"), "{problem}");

    // Rendering is for those who may see the file.
    let (status, _, _) =
        get_bytes(app, &format!("/api/v1/files/{id}/rendered"), &app.login("dr.zhao").await, None).await;
    assert_eq!(status, 404);
}
db_test!(windows_frames_and_formats);

const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const CT_SERIES: &str = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";
const CT_INSTANCE: &str = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322";

async fn dicomweb_search_metadata_frames_and_stow(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let chen = app.login("dr.chen").await;
    let base = format!("/api/v1/consultations/{c}/dicomweb");

    // STOW-RS: two instances in one multipart/related body.
    let boundary = "stow-boundary-1234";
    let mut body = Vec::new();
    for name in ["CT_small.dcm", "MR_small.dcm"] {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes());
        body.extend_from_slice(&fixture(name));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let resp = app
        .http
        .post(app.url(&format!("{base}/studies")))
        .bearer_auth(&chen)
        .header("content-type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
        .header("accept", "application/dicom+json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stow: Value = resp.json().await.unwrap();
    let stored = stow["00081199"]["Value"].as_array().unwrap();
    assert_eq!(stored.len(), 2, "{stow}");
    assert_eq!(stored[0]["00081155"]["Value"][0], CT_INSTANCE);

    // STOW-RS to a named study refuses an instance of another study.
    let mut body = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(&fixture("MR_small_RLE.dcm"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = app
        .http
        .post(app.url(&format!("{base}/studies/{CT_STUDY}")))
        .bearer_auth(&chen)
        .header("content-type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let refused: Value = resp.json().await.unwrap();
    assert_eq!(refused["00081198"]["Value"][0]["00081197"]["Value"][0], 0xA900);

    // A JPEG-compressed colour image: its frames are served decoded, and its metadata says RGB.
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{c}/files?name=sc.dcm")))
        .bearer_auth(&li)
        .body(fixture("SC_rgb_jpeg_dcmtk.dcm"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sc_study = "1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114";
    let (_, sc) = app.get(&format!("{base}/studies/{sc_study}/metadata"), &li).await;
    assert_eq!(sc[0]["00280004"]["Value"][0], "RGB", "{sc}");
    let sc_inst = format!(
        "{base}/studies/{sc_study}/series/{}/instances/{}",
        sc[0]["0020000E"]["Value"][0].as_str().unwrap(),
        sc[0]["00080018"]["Value"][0].as_str().unwrap()
    );
    let (status, _, frame) = get_bytes(app, &format!("{sc_inst}/frames/1"), &li, None).await;
    assert_eq!(status, 200);
    assert!(frame.len() > 100 * 100 * 3, "a decoded 100x100 RGB frame");

    // QIDO-RS: studies, with filters.
    let (status, studies) = app.get(&format!("{base}/studies"), &li).await;
    assert_eq!(status, 200);
    assert_eq!(studies.as_array().unwrap().len(), 3, "{studies}");
    let (_, ct_only) = app.get(&format!("{base}/studies?ModalitiesInStudy=CT"), &li).await;
    assert_eq!(ct_only.as_array().unwrap().len(), 1);
    assert_eq!(ct_only[0]["0020000D"]["Value"][0], CT_STUDY);
    assert_eq!(ct_only[0]["00201208"]["Value"][0], 1);
    let (_, by_uid) = app.get(&format!("{base}/studies?StudyInstanceUID={CT_STUDY}"), &li).await;
    assert_eq!(by_uid.as_array().unwrap().len(), 1);
    let (_, series) = app.get(&format!("{base}/studies/{CT_STUDY}/series"), &li).await;
    assert_eq!(series[0]["0020000E"]["Value"][0], CT_SERIES);
    assert_eq!(series[0]["00080060"]["Value"][0], "CT");
    let (_, instances) = app.get(&format!("{base}/studies/{CT_STUDY}/series/{CT_SERIES}/instances"), &li).await;
    assert_eq!(instances[0]["00080018"]["Value"][0], CT_INSTANCE);
    assert_eq!(instances[0]["00280010"]["Value"][0], 128);

    // WADO-RS metadata: the DICOM JSON model with a BulkDataURI for the pixel data.
    let (status, meta) = app.get(&format!("{base}/studies/{CT_STUDY}/metadata"), &li).await;
    assert_eq!(status, 200);
    let m = &meta[0];
    assert_eq!(m["00080060"]["Value"][0], "CT");
    assert_eq!(m["00280010"]["Value"][0], 128);
    let bulk = m["7FE00010"]["BulkDataURI"].as_str().unwrap();
    assert!(
        bulk.starts_with(&app.url(&format!("{base}/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_INSTANCE}"))),
        "{bulk}"
    );

    // WADO-RS frames: native 16-bit pixels, 128 x 128 x 2 bytes.
    let inst = format!("{base}/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_INSTANCE}");
    let (status, ct, frames) =
        get_bytes(app, &format!("{inst}/frames/1"), &li, Some("multipart/related; type=\"application/octet-stream\""))
            .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("multipart/related"), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let start = frames.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let end = frames.windows(boundary.len() + 4).rposition(|w| w == format!("\r\n--{boundary}").as_bytes()).unwrap();
    assert_eq!(end - start, 128 * 128 * 2);

    // WADO-RS instance: the stored file comes back byte for byte.
    let (status, ct, multipart) = get_bytes(app, &inst, &li, None).await;
    assert_eq!(status, 200);
    assert!(ct.contains("application/dicom"), "{ct}");
    let original = fixture("CT_small.dcm");
    assert!(multipart.windows(original.len()).any(|w| w == original.as_slice()));

    // Rendered, as viewers ask for it.
    let (status, ct, png) = get_bytes(app, &format!("{inst}/rendered?window=40,400"), &li, Some("image/png")).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(png_size(&png), (128, 128));

    // Everything answers 404 for someone outside the consultation.
    let zhao = app.login("dr.zhao").await;
    for path in [
        format!("{base}/studies"),
        format!("{base}/studies/{CT_STUDY}/metadata"),
        format!("{inst}/frames/1"),
        inst.clone(),
    ] {
        let (status, _, _) = get_bytes(app, &path, &zhao, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let resp = app
        .http
        .post(app.url(&format!("{base}/studies")))
        .bearer_auth(&zhao)
        .header("content-type", "multipart/related; type=\"application/dicom\"; boundary=x")
        .body("--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The DICOMweb reads are audited against the patient.
    let zhang = app.login("patient.zhang").await;
    let (_, log) = app.get("/api/v1/audit?limit=200", &zhang).await;
    assert!(log["items"].as_array().unwrap().iter().any(|e| e["resource_type"] == "dicom"));
}
db_test!(dicomweb_search_metadata_frames_and_stow);
