//! DICOM as the radiologist meets it: real pydicom sample files uploaded to a consultation,
//! rendered to PNG/JPEG with windows, grouped into studies and served over DICOMweb (QIDO-RS,
//! WADO-RS, STOW-RS) to participants only — on SQLite and PostgreSQL.

mod common;

use common::TestApp;
use serde_json::{json, Value};

async fn consultation(app: &TestApp) -> String {
    let request = app.consultation().reason("follow-up of a lung nodule").specialty("radiology").urgency("routine");
    request.mode("imaging_review").addressed_to("dr.chen").accepted().await
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

async fn dicomweb_answers_what_it_cannot_do_instead_of_ignoring_it(app: &TestApp) {
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let base = format!("/api/v1/consultations/{c}/dicomweb");
    upload(app, &li, &c, "CT_small.dcm").await;
    upload(app, &li, &c, "MR_small.dcm").await;

    // A key the server matches is never silently dropped: no study has this birth date.
    let (status, none) = app.get(&format!("{base}/studies?PatientBirthDate=19000101"), &li).await;
    assert_eq!((status, none.clone()), (200, json!([])), "{none}");
    let (_, by_id) = app.get(&format!("{base}/studies?PatientID=1CT1&StudyTime=0700-0800"), &li).await;
    assert_eq!(by_id.as_array().unwrap().len(), 1, "{by_id}");
    // Keys matched on the stored model: an attribute the index has no column for, and one in a sequence.
    let (_, none) = app.get(&format!("{base}/studies?ReferringPhysicianName=Smith*"), &li).await;
    assert_eq!(none, json!([]));
    let (_, none) = app.get(&format!("{base}/series?RequestAttributesSequence.RequestedProcedureID=RP9"), &li).await;
    assert_eq!(none, json!([]));
    // A name that is no DICOM attribute is refused; what cannot be matched is answered with a Warning.
    let (status, body) = app.get(&format!("{base}/studies?BirthDay=19000101"), &li).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")));
    let resp = app
        .http
        .get(app.url(&format!("{base}/studies?PatientName=compressed*&fuzzymatching=true")))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    let warning = resp.headers().get("warning").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(warning.starts_with("299 ") && warning.contains("fuzzymatching"), "{warning}");
    assert_eq!(resp.json::<Value>().await.unwrap().as_array().unwrap().len(), 2);

    // The required attributes at each level; series and instances carry their study's.
    let (_, studies) = app.get(&format!("{base}/studies"), &li).await;
    assert_eq!(studies[0]["00080090"]["vr"], "PN", "ReferringPhysicianName is returned, even empty");
    assert_eq!(studies[0]["00080056"]["Value"][0], "ONLINE");
    let (_, series) = app.get(&format!("{base}/series?Modality=CT"), &li).await;
    assert_eq!(series[0]["0020000D"]["Value"][0], CT_STUDY);
    assert_eq!(series[0]["00100020"]["Value"][0], "1CT1");
    assert!(series[0].get("00400244").is_some(), "PerformedProcedureStepStartDate");
    let (_, instances) = app.get(&format!("{base}/instances?SOPInstanceUID={CT_INSTANCE}"), &li).await;
    assert_eq!(instances[0]["0020000E"]["Value"][0], CT_SERIES);
    assert_eq!(instances[0]["00280100"]["Value"][0], 16, "BitsAllocated");
    assert!(instances[0].get("00180050").is_none(), "SliceThickness only with includefield");
    let (_, all) = app.get(&format!("{base}/instances?SOPInstanceUID={CT_INSTANCE}&includefield=all"), &li).await;
    assert!(all[0].get("00180050").is_some(), "includefield=all returns what is indexed: {}", all[0]);
    let (_, one) =
        app.get(&format!("{base}/instances?SOPInstanceUID={CT_INSTANCE}&includefield=SliceThickness"), &li).await;
    assert!(one[0].get("00180050").is_some());

    // Content negotiation: 406 for what cannot be produced, implicit little endian honoured.
    let inst = format!("{base}/studies/{CT_STUDY}/series/{CT_SERIES}/instances/{CT_INSTANCE}");
    assert_eq!(get_bytes(app, &format!("{inst}/rendered"), &li, Some("image/gif")).await.0, 406);
    let jpeg_ls = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.4.80";
    assert_eq!(get_bytes(app, &format!("{inst}/frames/1"), &li, Some(jpeg_ls)).await.0, 406);
    let implicit = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2";
    let (status, ct, _) = get_bytes(app, &format!("{inst}/frames/1"), &li, Some(implicit)).await;
    assert_eq!(status, 200);
    assert!(ct.contains("transfer-syntax=1.2.840.10008.1.2;"), "{ct}");
    assert_eq!(
        get_bytes(
            app,
            &format!("{base}/studies/{CT_STUDY}/metadata"),
            &li,
            Some("multipart/related; type=\"application/dicom+xml\"")
        )
        .await
        .0,
        406
    );
    let as_implicit = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2";
    let (status, ct, body) = get_bytes(app, &inst, &li, Some(as_implicit)).await;
    assert_eq!(status, 200);
    assert!(ct.contains("transfer-syntax=1.2.840.10008.1.2;"), "{ct}");
    let meta_ts = b"1.2.840.10008.1.2\0";
    assert!(body.windows(meta_ts.len()).any(|w| w == meta_ts), "the file meta names implicit VR little endian");
    let stored = fixture("CT_small.dcm");
    assert!(!body.windows(stored.len()).any(|w| w == stored.as_slice()), "transcoded, not the stored bytes");
    let to_jpeg_ls = "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.80";
    assert_eq!(get_bytes(app, &inst, &li, Some(to_jpeg_ls)).await.0, 406);

    // A DICOM ECG: the waveform samples are bulk data, not inline in the metadata.
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{c}/files?name=ecg.dcm")))
        .bearer_auth(&li)
        .body(std::fs::read(format!("{}/tests/fixtures/ecg/waveform_ecg.dcm", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let ecg_study = "1.3.76.13.65829.2.20130125082826.1072139.2";
    let (status, _, raw) = get_bytes(app, &format!("{base}/studies/{ecg_study}/metadata"), &li, None).await;
    assert_eq!(status, 200);
    assert!(raw.len() < 60_000, "ECG metadata is {} bytes", raw.len());
    let meta: Value = serde_json::from_slice(&raw).unwrap();
    let uri = meta[0]["54000100"]["Value"][0]["54001010"]["BulkDataURI"].as_str().expect("waveform data as bulk data");
    let (status, ct, samples) = get_bytes(
        app,
        uri.strip_prefix(&app.base).unwrap(),
        &li,
        Some("multipart/related; type=\"application/octet-stream\""),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("multipart/related"));
    assert!(samples.len() > 240_000, "the first waveform's 240,000 bytes come back");
}
db_test!(dicomweb_answers_what_it_cannot_do_instead_of_ignoring_it);

async fn stow_warnings_and_links_behind_a_trusted_proxy(app: &TestApp) {
    let c = consultation(app).await;
    let chen = app.login("dr.chen").await;
    let base = format!("/api/v1/consultations/{c}/dicomweb");
    let boundary = "stow-boundary-5678";
    let mut body = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(&fixture("CT_small.dcm"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = app
        .http
        .post(app.url(&format!("{base}/studies")))
        .bearer_auth(&chen)
        .header("content-type", format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "pacs.example.org")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stow: Value = resp.json().await.unwrap();
    // The CT names another patient: stored with a warning, its text in an LT attribute.
    let item = &stow["00081199"]["Value"][0];
    assert_eq!(item["00081196"]["Value"][0], 0xB000);
    assert_eq!(stow["00080418"]["vr"], "LT");
    assert!(stow.get("00404010").is_none());
    let url = item["00081190"]["Value"][0].as_str().unwrap();
    assert!(url.starts_with(&format!("https://pacs.example.org{base}/studies/")), "{url}");
    let resp = app
        .http
        .get(app.url(&format!("{base}/studies/{CT_STUDY}/metadata")))
        .bearer_auth(&chen)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "pacs.example.org:8443")
        .send()
        .await
        .unwrap();
    let meta: Value = resp.json().await.unwrap();
    let bulk = meta[0]["7FE00010"]["BulkDataURI"].as_str().unwrap();
    assert!(bulk.starts_with("https://pacs.example.org:8443/"), "{bulk}");
}

mod behind_a_proxy {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app =
            TestApp::spawn_with(common::Backend::Sqlite, None, |c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
        stow_warnings_and_links_behind_a_trusted_proxy(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_postgres_with(|c| c.trusted_proxies = vec!["127.0.0.1".into()]).await {
            stow_warnings_and_links_behind_a_trusted_proxy(&app).await;
        }
    }
}

/// dicomweb-client (PyPI), as a client application uses it, through the whole round trip.
async fn dicomweb_client_round_trip(app: &TestApp) {
    let Some(python) = common::python_with(&["dicomweb_client", "pydicom", "numpy"]) else { return };
    let c = consultation(app).await;
    let chen = app.login("dr.chen").await;
    let dir = |name: &str, sub: &str| format!("{}/tests/fixtures/{sub}/{name}", env!("CARGO_MANIFEST_DIR"));
    let ct = dir("CT_small.dcm", "dicom");
    let rle = dir("MR_small_RLE.dcm", "dicom");
    let ecg = dir("waveform_ecg.dcm", "ecg");
    let base = app.url(&format!("/api/v1/consultations/{c}/dicomweb"));
    let out = common::run_client(&python, "dicomweb_roundtrip.py", &[&base, &chen, &ct, &rle, &ecg]).await;

    assert_eq!(out["stored"], 3, "{out}");
    assert_eq!(out["studies"].as_array().unwrap().len(), 3);
    assert_eq!(out["none_born_1900"], 0);
    let instances = out["instances"].as_object().unwrap();
    assert_eq!(instances.len(), 3);
    for (sop, i) in instances {
        assert_eq!(i["series_found"], true, "{sop}: {i}");
        assert_eq!(i["instance_found"], true, "{sop}: {i}");
        assert_eq!(i["instance_uid_matches"], true, "{sop}: {i}");
        assert!(!i["bulk"].as_object().unwrap().is_empty(), "{sop} has bulk data: {i}");
        if i.get("frame_bytes").is_some() {
            assert_eq!(i["frame_bytes"], i["expected_frame_bytes"], "{sop}: {i}");
            assert_eq!(i["pixels_match"], true, "{sop}: {i}");
            assert_eq!(i["rendered_png"], true, "{sop}: {i}");
            assert_eq!(i["bulk"]["7FE00010"], i["expected_frame_bytes"], "{sop}: pixel data as bulk data");
        }
    }
    let ecg = instances.values().find(|i| i.get("waveform_bytes").is_some()).expect("the ECG");
    let waveforms: Vec<u64> = ecg["waveform_bytes"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
    let bulk = &ecg["bulk"];
    assert_eq!(bulk["54000100.0.54001010"].as_u64(), Some(waveforms[0]), "{ecg}");
    assert_eq!(bulk["54000100.1.54001010"].as_u64(), Some(waveforms[1]), "{ecg}");
    assert!(ecg["metadata_bytes"].as_u64().unwrap() < 60_000, "{ecg}");
}
db_test!(dicomweb_client_round_trip);

/// An Orthanc PACS (the open-source archive many hospitals run; Debian's `orthanc` with its
/// DICOMweb plugin `orthanc-dicomweb`), started on free ports with a fresh archive, with the
/// given DICOMweb servers configured (name, base URL, bearer token). Killed when dropped.
struct Orthanc {
    child: std::process::Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Orthanc {
    /// `None` (test skipped) when Orthanc or its DICOMweb plugin is not installed, unless
    /// services are required (`.ci/run` installs both).
    async fn start(servers: &[(&str, String, &str)]) -> Option<Orthanc> {
        let binary = std::env::var("TELECONSULT_ORTHANC").unwrap_or_else(|_| "Orthanc".into());
        let plugin = std::env::var("TELECONSULT_ORTHANC_DICOMWEB")
            .unwrap_or_else(|_| "/usr/share/orthanc/plugins/libOrthancDicomWeb.so".into());
        let runs = std::process::Command::new(&binary).arg("--version").output().is_ok_and(|o| o.status.success());
        if !runs || !std::path::Path::new(&plugin).exists() {
            assert!(
                !common::services_required(),
                "Orthanc ({binary}) and its DICOMweb plugin ({plugin}) are needed: apt-get install orthanc orthanc-dicomweb"
            );
            eprintln!("skipping: Orthanc or its DICOMweb plugin is not installed");
            return None;
        }
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (http, dicom) = (free(), free());
        let dir = std::env::temp_dir().join(format!("tc-orthanc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let remotes: serde_json::Map<String, Value> = servers
            .iter()
            .map(|(name, url, token)| {
                (name.to_string(), json!({"Url": url, "HttpHeaders": {"Authorization": format!("Bearer {token}")}}))
            })
            .collect();
        let config = json!({
            "Name": "hospital-pacs", "StorageDirectory": dir.join("store"), "IndexDirectory": dir.join("store"),
            "HttpPort": http, "DicomPort": dicom, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
            "Plugins": [plugin], "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "Servers": remotes},
        });
        let path = dir.join("orthanc.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
        let child = std::process::Command::new(&binary)
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("Orthanc starts");
        let orthanc = Orthanc { child, base: format!("http://127.0.0.1:{http}"), dir };
        let http_client = reqwest::Client::new();
        for _ in 0..200 {
            if http_client.get(format!("{}/system", orthanc.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Some(orthanc);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "Orthanc did not answer: {}",
            std::fs::read_to_string(orthanc.dir.join("orthanc.log")).unwrap_or_default()
        );
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = reqwest::Client::new().post(format!("{}{path}", self.base)).body(body).send().await.unwrap();
        common::split(resp).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new().get(format!("{}{path}", self.base)).send().await.unwrap()
    }
}

/// A value of Orthanc's DICOM JSON (a string where DICOM JSON has a one-element array).
fn orthanc_value(v: &Value) -> Option<String> {
    match &v["Value"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// A hospital's PACS meets the consultation over DICOMweb as a remote server: Orthanc, set up
/// with the consulting expert's token, finds the clinic's study (QIDO-RS), pulls it into its
/// archive byte for byte (WADO-RS), and pushes a study of its own into the consultation
/// (STOW-RS), which the clinic then lists under the expert's name. Set up with the token of a
/// doctor of another centre, it finds nothing there.
async fn a_hospital_pacs_pulls_and_pushes_studies_over_dicomweb(app: &TestApp) {
    use sha2::{Digest, Sha256};
    let c = consultation(app).await;
    let li = app.login("dr.li").await;
    let chen = app.login("dr.chen").await;
    let zhao = app.login("dr.zhao").await;
    upload(app, &li, &c, "CT_small.dcm").await;
    let root = app.url(&format!("/api/v1/consultations/{c}/dicomweb/"));
    let Some(pacs) = Orthanc::start(&[("teleconsult", root.clone(), &chen), ("elsewhere", root, &zhao)]).await else {
        return;
    };

    // Find: the study, its patient and modality as the PACS lists them.
    let (status, studies) = pacs.post("/dicom-web/servers/teleconsult/qido", br#"{"Uri": "/studies"}"#.to_vec()).await;
    assert_eq!(status, 200, "{studies}");
    assert_eq!(studies.as_array().unwrap().len(), 1, "{studies}");
    let study = orthanc_value(&studies[0]["0020000D"]).expect("a Study Instance UID");
    assert_eq!(study, "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322");
    assert_eq!(orthanc_value(&studies[0]["00080061"]).as_deref(), Some("CT"), "{studies}");

    // Pull: the archive receives the instance, the same bytes as uploaded.
    let (status, pulled) = pacs
        .post(
            "/dicom-web/servers/teleconsult/retrieve",
            json!({"Resources": [{"Study": study}]}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{pulled}");
    assert_eq!(pulled["ReceivedInstancesCount"].to_string().trim_matches('"'), "1", "{pulled}");
    let instances: Vec<String> = pacs.get("/instances").await.json().await.unwrap();
    assert_eq!(instances.len(), 1);
    let bytes = pacs.get(&format!("/instances/{}/file", instances[0])).await.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&bytes), Sha256::digest(fixture("CT_small.dcm")), "pulled byte for byte");

    // Push: a study from the hospital's archive into the consultation.
    let mr = fixture("MR_small_RLE.dcm");
    let (status, stored) = pacs.post("/instances", mr.clone()).await;
    assert_eq!(status, 200, "{stored}");
    let id = stored["ID"].as_str().unwrap().to_string();
    let (status, pushed) =
        pacs.post("/dicom-web/servers/teleconsult/stow", json!({"Resources": [id]}).to_string().into_bytes()).await;
    assert_eq!(status, 200, "{pushed}");
    let (_, files) = app.get(&format!("/api/v1/consultations/{c}/files"), &li).await;
    let chen_id = app.user_id("dr.chen").await;
    let sha = format!("{:x}", Sha256::digest(&mr));
    let pushed_file = files["items"].as_array().unwrap().iter().find(|f| f["sha256"] == sha.as_str());
    let pushed_file = pushed_file.unwrap_or_else(|| panic!("the pushed study is a file of the consultation: {files}"));
    assert_eq!(
        (pushed_file["kind"].as_str(), pushed_file["uploaded_by"].as_str()),
        (Some("dicom"), Some(chen_id.as_str()))
    );

    // Someone else's token: the consultation does not exist for them, so the PACS finds nothing.
    let (status, elsewhere) = pacs.post("/dicom-web/servers/elsewhere/qido", br#"{"Uri": "/studies"}"#.to_vec()).await;
    assert!(status != 200 || elsewhere.as_array().is_some_and(|a| a.is_empty()), "{status} {elsewhere}");
}
db_test!(a_hospital_pacs_pulls_and_pushes_studies_over_dicomweb);
