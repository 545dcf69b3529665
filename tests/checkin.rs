//! The resident's identifiers and check-in at a kiosk: identifiers unique per issuer, masked,
//! retired not deleted; a kiosk finds the patient by health-card QR code, card number or
//! resident ID with the date of birth, among the patients its centre may see, and puts them in
//! the lobby of today's booked consultation with access to that consultation only; with
//! nothing booked it calls the doctors on duty; unknown, expired and unreadable cards get
//! their own codes, are audited and throttled per kiosk.

mod common;

use common::{Backend, TestApp};
use serde_json::{json, Value};
use teleconsult::patients::health_card::Tchc1;

fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn org_of(app: &TestApp, username: &str) -> String {
    let token = app.login(username).await;
    app.get("/api/v1/me", &token).await.1["organisation_id"].as_str().unwrap().to_string()
}

async fn device_post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .header("authorization", format!("Device {token}"))
        .json(body)
        .send()
        .await
        .unwrap();
    common::split(resp).await
}

async fn audit_events(app: &TestApp, query: &str) -> Vec<Value> {
    let admin = app.login("admin").await;
    let (status, page) = app.get(&format!("/api/v1/audit?limit=500{query}"), &admin).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn identifiers_are_unique_per_issuer_masked_and_retired(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhang = app.patient_id("patient.zhang").await;
    let liu = app.patient_id("patient.liu").await;
    let qr = Tchc1::encode("4401061111111111", "GD-EHC", date("2030-12-31"));
    let (status, card) = app
        .post(&format!("/api/v1/patients/{zhang}/identifiers"), &li, &json!({"kind": "health_card", "qr": qr}))
        .await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(
        (card["kind"].as_str(), card["issuer"].as_str(), card["masked"].as_str(), card["valid_until"].as_str()),
        (Some("health_card"), Some("GD-EHC"), Some("4401********1111"), Some("2030-12-31"))
    );
    let (status, phone) = app
        .post(
            &format!("/api/v1/patients/{zhang}/identifiers"),
            &li,
            &json!({"kind": "phone", "value": "138-1234-5678"}),
        )
        .await;
    assert_eq!((status, phone["masked"].as_str(), phone["issuer"].as_str()), (201, Some("138****5678"), Some("CN")));

    // The same number of the same issuer for another patient: 409; of another issuer: fine.
    let (status, body) = app
        .post(
            &format!("/api/v1/patients/{liu}/identifiers"),
            &li,
            &json!({"kind": "health_card", "value": "4401061111111111", "issuer": "GD-EHC"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("identifier_in_use")), "{body}");
    let (status, body) = app
        .post(
            &format!("/api/v1/patients/{liu}/identifiers"),
            &li,
            &json!({"kind": "health_card", "value": "4401061111111111", "issuer": "HN-EHC"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // The record shows them masked, and never the number itself.
    let (status, record) = app.get(&format!("/api/v1/patients/{zhang}"), &li).await;
    assert_eq!(status, 200);
    let masked: Vec<&str> =
        record["identifiers"].as_array().unwrap().iter().map(|i| i["masked"].as_str().unwrap()).collect();
    assert!(masked.contains(&"4401********1111") && masked.contains(&"138****5678"), "{record}");
    assert!(masked.contains(&"4401********0001"), "the demo card: {record}");
    assert!(!record.to_string().contains("4401061111111111") && !record.to_string().contains("13812345678"));
    // A list does not carry them.
    let (_, list) = app.get("/api/v1/patients", &li).await;
    assert!(list["items"][0].get("identifiers").is_none(), "{list}");

    // Only those who edit the record add identifiers; those who may not see it get 404.
    let zhang_token = app.login("patient.zhang").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/patients/{zhang}/identifiers"),
            &zhang_token,
            &json!({"kind": "phone", "value": "13900000000"}),
        )
        .await;
    assert_eq!(status, 403);
    let zhao = app.login("dr.zhao").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/patients/{zhang}/identifiers"),
            &zhao,
            &json!({"kind": "phone", "value": "13900000000"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .post(&format!("/api/v1/patients/{zhang}/identifiers"), &li, &json!({"kind": "insurance", "value": "YB123456"}))
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("issuer")), "{body}");

    // Retired: kept for the record, gone from the record's view, the number free again.
    let id = card["id"].as_str().unwrap();
    let (status, retired) = app
        .post(&format!("/api/v1/patients/{zhang}/identifiers/{id}/retire"), &li, &json!({"reason": "卡片遗失，已补办"}))
        .await;
    assert_eq!(status, 200, "{retired}");
    assert!(retired["retired_at"].is_string());
    let (_, record) = app.get(&format!("/api/v1/patients/{zhang}"), &li).await;
    assert!(!record["identifiers"].as_array().unwrap().iter().any(|i| i["id"] == card["id"]), "{record}");
    let (status, body) = app
        .post(
            &format!("/api/v1/patients/{liu}/identifiers"),
            &li,
            &json!({"kind": "health_card", "value": "4401061111111111", "issuer": "GD-EHC"}),
        )
        .await;
    assert_eq!(status, 201, "the retired number may be given again: {body}");
    let (status, _) = app.post(&format!("/api/v1/patients/{liu}/identifiers/{id}/retire"), &li, &json!({})).await;
    assert_eq!(status, 404, "an identifier of another patient");

    // Registered together with a patient, in one transaction: a taken number refuses both.
    let (status, body) = app
        .post(
            "/api/v1/patients",
            &li,
            &json!({"name": "王桂芳", "sex": "female", "birth_date": "1950-02-03", "identifiers": [
                {"kind": "insurance", "value": "440100YB0001", "issuer": "GZ-YB"},
                {"kind": "health_card", "value": "4401061111111111", "issuer": "GD-EHC"}]}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("identifier_in_use")), "{body}");
    let (_, found) = app.get("/api/v1/patients?q=王桂芳", &li).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 0, "no half-registered patient");
    let (status, created) = app
        .post(
            "/api/v1/patients",
            &li,
            &json!({"name": "王桂芳", "sex": "female", "birth_date": "1950-02-03", "identifiers": [
                {"kind": "insurance", "value": "440100YB0001", "issuer": "GZ-YB"}]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["identifiers"][0]["masked"], "4401****0001");

    // Audited with the patient.
    let events = audit_events(app, &format!("&patient_id={zhang}")).await;
    for action in ["create", "retire"] {
        assert!(
            events.iter().any(|e| e["resource_type"] == "patient_identifier" && e["action"] == action),
            "{action}: {events:?}"
        );
    }
}
db_test!(identifiers_are_unique_per_issuer_masked_and_retired);

/// The zone where it is midday now: a slot in the next half hour is "today" there.
fn midday_zone() -> String {
    let hour = chrono::Timelike::hour(&chrono::Utc::now()) as i32;
    let mut offset = 12 - hour;
    if offset < -12 {
        offset += 24;
    }
    if offset > 14 {
        offset -= 24;
    }
    match offset {
        0 => "Etc/GMT".into(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// patient.zhang's urgent video consultation with dr.wang, booked in the next free slot
/// (dr.wang sees patients all day in `zone`); answers its id.
async fn booked_today(app: &TestApp, zone: &str) -> String {
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let rules: Vec<Value> = (1..=7)
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:30", "slot_minutes": 30, "time_zone": zone}))
        .collect();
    let (status, body) = app
        .put(
            &format!("/api/v1/experts/{wang_id}/availability"),
            &wang,
            &json!({"rules": rules, "policy": {"buffer_minutes": 0, "max_per_day": 0, "min_notice_minutes": 0}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.consultation().reason("胸闷气短三天").booked().await.0
}

async fn kiosk_token(app: &TestApp, org: &str, kind: &str, patient: Option<&str>) -> String {
    issue_device(app, org, kind, patient).await.1
}

/// A new device of `org` issued by the administrator, or, bound to a patient (a home device),
/// by her community doctor (the administrator sees no patient record): its id and its token.
async fn issue_device(app: &TestApp, org: &str, kind: &str, patient: Option<&str>) -> (String, String) {
    let issuer = app.login(if patient.is_some() { "dr.li" } else { "admin" }).await;
    let (status, d) = app
        .post(
            "/api/v1/devices",
            &issuer,
            &json!({"kind": kind, "label": "东湖中心大厅自助机", "organisation_id": org, "patient_id": patient}),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    (d["device"]["id"].as_str().unwrap().to_string(), d["token"].as_str().unwrap().to_string())
}

async fn a_patient_checks_in_by_card_or_number_and_waits_in_the_lobby(app: &TestApp) {
    let consultation = booked_today(app, &app.state.config.kiosk_time_zone.clone()).await;
    let centre = org_of(app, "dr.li").await;
    let kiosk = kiosk_token(app, &centre, "kiosk", None).await;
    let zhang = app.patient_id("patient.zhang").await;

    // By the QR code of her demo card.
    let qr = Tchc1::encode("4401060000000001", "DEMO-EHC", date("2036-12-31"));
    let (status, answer) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": qr})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message_code"], "in_lobby");
    assert_eq!(answer["patient_name"], "张*英");
    assert_eq!(answer["consultation"]["id"], consultation.as_str());
    assert_eq!(answer["consultation"]["expert_name"], "王建国");
    assert_eq!(answer["access"]["user"]["username"], "patient.zhang");
    let access = answer["access"]["access_token"].as_str().unwrap().to_string();

    // The access opens that consultation and its room (the lobby), nothing else.
    let (status, c) = app.get(&format!("/api/v1/consultations/{consultation}"), &access).await;
    assert_eq!(status, 200, "{c}");
    let (status, join) = app.post(&format!("/api/v1/consultations/{consultation}/join"), &access, &json!({})).await;
    assert_eq!(status, 200, "{join}");
    assert_eq!((join["room_role"].as_str(), join["lobby"].as_bool()), (Some("patient"), Some(true)));
    for path in
        ["/api/v1/consultations", "/api/v1/patients", "/api/v1/notifications", &format!("/api/v1/patients/{zhang}")]
    {
        let (status, body) = app.get(path, &access).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("outside_token_scope")), "{path}: {body}");
    }
    // ...but the blood pressure she takes at the kiosk during the call goes into her readings,
    // and reaches the call it is taken in.
    let reading = json!({"kind": "blood_pressure", "systolic_mmhg": 148, "diastolic_mmhg": 92, "pulse_bpm": 80,
        "measured_at": chrono::Utc::now().to_rfc3339(), "source": "kiosk", "client_id": uuid::Uuid::new_v4(),
        "consultation_id": consultation});
    let (status, body) = app.post(&format!("/api/v1/patients/{zhang}/observations"), &access, &reading).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.get(&format!("/api/v1/patients/{zhang}/timeline"), &access).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("outside_token_scope")), "{body}");
    let liu = app.patient_id("patient.liu").await;
    let (status, body) = app.post(&format!("/api/v1/patients/{liu}/observations"), &access, &reading).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("outside_token_scope")), "{body}");

    // By the card number, or the resident ID number, with the date of birth.
    let (status, answer) = device_post(
        app,
        &kiosk,
        "/api/v1/kiosk/checkin",
        &json!({"card_number": "4401 0600 0000 0001", "birth_date": "1948-05-12"}),
    )
    .await;
    assert_eq!((status, answer["message_code"].as_str()), (200, Some("in_lobby")), "{answer}");
    // Her resident ID as her centre's doctor reads it (in full).
    let li = app.login("dr.li").await;
    let (_, record) = app.get(&format!("/api/v1/patients/{zhang}"), &li).await;
    let rid = record["resident_id"].as_str().unwrap();
    let (status, answer) =
        device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"resident_id": rid, "birth_date": "1948-05-12"}))
            .await;
    assert_eq!((status, answer["message_code"].as_str()), (200, Some("in_lobby")), "{answer}");

    // Wrong birth date, unknown card, unreadable code, expired card: each its own answer.
    let (status, body) = device_post(
        app,
        &kiosk,
        "/api/v1/kiosk/checkin",
        &json!({"card_number": "4401060000000001", "birth_date": "1948-05-13"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("card_unknown")), "{body}");
    let unknown = Tchc1::encode("4401069999999999", "DEMO-EHC", date("2036-12-31"));
    let (status, body) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": unknown})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("card_unknown")), "{body}");
    let (status, body) =
        device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": "https://example.org/x"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("card_invalid")), "{body}");
    let old = Tchc1::encode("4401060000000001", "DEMO-EHC", date("2020-12-31"));
    let (status, body) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": old})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("card_expired")), "{body}");
    let li = app.login("dr.li").await;
    let liu = app.patient_id("patient.liu").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/patients/{liu}/identifiers"),
            &li,
            &json!({"kind": "health_card", "value": "4401062222222222", "issuer": "GD-EHC", "valid_until": "2021-06-30"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = device_post(
        app,
        &kiosk,
        "/api/v1/kiosk/checkin",
        &json!({"card_number": "4401062222222222", "birth_date": "1952-09-30"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("card_expired")), "{body}");

    // A patient of another centre is not found at this kiosk.
    let zhao = app.login("dr.zhao").await;
    let (status, body) = app
        .post(
            "/api/v1/patients",
            &zhao,
            &json!({"name": "孙立新", "sex": "male", "birth_date": "1955-01-01",
                    "identifiers": [{"kind": "health_card", "value": "4401063333333333", "issuer": "DEMO-EHC"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let far = Tchc1::encode("4401063333333333", "DEMO-EHC", date("2036-12-31"));
    let (status, body) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": far})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("card_unknown")), "{body}");

    // Every lookup is audited: found ones with the patient, failed ones with their reason.
    let events = audit_events(app, "").await;
    let checkins: Vec<&Value> =
        events.iter().filter(|e| e["action"] == "checkin" && e["actor_role"] == "device").collect();
    assert!(checkins.iter().filter(|e| e["outcome"] == "success" && e["patient_id"] == zhang.as_str()).count() >= 3);
    for code in ["card_unknown", "card_invalid", "card_expired"] {
        assert!(
            checkins.iter().any(|e| e["outcome"] == "denied" && e["detail"].as_str().unwrap_or("").starts_with(code)),
            "{code}: {checkins:?}"
        );
    }
}

async fn with_nothing_booked_the_kiosk_calls_the_doctors_on_duty(app: &TestApp) {
    let centre = org_of(app, "dr.li").await;
    let kiosk = kiosk_token(app, &centre, "kiosk", None).await;
    let qr = Tchc1::encode("4401060000000002", "DEMO-EHC", date("2036-12-31"));
    let (status, answer) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": qr})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["message_code"].as_str(), &answer["consultation"], &answer["access"]),
        (Some("none_booked_today"), &Value::Null, &Value::Null)
    );
    let checkin = answer["checkin_id"].as_str().unwrap();
    let (status, told) = device_post(app, &kiosk, "/api/v1/kiosk/notify-duty", &json!({"checkin_id": checkin})).await;
    assert_eq!(status, 200, "{told}");
    assert_eq!(told["notified"], 1, "dr.li is the community doctor of the centre");
    let li = app.login("dr.li").await;
    let (_, inbox) = app.get("/api/v1/notifications", &li).await;
    let walk_in: Vec<&Value> =
        inbox["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "kiosk_walk_in").collect();
    assert_eq!(walk_in.len(), 1, "{inbox}");
    assert!(walk_in[0]["title"].as_str().unwrap().contains("刘德明"));
    // A second tap tells nobody twice; dr.zhao of another centre is never told.
    let (status, again) = device_post(app, &kiosk, "/api/v1/kiosk/notify-duty", &json!({"checkin_id": checkin})).await;
    assert_eq!((status, again["notified"].as_u64(), &again["notified_at"]), (200, Some(0), &told["notified_at"]));
    let zhao = app.login("dr.zhao").await;
    let (_, inbox) = app.get("/api/v1/notifications", &zhao).await;
    assert!(!inbox["items"].as_array().unwrap().iter().any(|n| n["kind"] == "kiosk_walk_in"));
    // Another kiosk cannot use this check-in.
    let other = kiosk_token(app, &centre, "kiosk", None).await;
    let (status, _) = device_post(app, &other, "/api/v1/kiosk/notify-duty", &json!({"checkin_id": checkin})).await;
    assert_eq!(status, 404);

    // Only kiosks check in; user tokens are refused on the kiosk's routes.
    let liu = app.patient_id("patient.liu").await;
    let cuff = kiosk_token(app, &centre, "home", Some(&liu)).await;
    let (status, body) = device_post(app, &cuff, "/api/v1/kiosk/checkin", &json!({"qr": "x"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app.post("/api/v1/kiosk/checkin", &li, &json!({"qr": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("device_token_required")), "{body}");
}
db_test!(with_nothing_booked_the_kiosk_calls_the_doctors_on_duty);

async fn failed_lookups_are_throttled_per_kiosk(app: &TestApp) {
    let centre = org_of(app, "dr.li").await;
    let kiosk = kiosk_token(app, &centre, "kiosk", None).await;
    let other = kiosk_token(app, &centre, "kiosk", None).await;
    let guess = |n: u32| json!({"card_number": format!("44010690000000{n:02}"), "birth_date": "1948-05-12"});
    for n in 0..3 {
        let (status, body) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &guess(n)).await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, body) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &guess(3)).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    // Even the right card waits; another kiosk is not held back.
    let right = json!({"card_number": "4401060000000001", "birth_date": "1948-05-12"});
    let (status, _) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &right).await;
    assert_eq!(status, 429);
    let (status, body) = device_post(app, &other, "/api/v1/kiosk/checkin", &right).await;
    assert_eq!(status, 200, "{body}");
}

/// The close code the signaling connection at `ws` gets within `within`, skipping messages.
async fn closed_within(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    within: std::time::Duration,
) -> u16 {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
}

/// A kiosk stolen or retired is revoked by the administrator: the access it handed out to a
/// patient it checked in ends at once (every route, a new join), and the call the patient is in
/// from it ends at the next heartbeat; the patient's own sign-in elsewhere is untouched.
async fn a_revoked_kiosk_ends_the_access_it_handed_out(app: &TestApp) {
    use futures_util::StreamExt;
    let consultation = booked_today(app, &app.state.config.kiosk_time_zone.clone()).await;
    let centre = org_of(app, "dr.li").await;
    let (kiosk_id, kiosk) = issue_device(app, &centre, "kiosk", None).await;
    let own = app.login("patient.zhang").await;
    let qr = Tchc1::encode("4401060000000001", "DEMO-EHC", date("2036-12-31"));
    let (status, answer) = device_post(app, &kiosk, "/api/v1/kiosk/checkin", &json!({"qr": qr})).await;
    assert_eq!((status, answer["message_code"].as_str()), (200, Some("in_lobby")), "{answer}");
    let access = answer["access"]["access_token"].as_str().unwrap().to_string();
    let own_path = format!("/api/v1/consultations/{consultation}");
    let join_path = format!("/api/v1/consultations/{consultation}/join");
    let (status, join) = app.post(&join_path, &access, &json!({})).await;
    assert_eq!(status, 200, "{join}");
    let (mut ws, _) = tokio_tungstenite::connect_async(join["ws_url"].as_str().unwrap()).await.unwrap();
    let joined = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(joined.to_text().unwrap().contains("\"joined\""), "{joined:?}");
    // A second join before the revocation: its ticket is redeemed after it.
    let (status, late) = app.post(&join_path, &access, &json!({})).await;
    assert_eq!(status, 200, "{late}");

    let admin = app.login("admin").await;
    let (status, body) = app.post(&format!("/api/v1/devices/{kiosk_id}/revoke"), &admin, &json!({})).await;
    assert_eq!(status, 200, "{body}");

    for (status, body) in [
        app.get(&own_path, &access).await,
        app.get("/api/v1/me", &access).await,
        app.post(&join_path, &access, &json!({})).await,
    ] {
        assert_eq!((status, body["code"].as_str()), (401, Some("device_revoked")), "{body}");
    }
    let (mut late_ws, _) = tokio_tungstenite::connect_async(late["ws_url"].as_str().unwrap()).await.unwrap();
    assert_eq!(closed_within(&mut late_ws, std::time::Duration::from_secs(15)).await, 4001, "ticket refused");
    // The call the kiosk's check-in seated ended with the kiosk at once, not at the next
    // heartbeat (10 s).
    assert_eq!(closed_within(&mut ws, teleconsult::signaling::ws::PING_INTERVAL / 2).await, 4005, "access revoked");
    // Her own sign-in is hers, not the kiosk's.
    let (status, c) = app.get(&own_path, &own).await;
    assert_eq!(status, 200, "{c}");
    // The refusal is in the audit trail, with the kiosk.
    let events = audit_events(app, "").await;
    assert!(
        events.iter().any(|e| e["action"] == "authenticate"
            && e["outcome"] == "denied"
            && e["resource_id"] == kiosk_id.as_str()
            && e["detail"].as_str().unwrap_or("").contains(&own_path)),
        "{events:?}"
    );
}

mod lobby {
    use super::*;

    async fn spawn(backend: Backend) -> Option<TestApp> {
        let zone = midday_zone();
        let adjust = move |c: &mut teleconsult::config::Config| {
            c.kiosk_time_zone = zone;
            c.kiosk_lookup_failures_per_minute = 100;
        };
        match backend {
            Backend::Sqlite => Some(TestApp::spawn_with(Backend::Sqlite, None, adjust).await),
            Backend::Postgres => TestApp::spawn_postgres_with(adjust).await,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = spawn(Backend::Sqlite).await.unwrap();
        a_patient_checks_in_by_card_or_number_and_waits_in_the_lobby(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = spawn(Backend::Postgres).await {
            a_patient_checks_in_by_card_or_number_and_waits_in_the_lobby(&app).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_kiosk_sqlite() {
        let app = spawn(Backend::Sqlite).await.unwrap();
        a_revoked_kiosk_ends_the_access_it_handed_out(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_kiosk_postgres() {
        if let Some(app) = spawn(Backend::Postgres).await {
            a_revoked_kiosk_ends_the_access_it_handed_out(&app).await;
        }
    }
}

mod throttle {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::spawn_with(Backend::Sqlite, None, |c| c.kiosk_lookup_failures_per_minute = 3).await;
        failed_lookups_are_throttled_per_kiosk(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_postgres_with(|c| c.kiosk_lookup_failures_per_minute = 3).await {
            failed_lookups_are_throttled_per_kiosk(&app).await;
        }
    }
}
