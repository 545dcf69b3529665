//! ECG review over HTTP: each supported format uploaded to a consultation comes back as the
//! normalised JSON with computer-assisted measurements; broken files answer 422.

mod common;

use common::TestApp;
use serde_json::{json, Value};
use std::io::Write;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/ecg/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn record_100_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for name in ["100.hea", "100.dat", "100.atr"] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&fixture(&format!("mitdb-100/{name}"))).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn upload(app: &TestApp, token: &str, consultation: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/consultations/{consultation}/files")))
        .query(&[("name", name)])
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    common::split(resp).await
}

async fn ecg_consultation(app: &TestApp) -> String {
    app.consultation().reason("远程心电判读").mode("ecg_review").requested().await
}

async fn each_ecg_format_comes_back_with_measurements(app: &TestApp) {
    let li = app.login("dr.li").await;
    let c = ecg_consultation(app).await;
    let wang = app.login("dr.wang").await;
    app.post(&format!("/api/v1/consultations/{c}/accept"), &wang, &json!({})).await;

    // A 12-lead resting ECG from a real cart (DICOM waveform).
    let (status, f) = upload(app, &li, &c, "ecg.dcm", fixture("waveform_ecg.dcm")).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["kind"], "ecg");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["leads"].as_array().unwrap().len(), 12);
    assert_eq!(v["leads"][1]["name"], "II");
    assert_eq!(v["leads"][1]["unit"], "uV");
    let m = &v["measurements"];
    assert_eq!(m["computer_assisted"], true);
    assert_eq!(m["r_peaks_s"].as_array().unwrap().len(), 10, "the cart counted 10 beats");
    let qt = m["qt_ms"].as_f64().expect("QT measured on a 12-lead resting ECG");
    assert!((qt - 368.0).abs() <= 20.0, "QT {qt} vs the cart's 368 ms");
    assert!(v["label"].as_str().unwrap().to_lowercase().contains("not a diagnosis"));

    // A GE MUSE XML export: read like the other formats, the cart's own measurements served
    // beside ours, beats classified.
    let (status, f) = upload(app, &li, &c, "muse.xml", fixture("ge-muse/guangxi_teaching_sinus_rhythm.xml")).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["kind"], "ecg");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["format"], "ge-muse-xml");
    assert_eq!(v["leads"].as_array().unwrap().len(), 12);
    assert_eq!(v["device_measurements"]["heart_rate_bpm"], 97.0);
    assert_eq!(v["device_measurements"]["qt_ms"], 328.0);
    assert_eq!(v["measurements"]["beat_count"], 16);
    assert_eq!(v["measurements"]["normal_beats"], 16);
    assert_eq!(v["measurements"]["ventricular_ectopic_beats"], 0);
    let qt = v["measurements"]["qt_ms"].as_f64().expect("QT measured");
    assert!((qt - 328.0).abs() <= 20.0, "QT {qt} vs the cart's 328 ms");

    // A Philips PageWriter export (UTF-16, XLI-compressed waveforms) with its cart's values.
    let (status, f) =
        upload(app, &li, &c, "pagewriter.xml", fixture("philips/philipsecg_1_04_pagewriter_touch_demo.xml")).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["kind"], "ecg");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["format"], "philips-xml");
    assert_eq!(v["device"], "Philips PageWriter Touch");
    assert_eq!(v["leads"].as_array().unwrap().len(), 12);
    assert_eq!(v["device_measurements"]["heart_rate_bpm"], 84.0);
    assert_eq!(v["device_measurements"]["pr_ms"], 144.0);
    let pr = v["measurements"]["pr_ms"].as_f64().expect("PR measured");
    assert!((pr - 144.0).abs() <= 20.0, "PR {pr} vs the cart's 144 ms");

    // A GE cart's DICOM whose measurements carry only MDC codes, and a recording in
    // atrial fibrillation, flagged as a computer-assisted finding.
    let (status, f) = upload(app, &li, &c, "af.dcm", fixture("ge-dicom/ge_mac55_atrial_fibrillation.dcm")).await;
    assert_eq!(status, 201, "{f}");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["device_measurements"]["heart_rate_bpm"], 81.0);
    assert_eq!(v["measurements"]["findings"][0]["code"], "possible_atrial_fibrillation");
    assert_eq!(v["measurements"]["findings"][0]["computer_assisted"], true);
    let (status, f) = upload(app, &li, &c, "coded.dcm", fixture("generated/coded_measurements_implicit_vr.dcm")).await;
    assert_eq!(status, 201, "{f}");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["device_measurements"]["pr_ms"], 122.0);
    assert_eq!(v["device_measurements"]["qtc_ms"], 417.0);

    // MIT-BIH record 100 as a .zip of its WFDB files, decimated for an overview.
    let (status, f) = upload(app, &li, &c, "100.zip", record_100_zip()).await;
    assert_eq!(status, 201, "{f}");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg?max_points=2000", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["leads"][0]["name"], "MLII");
    assert!(v["leads"][0]["samples"].as_array().unwrap().len() <= 2000);
    assert!((v["duration_s"].as_f64().unwrap() - 1805.6).abs() < 1.0);
    let hr = v["measurements"]["heart_rate_bpm"].as_f64().unwrap();
    assert!((70.0..80.0).contains(&hr), "record 100 runs at about 75 bpm, got {hr}");

    // The documented CSV layout.
    let mut csv = String::from("# sample_rate_hz=250\nI,II\n");
    for i in 0..2500 {
        let beat = if i % 200 < 6 { 1200 } else { 0 };
        csv.push_str(&format!("{},{}\n", beat / 2, beat));
    }
    let (status, f) = upload(app, &li, &c, "export.csv", csv.into_bytes()).await;
    assert_eq!(status, 201, "{f}");
    let (status, v) = app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &wang).await;
    assert_eq!(status, 200, "{v}");
    let hr = v["measurements"]["heart_rate_bpm"].as_f64().unwrap();
    assert!((hr - 75.0).abs() < 2.0, "a beat every 0.8 s is 75 bpm, got {hr}");

    // A non-ECG file is not served as one; patient Liu sees nothing.
    let liu = app.login("patient.liu").await;
    assert_eq!(app.get(&format!("/api/v1/files/{}/ecg", f["id"].as_str().unwrap()), &liu).await.0, 404);
}
db_test!(each_ecg_format_comes_back_with_measurements);

async fn a_truncated_ecg_is_refused_with_what_was_wrong(app: &TestApp) {
    let li = app.login("dr.li").await;
    let c = ecg_consultation(app).await;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("100.hea", opts).unwrap();
    zip.write_all(&fixture("mitdb-100/100.hea")).unwrap();
    zip.start_file("100.dat", opts).unwrap();
    zip.write_all(&fixture("mitdb-100/100.dat")[..3000]).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let (status, body) = upload(app, &li, &c, "broken.zip", bytes).await;
    if status == 201 {
        let (status, body) = app.get(&format!("/api/v1/files/{}/ecg", body["id"].as_str().unwrap()), &li).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("truncated"), "{body}");
    } else {
        assert_eq!(status, 422, "{body}");
    }
    // The server is still up.
    assert_eq!(app.get("/api/v1/me", &li).await.0, 200);
}
db_test!(a_truncated_ecg_is_refused_with_what_was_wrong);
