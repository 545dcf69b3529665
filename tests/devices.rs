//! Devices with their own tokens: issued by those who manage the organisation (or, for a home
//! device bound to a patient, by the patient's community doctor), shown once, refused at once
//! after revocation, accepted only on device routes (and user tokens refused there), failed
//! device authentication throttled and audited.

mod common;

use common::{Backend, TestApp};
use serde_json::{json, Value};

async fn org_of(app: &TestApp, username: &str) -> String {
    let token = app.login(username).await;
    app.get("/api/v1/me", &token).await.1["organisation_id"].as_str().unwrap().to_string()
}

async fn device_get(app: &TestApp, path: &str, authorization: &str) -> (u16, Value) {
    let resp = app.http.get(app.url(path)).header("authorization", authorization).send().await.unwrap();
    common::split(resp).await
}

async fn issue(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/v1/devices", token, &body).await
}

async fn admin_audit(app: &TestApp, query: &str) -> Vec<Value> {
    let admin = app.login("admin").await;
    let (status, page) = app.get(&format!("/api/v1/audit?limit=500{query}"), &admin).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn a_kiosk_token_works_only_on_device_routes_until_it_is_revoked(app: &TestApp) {
    let admin = app.login("admin").await;
    let centre = org_of(app, "dr.li").await;
    let (status, issued) =
        issue(app, &admin, json!({"kind": "kiosk", "label": "东湖中心大厅自助机", "organisation_id": centre})).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_string();
    let id = issued["device"]["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("tcdev_") && token.len() > 40, "{token}");
    assert_eq!(issued["device"]["organisation_id"], centre);
    assert_eq!(issued["device"]["last_seen_at"], Value::Null);

    // The device names itself with its token; the list never shows the token again.
    let (status, me) = device_get(app, "/api/v1/device", &format!("Device {token}")).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["id"].as_str(), me["kind"].as_str()), (Some(id.as_str()), Some("kiosk")));
    assert_eq!(me["organisation_name"], "东湖社区卫生服务中心");
    let (status, list) = app.get("/api/v1/devices?kind=kiosk", &admin).await;
    assert_eq!(status, 200, "{list}");
    let listed = list["items"].as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).expect("listed").clone();
    assert!(!listed.to_string().contains(&token[6..]), "the token is shown once: {listed}");
    assert!(listed["last_seen_at"].is_string(), "the device was seen: {listed}");

    // A device token opens no user route, whatever scheme it is sent with.
    for auth in [format!("Device {token}"), format!("Bearer {token}")] {
        let (status, body) = device_get(app, "/api/v1/me", &auth).await;
        assert_eq!(status, 401, "{auth}: {body}");
        let (status, body) = device_get(app, "/api/v1/patients", &auth).await;
        assert_eq!(status, 401, "{auth}: {body}");
    }
    // A user's token opens no device route.
    let (status, body) = device_get(app, "/api/v1/device", &format!("Bearer {admin}")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("device_token_required")), "{body}");
    let (status, body) = device_get(app, "/api/v1/device", &format!("Device {admin}")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{body}");

    // Revoked: refused on the very next request.
    let (status, revoked) =
        app.post(&format!("/api/v1/devices/{id}/revoke"), &admin, &json!({"reason": "自助机报修更换"})).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = device_get(app, "/api/v1/device", &format!("Device {token}")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("device_revoked")), "{body}");
    // Revoking again changes nothing; the list shows revoked devices only when asked.
    let (status, again) = app.post(&format!("/api/v1/devices/{id}/revoke"), &admin, &json!({})).await;
    assert_eq!((status, &again["revoked_at"]), (200, &revoked["revoked_at"]));
    let (_, list) = app.get("/api/v1/devices", &admin).await;
    assert!(!list["items"].as_array().unwrap().iter().any(|d| d["id"] == id.as_str()));
    let (_, list) = app.get("/api/v1/devices?include_revoked=true", &admin).await;
    assert!(list["items"].as_array().unwrap().iter().any(|d| d["id"] == id.as_str()));

    // Issue, revoke and the refused revoked token are in the audit trail.
    let events = admin_audit(app, "").await;
    let about = |action: &str, outcome: &str| {
        events.iter().any(|e| e["action"] == action && e["outcome"] == outcome && e["resource_id"] == id.as_str())
    };
    assert!(about("issue", "success") && about("revoke", "success"), "{events:?}");
    assert!(about("authenticate", "denied"), "the revoked token's use is audited");
}
db_test!(a_kiosk_token_works_only_on_device_routes_until_it_is_revoked);

async fn who_may_issue_and_revoke_is_decided_by_role_and_relationship(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhao = app.login("dr.zhao").await;
    let coordinator = app.login("coordinator").await;
    let li_me = app.get("/api/v1/me", &app.login("patient.zhang").await).await.1;
    let zhang = li_me["patient_id"].as_str().unwrap().to_string();
    let centre = org_of(app, "dr.li").await;

    // dr.li lends patient.zhang a blood-pressure cuff: a home device of their centre.
    let (status, cuff) = issue(app, &li, json!({"kind": "home", "label": "张大爷家血压计", "patient_id": zhang})).await;
    assert_eq!(status, 201, "{cuff}");
    assert_eq!(
        (cuff["device"]["organisation_id"].as_str(), cuff["device"]["patient_id"].as_str()),
        (Some(centre.as_str()), Some(zhang.as_str()))
    );
    let cuff_id = cuff["device"]["id"].as_str().unwrap().to_string();
    // ... but no kiosk, and no device for another centre's patient.
    let (status, body) = issue(app, &li, json!({"kind": "kiosk", "label": "自助机"})).await;
    assert_eq!(status, 403, "{body}");
    // Another centre's patient is not found, as one that does not exist (before: a 422 "no
    // patient record has this id" for a wrong id and a 403 for another centre's told apart
    // which ids were patients).
    let (status, body) = issue(app, &zhao, json!({"kind": "home", "label": "血压计", "patient_id": zhang})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let nobody = "0192f0c4-7b1e-7cc3-a000-0123456789ab";
    let (status, body) = issue(app, &zhao, json!({"kind": "home", "label": "血压计", "patient_id": nobody})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = issue(app, &li, json!({"kind": "clinic", "label": "诊室血压计", "patient_id": zhang})).await;
    assert_eq!(status, 422, "only home devices are bound: {body}");
    // dr.zhao neither sees nor revokes dr.li's cuff; dr.li sees it and not the admin's kiosks.
    let (status, body) = app.post(&format!("/api/v1/devices/{cuff_id}/revoke"), &zhao, &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (_, zhao_list) = app.get("/api/v1/devices", &zhao).await;
    assert_eq!(zhao_list["items"].as_array().unwrap().len(), 0, "{zhao_list}");
    let (status, body) =
        issue(app, &coordinator, json!({"kind": "kiosk", "label": "大厅自助机", "organisation_id": centre})).await;
    assert_eq!(status, 201, "the coordinator manages the linked centre: {body}");
    let (_, li_list) = app.get("/api/v1/devices", &li).await;
    let kinds: Vec<&str> = li_list["items"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["home"], "{li_list}");
    // The record page asks for one patient's devices: the cuff, and none for another patient.
    let (_, zhangs) = app.get(&format!("/api/v1/devices?patient_id={zhang}"), &li).await;
    let ids: Vec<&str> = zhangs["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [cuff_id.as_str()], "{zhangs}");
    let (_, others) = app.get(&format!("/api/v1/devices?patient_id={nobody}"), &li).await;
    assert_eq!(others["items"], json!([]), "{others}");
    // A doctor of another centre asking for her devices by her id learns nothing.
    let (status, theirs) = app.get(&format!("/api/v1/devices?patient_id={zhang}"), &zhao).await;
    assert_eq!((status, &theirs["items"]), (200, &json!([])), "{theirs}");
    // Experts and patients manage no device.
    for who in ["dr.wang", "patient.zhang"] {
        let t = app.login(who).await;
        let (status, _) = app.get("/api/v1/devices", &t).await;
        assert_eq!(status, 403, "{who}");
        let (status, _) = app.post(&format!("/api/v1/devices/{cuff_id}/revoke"), &t, &json!({})).await;
        assert_eq!(status, 403, "{who}");
    }
    // The coordinator revokes the cuff of its linked centre.
    let (status, body) = app.post(&format!("/api/v1/devices/{cuff_id}/revoke"), &coordinator, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    // Reading a home device's binding is audited against the patient.
    let events = admin_audit(app, &format!("&patient_id={zhang}")).await;
    assert!(events.iter().any(|e| e["resource_type"] == "device" && e["action"] == "list"), "{events:?}");
}
db_test!(who_may_issue_and_revoke_is_decided_by_role_and_relationship);

async fn failed_device_authentication_is_throttled_and_audited(app: &TestApp) {
    for i in 0..3 {
        let (status, body) = device_get(app, "/api/v1/device", &format!("Device tcdev_guess{i}")).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, body) = device_get(app, "/api/v1/device", "Device tcdev_guess3").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    let events = admin_audit(app, "").await;
    let denied = events.iter().filter(|e| e["action"] == "authenticate" && e["outcome"] == "denied").count();
    assert_eq!(denied, 3, "each failed attempt that reached the lookup is audited");
}

mod throttle {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app =
            super::TestApp::spawn_with(super::Backend::Sqlite, None, |c| c.device_auth_failures_per_minute = 3).await;
        super::failed_device_authentication_is_throttled_and_audited(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = super::TestApp::spawn_postgres_with(|c| c.device_auth_failures_per_minute = 3).await {
            super::failed_device_authentication_is_throttled_and_audited(&app).await;
        }
    }
}
